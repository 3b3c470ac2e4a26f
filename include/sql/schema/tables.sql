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
-- The decoding tables of NHTSA's complete release, optional in the source (the pruned snapshots
-- lack them: empty here, and the decoder falls back). docs/DECODER.md says what each changes.
CREATE TABLE vin_exception (             -- VINs whose wrong check digit is accepted (no error 1)
    vin_exception_id integer NOT NULL,
    vin              text    NOT NULL,
    check_digit      boolean NOT NULL DEFAULT false
);
CREATE TABLE wmi_year_valid_chars (      -- NHTSA's cache of the characters per WMI, year, position
    wmi_year_valid_chars_id integer NOT NULL,
    wmi                     text    NOT NULL,
    year                    integer NOT NULL,
    position                integer,
    valid_char              text
);
CREATE TABLE wmi_year_valid_chars_exception (  -- WMIs whose cache rows are not used
    exception_id integer NOT NULL,
    wmi          text    NOT NULL
);
CREATE TABLE default_value (             -- "Not Applicable" and other defaults per vehicle type
    default_value_id integer NOT NULL,
    element_id       integer NOT NULL,
    vehicle_type_id  integer NOT NULL,
    default_value    text
);
CREATE TABLE error_code (                -- names and weights of the error codes
    error_code_id         integer NOT NULL,
    error_code_name       text    NOT NULL,
    additional_error_text text,
    weight                integer
);
CREATE TABLE vin_descriptor (            -- model-year overrides per VIN descriptor
    vin_descriptor_id integer NOT NULL,
    descriptor        text    NOT NULL,
    model_year        integer NOT NULL
);
CREATE TABLE vehicle_spec_schema (       -- model-level spec sheets (VehicleSpec*)
    vehicle_spec_schema_id integer NOT NULL,
    make_id                integer NOT NULL,
    vehicle_type_id        integer,
    tobe_qced              boolean NOT NULL DEFAULT false
);
CREATE TABLE vehicle_spec_schema_model (
    vehicle_spec_schema_model_id integer NOT NULL,
    vehicle_spec_schema_id       integer NOT NULL,
    model_id                     integer NOT NULL
);
CREATE TABLE vehicle_spec_schema_year (
    vehicle_spec_schema_year_id integer NOT NULL,
    vehicle_spec_schema_id      integer NOT NULL,
    year                        integer NOT NULL
);
CREATE TABLE vspec_schema_pattern (
    vspec_schema_pattern_id integer NOT NULL,
    vehicle_spec_schema_id  integer NOT NULL
);
CREATE TABLE vehicle_spec_pattern (
    vehicle_spec_pattern_id integer NOT NULL,
    vspec_schema_pattern_id integer NOT NULL,
    is_key                  boolean NOT NULL DEFAULT false,
    element_id              integer NOT NULL,
    attribute_id            text    NOT NULL
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
