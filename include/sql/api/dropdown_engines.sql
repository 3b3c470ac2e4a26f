-- /api/vehicles/dropdown/engines: the contract function, rows as it returns them.
SELECT * FROM vehicles.dropdown_engines(%(make_id)s, %(model_id)s, %(model_year)s)
