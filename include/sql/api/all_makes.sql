-- GetAllMakes: every make, upper case, by id (NHTSA's order).
SELECT make_id AS "Make_ID", upper(make_name) AS "Make_Name" FROM vehicles.make ORDER BY make_id
