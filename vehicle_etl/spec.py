"""What is read from a vPIC source and where it lands: one declaration for every source flavour.

Source names are vPIC's (SQL Server `dbo` and the SQLite copies spell them `Make.Id`; NHTSA's
PostgreSQL dump lower-cases them in schema `vpic`); `sources.py` maps them per flavour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["int", "text", "name", "trim", "ts", "bool"]


@dataclass(frozen=True)
class Col:
    source: str  # vPIC column name
    target: str  # platform column name
    kind: Kind  # name: required text, trimmed; trim: optional text, trimmed; ts: timestamp; bool: 0/1


@dataclass(frozen=True)
class TableSpec:
    source: str
    target: str
    columns: tuple[Col, ...]
    required: bool = True

    @property
    def source_columns(self) -> list[str]:
        return [c.source for c in self.columns]

    @property
    def target_columns(self) -> list[str]:
        return [c.target for c in self.columns]


def _t(source: str, target: str, *cols: tuple[str, str, Kind], required: bool = True) -> TableSpec:
    return TableSpec(source, target, tuple(Col(*c) for c in cols), required)


TABLES: tuple[TableSpec, ...] = (
    _t("Make", "make", ("Id", "make_id", "int"), ("Name", "make_name", "name"),
       ("CreatedOn", "created_on", "ts"), ("UpdatedOn", "updated_on", "ts")),
    _t("Model", "model", ("Id", "model_id", "int"), ("Name", "model_name", "name"),
       ("CreatedOn", "created_on", "ts"), ("UpdatedOn", "updated_on", "ts")),
    _t("Make_Model", "make_model", ("MakeId", "make_id", "int"), ("ModelId", "model_id", "int")),
    _t("Manufacturer", "manufacturer", ("Id", "manufacturer_id", "int"), ("Name", "manufacturer_name", "name")),
    _t("Manufacturer_Make", "manufacturer_make",
       ("ManufacturerId", "manufacturer_id", "int"), ("MakeId", "make_id", "int")),
    _t("Wmi", "wmi", ("Id", "wmi_id", "int"), ("Wmi", "wmi", "name"),
       ("ManufacturerId", "manufacturer_id", "int"), ("MakeId", "make_id", "int"),
       ("VehicleTypeId", "vehicle_type_id", "int"), ("TruckTypeId", "truck_type_id", "int"),
       ("CountryId", "country_id", "int"), ("PublicAvailabilityDate", "public_availability_date", "ts"),
       ("CreatedOn", "created_on", "ts"), ("UpdatedOn", "updated_on", "ts")),
    _t("Wmi_Make", "wmi_make", ("WmiId", "wmi_id", "int"), ("MakeId", "make_id", "int")),
    _t("VinSchema", "vin_schema", ("Id", "vin_schema_id", "int"), ("Name", "schema_name", "name"),
       ("TobeQCed", "tobe_qced", "bool"), ("CreatedOn", "created_on", "ts"), ("UpdatedOn", "updated_on", "ts")),
    _t("Wmi_VinSchema", "wmi_vin_schema", ("Id", "wmi_vin_schema_id", "int"), ("WmiId", "wmi_id", "int"),
       ("VinSchemaId", "vin_schema_id", "int"), ("YearFrom", "year_from", "int"), ("YearTo", "year_to", "int")),
    _t("Element", "element", ("Id", "element_id", "int"), ("Name", "element_name", "name"),
       ("Code", "code", "trim"), ("LookupTable", "lookup_table", "trim"), ("DataType", "data_type", "trim"),
       ("Decode", "decode", "trim"), ("IsPrivate", "is_private", "bool"), ("weight", "weight", "int")),
    _t("Pattern", "pattern", ("Id", "pattern_id", "int"), ("VinSchemaId", "vin_schema_id", "int"),
       ("Keys", "keys", "name"), ("ElementId", "element_id", "int"), ("AttributeId", "attribute_id", "name"),
       ("CreatedOn", "created_on", "ts"), ("UpdatedOn", "updated_on", "ts")),
    _t("EngineModel", "engine_model", ("Id", "engine_model_id", "int"), ("Name", "engine_model_name", "name"),
       ("Description", "description", "text")),
    _t("EngineModelPattern", "engine_model_pattern", ("Id", "engine_model_pattern_id", "int"),
       ("EngineModelId", "engine_model_id", "int"), ("ElementId", "element_id", "int"),
       ("AttributeId", "attribute_id", "name")),
    _t("Conversion", "conversion", ("Id", "conversion_id", "int"), ("FromElementId", "from_element_id", "int"),
       ("ToElementId", "to_element_id", "int"), ("Formula", "formula", "name"), required=False),
    # The decoding tables of NHTSA's complete release (the pruned snapshots lack them; optional, so a
    # source without them loads as before and the decoder falls back). Names and columns: NHTSA's
    # (docs/DECODER.md, "The complete release", cites where each was read).
    _t("VinException", "vin_exception", ("Id", "vin_exception_id", "int"), ("VIN", "vin", "name"),
       ("CheckDigit", "check_digit", "bool"), required=False),
    _t("WMIYearValidChars", "wmi_year_valid_chars", ("id", "wmi_year_valid_chars_id", "int"),
       ("WMI", "wmi", "name"), ("Year", "year", "int"), ("Position", "position", "int"), ("Char", "valid_char", "trim"),
       required=False),
    _t("WMIYearValidChars_CacheExceptions", "wmi_year_valid_chars_exception", ("Id", "exception_id", "int"),
       ("WMI", "wmi", "name"), required=False),
    _t("DefaultValue", "default_value", ("Id", "default_value_id", "int"), ("ElementId", "element_id", "int"),
       ("VehicleTypeId", "vehicle_type_id", "int"), ("DefaultValue", "default_value", "text"), required=False),
    _t("ErrorCode", "error_code", ("Id", "error_code_id", "int"), ("Name", "error_code_name", "name"),
       ("AdditionalErrorText", "additional_error_text", "trim"), ("weight", "weight", "int"), required=False),
    _t("VinDescriptor", "vin_descriptor", ("Id", "vin_descriptor_id", "int"), ("Descriptor", "descriptor", "name"),
       ("ModelYear", "model_year", "int"), required=False),
    _t("VehicleSpecSchema", "vehicle_spec_schema", ("Id", "vehicle_spec_schema_id", "int"),
       ("MakeId", "make_id", "int"), ("VehicleTypeId", "vehicle_type_id", "int"), ("TobeQCed", "tobe_qced", "bool"),
       required=False),
    _t("VehicleSpecSchema_Model", "vehicle_spec_schema_model", ("Id", "vehicle_spec_schema_model_id", "int"),
       ("VehicleSpecSchemaId", "vehicle_spec_schema_id", "int"), ("ModelId", "model_id", "int"), required=False),
    _t("VehicleSpecSchema_Year", "vehicle_spec_schema_year", ("Id", "vehicle_spec_schema_year_id", "int"),
       ("VehicleSpecSchemaId", "vehicle_spec_schema_id", "int"), ("Year", "year", "int"), required=False),
    _t("VSpecSchemaPattern", "vspec_schema_pattern", ("Id", "vspec_schema_pattern_id", "int"),
       ("SchemaId", "vehicle_spec_schema_id", "int"), required=False),
    _t("VehicleSpecPattern", "vehicle_spec_pattern", ("Id", "vehicle_spec_pattern_id", "int"),
       ("VSpecSchemaPatternId", "vspec_schema_pattern_id", "int"), ("IsKey", "is_key", "bool"),
       ("ElementId", "element_id", "int"), ("AttributeId", "attribute_id", "name"), required=False),
)

# The tables above that only NHTSA's complete release has (the pruned snapshots and the shipped
# sample do not): optional, and not expected in a snapshot.
COMPLETE_RELEASE_ONLY = frozenset({
    "VinException", "WMIYearValidChars", "WMIYearValidChars_CacheExceptions", "DefaultValue", "ErrorCode",
    "VinDescriptor", "VehicleSpecSchema", "VehicleSpecSchema_Model", "VehicleSpecSchema_Year",
    "VSpecSchemaPattern", "VehicleSpecPattern",
})

# Tables big enough to split in shards over the COPY workers (Pattern ~1.7M rows, WMIYearValidChars
# ~8.8M in NHTSA's complete release); the shard key is the first (id) column.
SHARDED_TABLES = frozenset({"Pattern", "WMIYearValidChars"})

# Lookup tables (Id, Name) are discovered from Element.LookupTable and land in one `lookup` table.
LOOKUP_COLUMNS = (Col("Id", "lookup_id", "int"), Col("Name", "lookup_name", "name"))
LOOKUP_TARGET = "lookup"
# Lookups that have their own platform tables.
LOOKUPS_WITH_OWN_TABLE = frozenset({"Make", "Model", "Manufacturer", "ErrorCode"})

# Tables the platform builds from the loaded ones (include/sql/derive/).
DERIVED_TABLES = (
    "public_schema_link",                                                  # public_schema_link.sql
    "model_year", "dropdown_make",                                         # model_year.sql
    "decode_key",                                                          # decode_key.sql
    "decode_element", "decode_schema_key", "decode_schema_chars",          # decode_support.sql
    "decode_wmi", "decode_wmi_link", "decode_error_code", "decode_template", "decode_wmi_year_chars", "decode_default",
    "decode_spec_key", "decode_spec_fill",
    "model_trim_option", "model_engine_option", "model_transmission_option",  # dropdown_options.sql
)


def by_source(name: str) -> TableSpec:
    for spec in TABLES:
        if spec.source == name:
            return spec
    raise KeyError(name)

# Tables the extraction fills (the key checks of gate 1 cover these, before anything is derived).
LOADED_TABLES = tuple(t.target for t in TABLES) + (LOOKUP_TARGET,)
