-- Keys and indexes, declared after the bulk load (search_path = the staging schema).
-- Runs after the key checks of the quality gate, so a violation here is a bug, not bad data.
ALTER TABLE make                 ADD PRIMARY KEY (make_id);
ALTER TABLE model                ADD PRIMARY KEY (model_id);
ALTER TABLE make_model           ADD PRIMARY KEY (model_id);           -- a model has one make
ALTER TABLE manufacturer         ADD PRIMARY KEY (manufacturer_id);
ALTER TABLE manufacturer_make    ADD PRIMARY KEY (manufacturer_id, make_id);
ALTER TABLE wmi                  ADD PRIMARY KEY (wmi_id);
ALTER TABLE wmi                  ADD CONSTRAINT wmi_wmi_key UNIQUE (wmi);
ALTER TABLE wmi_make             ADD PRIMARY KEY (wmi_id, make_id);
ALTER TABLE vin_schema           ADD PRIMARY KEY (vin_schema_id);
ALTER TABLE wmi_vin_schema       ADD PRIMARY KEY (wmi_vin_schema_id);
ALTER TABLE element              ADD PRIMARY KEY (element_id);
ALTER TABLE pattern              ADD PRIMARY KEY (pattern_id);
ALTER TABLE engine_model         ADD PRIMARY KEY (engine_model_id);
ALTER TABLE engine_model_pattern ADD PRIMARY KEY (engine_model_pattern_id);
ALTER TABLE conversion           ADD PRIMARY KEY (conversion_id);
ALTER TABLE lookup               ADD PRIMARY KEY (lookup_table, lookup_id);
ALTER TABLE model_year           ADD PRIMARY KEY (make_id, model_year, model_id);

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

-- Access paths for the dropdowns and the decoder.
CREATE INDEX make_model_make_idx        ON make_model (make_id);
CREATE INDEX wmi_make_make_idx          ON wmi_make (make_id);
CREATE INDEX wmi_vin_schema_wmi_idx     ON wmi_vin_schema (wmi_id, year_from, year_to);
CREATE INDEX wmi_vin_schema_schema_idx  ON wmi_vin_schema (vin_schema_id);
CREATE INDEX pattern_schema_element_idx ON pattern (vin_schema_id, element_id);
CREATE INDEX pattern_element_idx        ON pattern (element_id);
CREATE INDEX engine_model_name_idx      ON engine_model (lower(engine_model_name));
CREATE INDEX engine_model_pattern_engine_idx ON engine_model_pattern (engine_model_id);
CREATE INDEX model_year_year_make_idx   ON model_year (model_year, make_id);
