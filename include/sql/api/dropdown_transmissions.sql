-- /api/vehicles/dropdown/transmissions: the contract function, rows as it returns them.
SELECT * FROM vehicles.dropdown_transmissions(%(make_id)s, %(model_id)s, %(model_year)s)
