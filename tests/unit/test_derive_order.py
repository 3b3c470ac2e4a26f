"""The derive files run side by side as soon as the files they read from have committed (their
headers, vehicle_etl.staging.derived): a header must name every table its file builds and every
derived table it reads."""

from __future__ import annotations

import re

from vehicle_etl.platform_db import sql_files
from vehicle_etl.spec import DERIVED_TABLES
from vehicle_etl.staging.derived import derive_files


def _tables_built_and_read() -> tuple[dict[str, str], dict[str, set[str]]]:
    built: dict[str, str] = {}
    read: dict[str, set[str]] = {}
    for path in sql_files("derive"):
        text = re.sub(r"--[^\n]*", "", path.read_text())  # comments name tables too
        for table in re.findall(r"CREATE TABLE\s+(\w+)", text):
            built[table] = path.stem
        read[path.stem] = {t for t in DERIVED_TABLES
                           if re.search(rf"\b(FROM|JOIN)\s+{t}\b", text)}
    return built, read


def test_every_derived_table_is_built_by_exactly_one_listed_file() -> None:
    built, _ = _tables_built_and_read()
    assert set(built) == set(DERIVED_TABLES)
    files = derive_files()
    assert {d.name for d in files} == set(built.values())
    assert {t: d.name for d in files for t in d.builds} == built  # the headers say what the SQL does


def test_a_file_waits_for_every_file_whose_tables_it_reads() -> None:
    built, read = _tables_built_and_read()
    needs = {d.name: d.needs for d in derive_files()}

    def before(name: str) -> set[str]:  # the files that have committed when `name` starts
        out: set[str] = set()
        for dep in needs[name]:
            out |= {dep} | before(dep)
        return out

    for name, tables in read.items():
        for table in tables:
            producer = built[table]
            assert producer == name or producer in before(name), (
                f"{name}.sql reads {table}, built by {producer}.sql: name it in the file's '-- reads:' header")


def test_listed_order_is_a_valid_sequential_order() -> None:
    """Without a second connection the files run one by one in priority order."""
    seen: set[str] = set()
    for d in derive_files():
        assert set(d.needs) <= seen, d.name
        seen.add(d.name)
