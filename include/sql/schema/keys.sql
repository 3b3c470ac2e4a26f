-- Keys, declared after the bulk load over the unique indexes indexes.sql built (search_path = the
-- staging schema), in one transaction: cheap catalog changes, then the foreign keys' checks.
-- Runs after the key checks of the quality gate, so a violation here is a bug, not bad data.
-- A model has one make: make_model's key is model_id.
ALTER TABLE make                 ADD CONSTRAINT make_pkey PRIMARY KEY USING INDEX make_pkey;
ALTER TABLE model                ADD CONSTRAINT model_pkey PRIMARY KEY USING INDEX model_pkey;
ALTER TABLE make_model           ADD CONSTRAINT make_model_pkey PRIMARY KEY USING INDEX make_model_pkey;
ALTER TABLE manufacturer         ADD CONSTRAINT manufacturer_pkey PRIMARY KEY USING INDEX manufacturer_pkey;
ALTER TABLE manufacturer_make    ADD CONSTRAINT manufacturer_make_pkey PRIMARY KEY USING INDEX manufacturer_make_pkey;
ALTER TABLE wmi                  ADD CONSTRAINT wmi_pkey PRIMARY KEY USING INDEX wmi_pkey;
ALTER TABLE wmi                  ADD CONSTRAINT wmi_wmi_key UNIQUE USING INDEX wmi_wmi_key;
ALTER TABLE wmi_make             ADD CONSTRAINT wmi_make_pkey PRIMARY KEY USING INDEX wmi_make_pkey;
ALTER TABLE vin_schema           ADD CONSTRAINT vin_schema_pkey PRIMARY KEY USING INDEX vin_schema_pkey;
ALTER TABLE wmi_vin_schema       ADD CONSTRAINT wmi_vin_schema_pkey PRIMARY KEY USING INDEX wmi_vin_schema_pkey;
ALTER TABLE element              ADD CONSTRAINT element_pkey PRIMARY KEY USING INDEX element_pkey;
ALTER TABLE pattern              ADD CONSTRAINT pattern_pkey PRIMARY KEY USING INDEX pattern_pkey;
ALTER TABLE engine_model         ADD CONSTRAINT engine_model_pkey PRIMARY KEY USING INDEX engine_model_pkey;
ALTER TABLE engine_model_pattern ADD CONSTRAINT engine_model_pattern_pkey PRIMARY KEY USING INDEX engine_model_pattern_pkey;
ALTER TABLE conversion           ADD CONSTRAINT conversion_pkey PRIMARY KEY USING INDEX conversion_pkey;
ALTER TABLE lookup               ADD CONSTRAINT lookup_pkey PRIMARY KEY USING INDEX lookup_pkey;
ALTER TABLE model_year           ADD CONSTRAINT model_year_pkey PRIMARY KEY USING INDEX model_year_pkey;
ALTER TABLE vin_exception        ADD CONSTRAINT vin_exception_pkey PRIMARY KEY USING INDEX vin_exception_pkey;
ALTER TABLE wmi_year_valid_chars ADD CONSTRAINT wmi_year_valid_chars_pkey PRIMARY KEY USING INDEX wmi_year_valid_chars_pkey;
ALTER TABLE wmi_year_valid_chars_exception ADD CONSTRAINT wmi_year_valid_chars_exception_pkey
    PRIMARY KEY USING INDEX wmi_year_valid_chars_exception_pkey;
ALTER TABLE default_value        ADD CONSTRAINT default_value_pkey PRIMARY KEY USING INDEX default_value_pkey;
ALTER TABLE error_code           ADD CONSTRAINT error_code_pkey PRIMARY KEY USING INDEX error_code_pkey;
ALTER TABLE vin_descriptor       ADD CONSTRAINT vin_descriptor_pkey PRIMARY KEY USING INDEX vin_descriptor_pkey;
ALTER TABLE vehicle_spec_schema  ADD CONSTRAINT vehicle_spec_schema_pkey PRIMARY KEY USING INDEX vehicle_spec_schema_pkey;
ALTER TABLE vehicle_spec_schema_model ADD CONSTRAINT vehicle_spec_schema_model_pkey
    PRIMARY KEY USING INDEX vehicle_spec_schema_model_pkey;
ALTER TABLE vehicle_spec_schema_year ADD CONSTRAINT vehicle_spec_schema_year_pkey
    PRIMARY KEY USING INDEX vehicle_spec_schema_year_pkey;
ALTER TABLE vspec_schema_pattern ADD CONSTRAINT vspec_schema_pattern_pkey PRIMARY KEY USING INDEX vspec_schema_pattern_pkey;
ALTER TABLE vehicle_spec_pattern ADD CONSTRAINT vehicle_spec_pattern_pkey PRIMARY KEY USING INDEX vehicle_spec_pattern_pkey;

ALTER TABLE make_model        ADD CONSTRAINT make_model_make_fk  FOREIGN KEY (make_id)  REFERENCES make;
ALTER TABLE make_model        ADD CONSTRAINT make_model_model_fk FOREIGN KEY (model_id) REFERENCES model;
ALTER TABLE manufacturer_make ADD CONSTRAINT manufacturer_make_manufacturer_fk
    FOREIGN KEY (manufacturer_id) REFERENCES manufacturer;
ALTER TABLE manufacturer_make ADD CONSTRAINT manufacturer_make_make_fk FOREIGN KEY (make_id) REFERENCES make;
ALTER TABLE wmi_make          ADD CONSTRAINT wmi_make_wmi_fk  FOREIGN KEY (wmi_id)  REFERENCES wmi;
ALTER TABLE wmi_make          ADD CONSTRAINT wmi_make_make_fk FOREIGN KEY (make_id) REFERENCES make;
ALTER TABLE wmi_vin_schema    ADD CONSTRAINT wmi_vin_schema_wmi_fk FOREIGN KEY (wmi_id) REFERENCES wmi;
ALTER TABLE wmi_vin_schema    ADD CONSTRAINT wmi_vin_schema_schema_fk
    FOREIGN KEY (vin_schema_id) REFERENCES vin_schema;
ALTER TABLE pattern           ADD CONSTRAINT pattern_schema_fk  FOREIGN KEY (vin_schema_id) REFERENCES vin_schema;
ALTER TABLE pattern           ADD CONSTRAINT pattern_element_fk FOREIGN KEY (element_id) REFERENCES element;
ALTER TABLE engine_model_pattern ADD CONSTRAINT engine_model_pattern_engine_fk
    FOREIGN KEY (engine_model_id) REFERENCES engine_model;
ALTER TABLE model_year        ADD CONSTRAINT model_year_model_fk FOREIGN KEY (model_id) REFERENCES model;
ALTER TABLE model_year        ADD CONSTRAINT model_year_make_fk  FOREIGN KEY (make_id)  REFERENCES make;
ALTER TABLE default_value        ADD CONSTRAINT default_value_element_fk FOREIGN KEY (element_id) REFERENCES element;
ALTER TABLE vehicle_spec_schema_model ADD CONSTRAINT vehicle_spec_schema_model_schema_fk
    FOREIGN KEY (vehicle_spec_schema_id) REFERENCES vehicle_spec_schema;
ALTER TABLE vehicle_spec_schema_year ADD CONSTRAINT vehicle_spec_schema_year_schema_fk
    FOREIGN KEY (vehicle_spec_schema_id) REFERENCES vehicle_spec_schema;
ALTER TABLE vspec_schema_pattern ADD CONSTRAINT vspec_schema_pattern_schema_fk
    FOREIGN KEY (vehicle_spec_schema_id) REFERENCES vehicle_spec_schema;
ALTER TABLE vehicle_spec_pattern ADD CONSTRAINT vehicle_spec_pattern_vsp_fk
    FOREIGN KEY (vspec_schema_pattern_id) REFERENCES vspec_schema_pattern;
