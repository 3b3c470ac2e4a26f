"""The SQL guard: every SQL text with values is parameterised (an AST scan of vehicle_etl/**/*.py),
and the guard itself can fail; the rest of the security tests need a database (tests/integration/test_security.py)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from vehicle_etl.config import PROJECT_ROOT

# -- all SQL with values is parameterised ------------------------------------------------------
# f-strings passed to execute() may interpolate only module constants (UPPER_CASE names) or the
# reviewed expressions below; everything else must be a %s parameter or psycopg.sql.Identifier.
REVIEWED = {
    ("history.py", "', '.join(sets)"): "column assignments from a fixed allowlist of run_history columns",
    ("swap.py", "regproc"): "an oid::regprocedure rendered and quoted by PostgreSQL itself (an identifier)",
}


def _fstring_executes() -> list[tuple[str, int, str]]:
    found = []
    for path in sorted((PROJECT_ROOT / "vehicle_etl").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("execute", "executemany", "copy") and node.args):
                continue
            first = node.args[0]
            if isinstance(first, ast.BinOp) and isinstance(first.op, ast.Mod | ast.Add):
                found.append((path.name, node.lineno, "%-format or + concatenation"))
            if isinstance(first, ast.Call) and getattr(first.func, "attr", "") == "format" \
                    and isinstance(first.func.value, ast.Constant):
                found.append((path.name, node.lineno, "str.format"))
            if isinstance(first, ast.JoinedStr):
                for part in first.values:
                    if isinstance(part, ast.FormattedValue):
                        expr = ast.unparse(part.value)
                        if not (isinstance(part.value, ast.Name) and expr.isupper()) \
                                and (path.name, expr) not in REVIEWED:
                            found.append((path.name, node.lineno, expr))
    return found


def test_no_values_interpolated_into_sql() -> None:
    assert _fstring_executes() == []


def test_the_guard_catches_an_interpolated_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard itself can fail: a module with `execute(f"... {release}")` is reported."""
    fake_root = tmp_path / "root"
    (fake_root / "vehicle_etl").mkdir(parents=True)
    (fake_root / "vehicle_etl" / "bad.py").write_text(
        'def f(conn, release):\n    conn.execute(f"SELECT * FROM t WHERE r = \'{release}\'")\n'
        '    conn.execute("SELECT %s" % release)\n')
    monkeypatch.setattr(sys.modules[__name__], "PROJECT_ROOT", fake_root)
    assert [(f, e) for f, _, e in _fstring_executes()] == [("bad.py", "release"),
                                                            ("bad.py", "%-format or + concatenation")]
