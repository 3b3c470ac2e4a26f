-- Indexes, built after the bulk load (search_path = the staging schema): the unique ones that back
-- the keys of keys.sql, and the access paths of the dropdowns and the decoder. Each statement
-- stands alone (one per line ending in a semicolon), so load.build_keys spreads them over its
-- connections in this order, the biggest tables first. IF NOT EXISTS: a retried step resumes.
CREATE UNIQUE INDEX IF NOT EXISTS pattern_pkey ON pattern (pattern_id);
CREATE UNIQUE INDEX IF NOT EXISTS wmi_year_valid_chars_pkey ON wmi_year_valid_chars (wmi_year_valid_chars_id);
CREATE INDEX IF NOT EXISTS wmi_year_valid_chars_wmi_year_idx ON wmi_year_valid_chars (wmi, year);
CREATE UNIQUE INDEX IF NOT EXISTS model_year_pkey ON model_year (make_id, model_year, model_id);
CREATE INDEX IF NOT EXISTS pattern_schema_element_idx ON pattern (vin_schema_id, element_id);
CREATE INDEX IF NOT EXISTS pattern_element_idx ON pattern (element_id);
CREATE INDEX IF NOT EXISTS model_year_year_make_idx ON model_year (model_year, make_id);
CREATE UNIQUE INDEX IF NOT EXISTS wmi_vin_schema_pkey ON wmi_vin_schema (wmi_vin_schema_id);
CREATE INDEX IF NOT EXISTS wmi_vin_schema_wmi_idx ON wmi_vin_schema (wmi_id, year_from, year_to);
CREATE INDEX IF NOT EXISTS wmi_vin_schema_schema_idx ON wmi_vin_schema (vin_schema_id);
CREATE UNIQUE INDEX IF NOT EXISTS make_model_pkey ON make_model (model_id);
CREATE INDEX IF NOT EXISTS make_model_make_idx ON make_model (make_id);
CREATE UNIQUE INDEX IF NOT EXISTS model_pkey ON model (model_id);
CREATE UNIQUE INDEX IF NOT EXISTS vin_schema_pkey ON vin_schema (vin_schema_id);
CREATE UNIQUE INDEX IF NOT EXISTS wmi_make_pkey ON wmi_make (wmi_id, make_id);
CREATE INDEX IF NOT EXISTS wmi_make_make_idx ON wmi_make (make_id);
CREATE UNIQUE INDEX IF NOT EXISTS wmi_pkey ON wmi (wmi_id);
CREATE UNIQUE INDEX IF NOT EXISTS wmi_wmi_key ON wmi (wmi);
CREATE UNIQUE INDEX IF NOT EXISTS make_pkey ON make (make_id);
CREATE UNIQUE INDEX IF NOT EXISTS manufacturer_pkey ON manufacturer (manufacturer_id);
CREATE UNIQUE INDEX IF NOT EXISTS manufacturer_make_pkey ON manufacturer_make (manufacturer_id, make_id);
CREATE UNIQUE INDEX IF NOT EXISTS element_pkey ON element (element_id);
CREATE UNIQUE INDEX IF NOT EXISTS engine_model_pkey ON engine_model (engine_model_id);
CREATE INDEX IF NOT EXISTS engine_model_name_idx ON engine_model (lower(engine_model_name));
CREATE UNIQUE INDEX IF NOT EXISTS engine_model_pattern_pkey ON engine_model_pattern (engine_model_pattern_id);
CREATE INDEX IF NOT EXISTS engine_model_pattern_engine_idx ON engine_model_pattern (engine_model_id);
CREATE UNIQUE INDEX IF NOT EXISTS conversion_pkey ON conversion (conversion_id);
CREATE UNIQUE INDEX IF NOT EXISTS lookup_pkey ON lookup (lookup_table, lookup_id);
CREATE UNIQUE INDEX IF NOT EXISTS vin_exception_pkey ON vin_exception (vin_exception_id);
CREATE INDEX IF NOT EXISTS vin_exception_vin_idx ON vin_exception (vin);
CREATE UNIQUE INDEX IF NOT EXISTS wmi_year_valid_chars_exception_pkey ON wmi_year_valid_chars_exception (exception_id);
CREATE UNIQUE INDEX IF NOT EXISTS default_value_pkey ON default_value (default_value_id);
CREATE UNIQUE INDEX IF NOT EXISTS error_code_pkey ON error_code (error_code_id);
CREATE UNIQUE INDEX IF NOT EXISTS vin_descriptor_pkey ON vin_descriptor (vin_descriptor_id);
CREATE UNIQUE INDEX IF NOT EXISTS vin_descriptor_descriptor_key ON vin_descriptor (descriptor);
CREATE UNIQUE INDEX IF NOT EXISTS vehicle_spec_schema_pkey ON vehicle_spec_schema (vehicle_spec_schema_id);
CREATE UNIQUE INDEX IF NOT EXISTS vehicle_spec_schema_model_pkey ON vehicle_spec_schema_model (vehicle_spec_schema_model_id);
CREATE INDEX IF NOT EXISTS vehicle_spec_schema_model_model_idx ON vehicle_spec_schema_model (model_id);
CREATE UNIQUE INDEX IF NOT EXISTS vehicle_spec_schema_year_pkey ON vehicle_spec_schema_year (vehicle_spec_schema_year_id);
CREATE UNIQUE INDEX IF NOT EXISTS vspec_schema_pattern_pkey ON vspec_schema_pattern (vspec_schema_pattern_id);
CREATE UNIQUE INDEX IF NOT EXISTS vehicle_spec_pattern_pkey ON vehicle_spec_pattern (vehicle_spec_pattern_id);
CREATE INDEX IF NOT EXISTS vehicle_spec_pattern_vsp_idx ON vehicle_spec_pattern (vspec_schema_pattern_id);
