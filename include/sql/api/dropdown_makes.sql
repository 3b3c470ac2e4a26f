-- /api/vehicles/dropdown/makes: the contract function, rows as it returns them.
SELECT * FROM vehicles.dropdown_makes(%(model_year)s, %(all_types)s)
