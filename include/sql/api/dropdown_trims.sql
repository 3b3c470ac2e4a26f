-- /api/vehicles/dropdown/trims: the contract function, rows as it returns them.
SELECT * FROM vehicles.dropdown_trims(%(make_id)s, %(model_id)s, %(model_year)s)
