"""The derive files run side by side as soon as the files they read from have committed
(load.DERIVE_STEPS): a file that reads a derived table must list the file that builds it."""

from __future__ import annotations

import re

from vehicle_etl.platform_db import sql_files
from vehicle_etl.spec import DERIVED_TABLES
from vehicle_etl.staging.load import DERIVE_STEPS


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
    assert set(built.values()) == {name for name, _ in DERIVE_STEPS}


def test_a_file_waits_for_every_file_whose_tables_it_reads() -> None:
    built, read = _tables_built_and_read()
    needs = dict(DERIVE_STEPS)

    def before(name: str) -> set[str]:  # the files that have committed when `name` starts
        out: set[str] = set()
        for dep in needs[name]:
            out |= {dep} | before(dep)
        return out

    for name, tables in read.items():
        for table in tables:
            producer = built[table]
            assert producer == name or producer in before(name), (
                f"{name}.sql reads {table}, built by {producer}.sql: add it to load.DERIVE_STEPS[{name!r}]")


def test_listed_order_is_a_valid_sequential_order() -> None:
    """Without a second connection the files run one by one in the listed order."""
    seen: set[str] = set()
    for name, deps in DERIVE_STEPS:
        assert set(deps) <= seen, name
        seen.add(name)
