-- /api/vehicles/dropdown/models: the contract function, rows as it returns them.
SELECT * FROM vehicles.dropdown_models(%(make_id)s, %(model_year)s)
