-- Platform tables, created empty in the staging schema (search_path is set to it by the loader).
-- Names follow vPIC's tables in snake_case; keys and indexes are added after the bulk load
-- (keys.sql), because building them once over loaded data is much faster than maintaining them
-- row by row during COPY.

-- Catalog ------------------------------------------------------------------------------------
CREATE TABLE make (
    make_id     integer NOT NULL,
    make_name   text    NOT NULL,
    created_on  timestamp,
    updated_on  timestamp
);
CREATE TABLE model (
    model_id    integer NOT NULL,
    model_name  text    NOT NULL,
    created_on  timestamp,
    updated_on  timestamp
);
CREATE TABLE make_model (
    make_id     integer NOT NULL,
    model_id    integer NOT NULL
);
CREATE TABLE manufacturer (
    manufacturer_id   integer NOT NULL,
    manufacturer_name text    NOT NULL
);
CREATE TABLE manufacturer_make (
    manufacturer_id integer NOT NULL,
    make_id         integer NOT NULL
);

-- VIN decoding -------------------------------------------------------------------------------
CREATE TABLE wmi (
    wmi_id                   integer NOT NULL,
    wmi                      text    NOT NULL,
    manufacturer_id          integer,
    make_id                  integer,          -- not used by NHTSA's decoder (Wmi_Make is)
    vehicle_type_id          integer,
    truck_type_id            integer,
    country_id               integer,
    public_availability_date timestamp,
    created_on               timestamp,
    updated_on               timestamp
);
CREATE TABLE wmi_make (
    wmi_id  integer NOT NULL,
    make_id integer NOT NULL
);
CREATE TABLE vin_schema (
    vin_schema_id integer NOT NULL,
    schema_name   text    NOT NULL,
    tobe_qced     boolean NOT NULL DEFAULT false,
    created_on    timestamp,
    updated_on    timestamp
);
CREATE TABLE wmi_vin_schema (
    wmi_vin_schema_id integer NOT NULL,
    wmi_id            integer NOT NULL,
    vin_schema_id     integer NOT NULL,
    year_from         integer NOT NULL,
    year_to           integer            -- NULL: open-ended
);
CREATE TABLE element (
    element_id   integer NOT NULL,
    element_name text    NOT NULL,
    code         text,
    lookup_table text,
    data_type    text,
    decode       text,                   -- NULL: never output
    is_private   boolean NOT NULL DEFAULT false,
    weight       integer
);
CREATE TABLE pattern (
    pattern_id    integer NOT NULL,
    vin_schema_id integer NOT NULL,
    keys          text    NOT NULL,
    element_id    integer NOT NULL,
    attribute_id  text    NOT NULL,
    created_on    timestamp,
    updated_on    timestamp
);
CREATE TABLE engine_model (
    engine_model_id integer NOT NULL,
    engine_model_name text  NOT NULL,
    description     text
);
CREATE TABLE engine_model_pattern (
    engine_model_pattern_id integer NOT NULL,
    engine_model_id         integer NOT NULL,
    element_id              integer NOT NULL,
    attribute_id            text    NOT NULL
);
-- Optional in the source (the snapshot has it; older copies may not).
CREATE TABLE conversion (
    conversion_id   integer NOT NULL,
    from_element_id integer NOT NULL,
    to_element_id   integer NOT NULL,
    formula         text    NOT NULL
);
-- Every vPIC lookup table named by Element.LookupTable (BodyStyle, DriveType, FuelType,
-- Transmission, Country, VehicleType, ...) except Make, Model and Manufacturer, in one table.
CREATE TABLE lookup (
    lookup_table text    NOT NULL,
    lookup_id    integer NOT NULL,
    lookup_name  text    NOT NULL
);

-- About this catalog: one row, written by the pipeline. -------------------------------------
CREATE TABLE catalog_info (
    release     text        NOT NULL,
    source      text        NOT NULL,
    run_id      text        NOT NULL,
    built_at    timestamptz NOT NULL DEFAULT now()
);
