-- DecodeVinValues / DecodeVinValuesExtended: the contract function as the app calls it.
SELECT vehicles.decode_vin(%(vin)s, %(year)s)
