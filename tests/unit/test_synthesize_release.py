"""scripts/synthesize_release.py: a complete synthetic vPIC release, built from the shipped sample at tiny scales."""

from __future__ import annotations

import hashlib
import importlib.util
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from vehicle_etl.config import PROJECT_ROOT, SAMPLE_DB

SCRIPT = PROJECT_ROOT / "scripts" / "synthesize_release.py"
_spec = importlib.util.spec_from_file_location("synthesize_release", SCRIPT)
assert _spec and _spec.loader
synth = importlib.util.module_from_spec(_spec)
sys.modules["synthesize_release"] = synth
_spec.loader.exec_module(synth)

# NHTSA's columns of the tables the pruned copies lack (docs/DECODER.md cites where they come from).
NHTSA_COLUMNS = {
    "WMIYearValidChars": ["id", "WMI", "Year", "Position", "Char"],
    "VinException": ["Id", "VIN", "CheckDigit", "CreatedOn", "UpdatedOn"],
    "DefaultValue": ["Id", "ElementId", "VehicleTypeId", "DefaultValue", "CreatedOn", "UpdatedOn"],
    "ErrorCode": ["Id", "Name", "AdditionalErrorText", "weight"],
    "VinDescriptor": ["Id", "Descriptor", "ModelYear", "CreatedOn", "UpdatedOn"],
    "VehicleSpecSchema": ["Id", "MakeId", "CreatedOn", "UpdatedOn", "VehicleTypeId", "SourceDate", "TobeQCed",
                          "Description", "Source", "URL"],
    "VehicleSpecSchema_Model": ["Id", "VehicleSpecSchemaId", "ModelId"],
    "VehicleSpecSchema_Year": ["Id", "VehicleSpecSchemaId", "Year"],
    "VSpecSchemaPattern": ["Id", "SchemaId"],
    "VehicleSpecPattern": ["Id", "VSpecSchemaPatternId", "IsKey", "ElementId", "AttributeId", "CreatedOn",
                           "UpdatedOn"],
    "Conversion": ["Id", "FromElementId", "ToElementId", "Formula"],
}


def _build(tmp: Path, name: str, scale: float, **kw: object) -> Path:
    out = tmp / name
    synth.synthesize(SAMPLE_DB, out, scale, log=lambda *_: None, **kw)
    return out


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite3.Connection]:
    out = _build(tmp_path_factory.mktemp("synth"), "s005.db", 0.05)
    conn = sqlite3.connect(out)
    conn.execute("ATTACH DATABASE ? AS real", (str(SAMPLE_DB),))
    conn.execute("CREATE INDEX main.t_link_wmi ON Wmi_VinSchema (WmiId)")
    conn.execute("CREATE INDEX main.t_pattern_schema ON Pattern (VinSchemaId)")
    yield conn
    conn.close()


def _cols(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f'PRAGMA main.table_info("{table}")')]


def test_every_missing_table_exists_with_nhtsa_columns(small: sqlite3.Connection) -> None:
    for table, cols in NHTSA_COLUMNS.items():
        assert _cols(small, table) == cols, table
        assert small.execute(f'SELECT count(*) FROM main."{table}"').fetchone()[0] > 0, table
    # Every lookup table an element names exists now (the sample lacks 37 of them; ErrorCode is a table of its own).
    tables = {r[0].lower() for r in small.execute("SELECT name FROM main.sqlite_master WHERE type = 'table'")}
    named = {r[0].strip().lower() for r in small.execute("SELECT LookupTable FROM Element WHERE LookupTable <> ''")}
    assert named <= tables, sorted(named - tables)


def test_real_rows_are_kept_unchanged(small: sqlite3.Connection) -> None:
    for table in ("Pattern", "Wmi", "VinSchema", "Wmi_VinSchema", "Element", "Make", "Model"):
        real = small.execute(f'SELECT count(*) FROM real."{table}"').fetchone()[0]
        kept = small.execute(f'SELECT count(*) FROM (SELECT * FROM real."{table}" INTERSECT '
                             f'SELECT * FROM main."{table}")').fetchone()[0]
        assert kept == real, table


def test_pruned_elements_get_patterns_and_the_scale_is_reached(small: sqlite3.Connection) -> None:
    real_elements = {r[0] for r in small.execute("SELECT DISTINCT ElementId FROM real.Pattern")}
    elements = {r[0] for r in small.execute("SELECT DISTINCT ElementId FROM main.Pattern")}
    assert len(elements) > len(real_elements) + 40
    assert not elements & {26, 27, 29, 39}  # never from patterns in NHTSA's data either
    n = small.execute("SELECT count(*) FROM main.Pattern").fetchone()[0]
    assert n >= 0.05 * synth.NHTSA_PATTERNS
    # Unique as NHTSA's IX_Pattern_KeyElement_Unique, and closed: every schema and link resolves.
    assert small.execute("SELECT count(*) FROM (SELECT 1 FROM main.Pattern GROUP BY VinSchemaId, Keys, ElementId "
                         "HAVING count(*) > 1)").fetchone()[0] == 0
    assert small.execute("SELECT count(*) FROM main.Pattern p LEFT JOIN main.VinSchema s ON s.Id = p.VinSchemaId "
                         "WHERE s.Id IS NULL").fetchone()[0] == 0
    assert small.execute("SELECT count(*) FROM main.Wmi_VinSchema l LEFT JOIN main.Wmi w ON w.Id = l.WmiId "
                         "WHERE w.Id IS NULL").fetchone()[0] == 0
    assert small.execute("SELECT count(*), count(DISTINCT Wmi) FROM main.Wmi").fetchone() == tuple(
        [small.execute("SELECT count(*) FROM main.Wmi").fetchone()[0]] * 2)
    # Generated rows are marked; real rows never are.
    assert small.execute("SELECT count(*) FROM real.Pattern WHERE CreatedOn = ?",
                         (synth.SYNTHETIC_STAMP,)).fetchone()[0] == 0


def _or_masks(rows: list[tuple[int, str]]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for sid, keys in rows:
        acc = out.setdefault(sid, [0] * 14)
        for i, m in enumerate(synth.key_masks(keys)[:14]):
            acc[i] |= m
    return out


def test_positions_the_kept_keys_leave_open_are_pinned(small: sqlite3.Connection) -> None:
    """Each of positions 4-8 and 11 that a model schema's real Model keys leave open gets synthetic
    keys pinning that position alone (NHTSA's shape for engine, restraint and plant elements), on
    exactly the characters the schema's real keys admit there (those of the model schemas of its
    WMIs when its own admit none), for a positional element: so a VIN the schema admits has it
    covered. Plant Company Name also sits on every real plant key (as NHTSA's four plant elements)."""
    real = _or_masks(small.execute("SELECT VinSchemaId, upper(Keys) FROM real.Pattern").fetchall())
    model: dict[int, list[tuple[int, ...]]] = {}
    for sid, keys in small.execute("SELECT DISTINCT VinSchemaId, upper(Keys) FROM real.Pattern WHERE ElementId = 28"):
        model.setdefault(sid, []).append(synth.key_masks(keys))
    plant_keys: dict[int, set[str]] = {}
    for sid, keys in small.execute("SELECT VinSchemaId, Keys FROM real.Pattern WHERE ElementId IN (31, 75, 77)"):
        plant_keys.setdefault(sid, set()).add(keys)
    positional = set(synth.PLANT_ELEMENTS).union(*synth.POSITION_GROUPS.values())
    marks = ",".join("?" * len(positional))
    pinned: dict[tuple[int, int], int] = {}  # (schema, position) -> characters pinned there alone
    on_plant_keys: dict[int, set[str]] = {}
    for sid, keys, eid in small.execute(f"SELECT VinSchemaId, Keys, ElementId FROM main.Pattern WHERE CreatedOn = ? "
                                        f"AND ElementId IN ({marks})", (synth.SYNTHETIC_STAMP, *positional)):
        if eid in synth.PLANT_ELEMENTS and keys in plant_keys.get(sid, ()):
            on_plant_keys.setdefault(sid, set()).add(keys)
            continue
        toks = synth.key_tokens(keys)
        at = [i for i, t in enumerate(toks) if t]
        assert len(at) == 1, keys  # one position pinned, the rest '*'
        pos = at[0] + 4
        assert pos in synth.OPEN_POSITIONS, keys
        pinned[(sid, pos)] = pinned.get((sid, pos), 0) | synth.key_masks(keys)[at[0]]
    assert {s: k for s, k in plant_keys.items() if s in real} == on_plant_keys
    by_wmi: dict[int, set[int]] = {}
    for wid, sid in small.execute("SELECT WmiId, VinSchemaId FROM real.Wmi_VinSchema"):
        by_wmi.setdefault(wid, set()).add(sid)
    siblings: dict[int, list[int]] = {}  # per schema: what the model schemas of its WMIs admit
    for group in by_wmi.values():
        acc = [0] * 14
        for other in group & model.keys():
            acc = [a | m for a, m in zip(acc, real.get(other, [0] * 14), strict=True)]
        for sid in group:
            siblings[sid] = [a | m for a, m in zip(siblings.get(sid, [0] * 14), acc, strict=True)]
    checked = 0
    for sid, masks in real.items():
        for pos in synth.OPEN_POSITIONS:
            keys = model.get(sid)
            if not keys or all(len(m) > pos - 4 and m[pos - 4] for m in keys) or (pos == 11 and sid in plant_keys):
                assert (sid, pos) not in pinned, (sid, pos)  # pinned already, or not a model schema
                continue
            want = masks[pos - 4] or siblings.get(sid, [0] * 14)[pos - 4]
            assert pinned.get((sid, pos), 0) == want, (sid, pos)
            checked += want != 0
    assert checked > 1000


def test_valid_chars_come_from_the_linked_schemas_keys(small: sqlite3.Connection) -> None:
    """Each cache row: a character that some key of a schema linked to the WMI for that year admits
    at that position (checked here with SQLite's GLOB, not the script's own parser)."""
    rows = small.execute("SELECT WMI, Year, Position, Char FROM WMIYearValidChars WHERE Position <= 14 "
                         "ORDER BY id LIMIT 200").fetchall()
    assert rows
    for wmi, year, pos, ch in rows:
        idx = pos - 4 if pos <= 8 else pos - 10 + 6  # 0-based index into Keys ('|' at 5)
        # GLOB reads '[...]' classes as NHTSA's LIKE does for these keys; '*' in the key is literal here.
        hit = small.execute(
            "SELECT 1 FROM main.Wmi w JOIN main.Wmi_VinSchema l ON l.WmiId = w.Id "
            "JOIN main.Pattern p ON p.VinSchemaId = l.VinSchemaId "
            "WHERE w.Wmi = ? AND ? BETWEEN l.YearFrom AND coalesce(l.YearTo, 2027) "
            "AND (substr(upper(p.Keys), ? + 1, 1) = ? OR (instr(p.Keys, '[') > 0)) LIMIT 1",
            (wmi, year, idx, ch)).fetchone()
        assert hit, (wmi, year, pos, ch)


def test_serial_positions_list_digits_only(small: sqlite3.Connection) -> None:
    # Positions 16-17 (never read by codes 2-5) list the serial digits, giving the cache its size.
    chars = {r[0] for r in small.execute("SELECT DISTINCT Char FROM WMIYearValidChars WHERE Position IN (16, 17)")}
    assert chars == set("0123456789")


def test_vin_exceptions_have_wrong_check_digits(small: sqlite3.Connection) -> None:
    vins = [r[0] for r in small.execute("SELECT VIN FROM VinException WHERE CheckDigit = 1")]
    assert len(vins) > 100
    assert all(len(v) == 17 and synth.check_digit(v) != v[8] for v in vins)


def test_descriptors_and_defaults_have_nhtsa_shapes(small: sqlite3.Connection) -> None:
    for (d,) in small.execute("SELECT Descriptor FROM VinDescriptor"):
        assert len(d) == 11 and d[8] == "*"
    # A passenger car's bus fields are "Not Applicable"; a bus's are not defaulted.
    assert small.execute("SELECT DefaultValue FROM DefaultValue WHERE ElementId = 149 AND VehicleTypeId = 2"
                         ).fetchone() == ("Not Applicable",)
    assert small.execute("SELECT count(*) FROM DefaultValue WHERE ElementId = 149 AND VehicleTypeId = 5"
                         ).fetchone() == (0,)
    assert small.execute("SELECT count(*) FROM ErrorCode").fetchone()[0] == len(synth.ERROR_CODES)


def _digest(path: Path) -> str:
    conn = sqlite3.connect(path)
    h = hashlib.sha256()
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
        for row in conn.execute(f'SELECT * FROM "{name}" ORDER BY 1, 2'):
            h.update(repr(row).encode())
    conn.close()
    return h.hexdigest()


def test_deterministic_growing_and_capped(tmp_path: Path) -> None:
    a = _build(tmp_path, "a.db", 0.02)
    b = _build(tmp_path, "b.db", 0.02)
    assert _digest(a) == _digest(b)
    bigger = _build(tmp_path, "c.db", 0.1)
    capped = _build(tmp_path, "d.db", 0.1, rows=500)

    def n(path: Path, table: str) -> int:
        with sqlite3.connect(path) as conn:
            return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])

    for table in ("Pattern", "Wmi", "VinSchema", "WMIYearValidChars"):
        assert n(bigger, table) > n(a, table), table
    assert n(capped, "WMIYearValidChars") == 500
    assert n(capped, "Pattern") <= n(tmp_path / "c.db", "Pattern")


def test_cli_reports_a_missing_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = synth.main(["--scale", "0.01", "--out", str(tmp_path / "x.db"), "--from", str(tmp_path / "nope.db")])
    assert rc == 1
    assert "not found" in capsys.readouterr().err
    assert not (tmp_path / "x.db").exists()
