"""docker-compose.yml and .env.example: no Docker engine here, so the file is validated against the
Compose Specification JSON schema (vendored in tests/data/compose-spec.json) and its content asserted."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
SCHEMA = Path(__file__).resolve().parents[1] / "data" / "compose-spec.json"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def interpolate(text: str, env: dict[str, str], seen: set[str] | None = None) -> str:
    """Compose-style ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}, nested in
    defaults as Compose allows (${A:-${B:-x}}); $$ is a literal $. Names met go into `seen`."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        if not text.startswith("${", i):
            out.append(text[i])
            i += 1
            continue
        name = _NAME.match(text, i + 2)
        assert name, f"bad interpolation at {text[i:i + 40]!r}"
        j = name.end()
        op = next((o for o in (":-", ":?", "-", "?") if text.startswith(o, j)), "")
        j += len(op)
        depth, k = 1, j  # the argument runs to the matching brace
        while depth:
            if text.startswith("$$", k):
                k += 2
                continue
            if text.startswith("${", k):
                depth, k = depth + 1, k + 2
                continue
            depth -= text[k] == "}"
            k += 1
        arg = text[j:k - 1]
        if seen is not None:
            seen.add(name.group())
            interpolate(arg, env, seen)  # names in a default count as used too
        value = env.get(name.group())
        unset = not value if op in (":-", ":?") else value is None  # ":" also treats empty as unset
        if unset and op in (":-", "-"):
            out.append(interpolate(arg, env))
        elif unset and op in (":?", "?"):
            raise ValueError(f"required variable {name.group()} is missing: {arg}")
        else:
            out.append(value or "")
        i = k
    return "".join(out)


def referenced_names() -> set[str]:
    seen: set[str] = set()
    interpolate(COMPOSE.read_text(), {n: "x" for n in env_example()}, seen)
    return seen


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def filled_env() -> dict[str, str]:
    """.env.example with its empty secrets filled, as an operator would."""
    env = env_example()
    env.update(AIRFLOW_FERNET_KEY="x" * 43 + "=", AIRFLOW_JWT_SECRET="s" * 64)
    return env


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(interpolate(COMPOSE.read_text(), filled_env()))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_valid_against_compose_spec(raw: dict[str, Any], compose: dict[str, Any], validator) -> None:
    for doc in (raw, compose):
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_schema_catches_mistakes(compose: dict[str, Any], validator) -> None:
    """The vendored schema is strict enough to reject typical slips (so the test above means something)."""
    bad_condition = copy.deepcopy(compose)
    bad_condition["services"]["airflow-scheduler"]["depends_on"]["airflow-db"]["condition"] = "service_ready"
    bad_key = copy.deepcopy(compose)
    bad_key["services"]["mssql-source"]["healtcheck"] = {"test": ["CMD", "true"]}
    bad_volume = copy.deepcopy(compose)
    bad_volume["volumes"]["mssql_source_data"] = {"drivr": "local"}
    for doc in (bad_condition, bad_key, bad_volume):
        assert list(validator.iter_errors(doc))


def test_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {
        "airflow-db", "redis", "mssql-source", "mvp-platform-database", "airflow-init",
        "airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker",
        "mvp-platform-api",
    }
    airflow = [n for n in services if n.startswith("airflow-") and n != "airflow-db"]
    for name in airflow:
        assert services[name]["image"] == "vehicle-etl-airflow:3.3.2"
        assert services[name]["build"] == {"context": ".", "dockerfile": "Dockerfile"}
        assert ".:/opt/vehicle-etl" in services[name]["volumes"]
    assert services["airflow-api-server"]["command"] == "api-server"
    assert services["airflow-scheduler"]["command"] == "scheduler"
    assert services["airflow-dag-processor"]["command"] == "dag-processor"
    assert services["airflow-triggerer"]["command"] == "triggerer"
    assert services["airflow-api-server"]["ports"] == ["127.0.0.1:8080:8080"]
    assert services["airflow-init"]["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM apache/airflow:3.3.2-python3.11" in dockerfile
    assert "-r /opt/vehicle-etl/requirements.txt" in dockerfile and "-e /opt/vehicle-etl" in dockerfile


def test_platform_api(compose: dict[str, Any]) -> None:
    """vehicle-etl serve over the platform database: its own settings, loopback port, a real health path."""
    svc = compose["services"]["mvp-platform-api"]
    assert svc["image"] == "vehicle-etl-airflow:3.3.2" and ".:/opt/vehicle-etl" in svc["volumes"]
    assert svc["entrypoint"][:2] == ["vehicle-etl", "serve"]
    port = svc["entrypoint"][svc["entrypoint"].index("--port") + 1]
    assert svc["ports"] == [f"127.0.0.1:{port}:{port}"]  # published on the host's loopback only
    env = svc["environment"]
    assert (env["MVP_PLATFORM_DB_HOST"], env["MVP_PLATFORM_DB_PORT"]) == ("mvp-platform-database", "5432")
    assert env["MVP_PLATFORM_DB_PASSWORD"] == env_example()["MVP_PLATFORM_DB_PASSWORD"]
    assert not any(k.startswith("AIRFLOW") for k in env)  # no Airflow secrets in the API
    test = " ".join(svc["healthcheck"]["test"])
    assert "--fail" in test and f"http://localhost:{port}/api/vehicles/health" in test
    assert svc["depends_on"] == {"mvp-platform-database": {"condition": "service_healthy"}}
    from vehicle_etl.serving.vpic_api.app import create_app

    paths = {r.path for r in create_app("").routes}  # type: ignore[attr-defined]
    assert "/api/vehicles/health" in paths


def test_executor_local_by_default_and_celery_profile(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("airflow-scheduler", "airflow-api-server", "airflow-triggerer", "airflow-dag-processor"):
        assert services[name]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert "profiles" not in services[name]
    worker = services["airflow-worker"]
    assert worker["profiles"] == ["celery"] and worker["command"] == "celery worker"
    assert worker["environment"]["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379/")
    # The Celery profile is the configuration the real-Airflow suite runs (TestCeleryExecutor): Redis
    # broker, the PostgreSQL metadata database as result backend, two workers of concurrency 2.
    assert worker["deploy"]["replicas"] == 2
    env = worker["environment"]
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/1"
    assert env["AIRFLOW__CELERY__BROKER_URL"] != env["MVP_PLATFORM_REDIS_URL"]  # not the app's cache DB
    meta = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + meta.replace("postgresql+psycopg2://", "postgresql://")
    assert env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == "2"
    assert {"redis", "airflow-db"} <= set(worker["depends_on"])
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    celery_env = {**filled_env(), "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"}
    celery = yaml.safe_load(interpolate(COMPOSE.read_text(), celery_env))
    assert celery["services"]["airflow-worker"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    for name in ("airflow-db", "redis", "mssql-source", "mvp-platform-database"):
        assert "profiles" not in services[name]


def test_mssql_source(compose: dict[str, Any], raw: dict[str, Any]) -> None:
    svc = compose["services"]["mssql-source"]
    assert svc["image"] == "mcr.microsoft.com/mssql/server:2019-latest"
    assert svc["environment"]["ACCEPT_EULA"] == "Y"
    assert svc["environment"]["MSSQL_SA_PASSWORD"] == env_example()["MSSQL_SOURCE_PASSWORD"]
    assert raw["services"]["mssql-source"]["environment"]["MSSQL_SA_PASSWORD"].startswith("${MSSQL_SOURCE_PASSWORD:?")
    assert "mssql_source_data:/var/opt/mssql" in svc["volumes"]
    assert "./backups:/var/opt/mssql/backups:ro" in svc["volumes"]
    hc = svc["healthcheck"]
    assert hc["start_period"] == "60s"
    assert "sqlcmd" in " ".join(hc["test"]) and "$MSSQL_SA_PASSWORD" in " ".join(hc["test"])
    # The Airflow side restores from the same folder, as the server sees it.
    env = compose["services"]["airflow-scheduler"]["environment"]
    assert env["VPIC_MSSQL_BACKUPS_DIR"] == "/var/opt/mssql/backups"
    assert "./backups:/opt/airflow/backups" in compose["services"]["airflow-scheduler"]["volumes"]
    assert env["VPIC_BACKUPS_DIR"] == "/opt/airflow/backups"


def test_platform_database(compose: dict[str, Any]) -> None:
    svc = compose["services"]["mvp-platform-database"]
    assert svc["image"] == "postgres:15-alpine"
    assert svc["environment"]["POSTGRES_DB"] == "mvp-platform-vehicles"
    assert svc["environment"]["POSTGRES_USER"] == "mvp_platform_user"
    assert svc["ports"] == ["127.0.0.1:5433:5432"]
    assert "mvp_platform_data:/var/lib/postgresql/data" in svc["volumes"]
    assert "pg_isready" in " ".join(svc["healthcheck"]["test"])
    env = compose["services"]["airflow-scheduler"]["environment"]
    assert (env["MVP_PLATFORM_DB_HOST"], env["MVP_PLATFORM_DB_PORT"]) == ("mvp-platform-database", "5432")
    assert env["MVP_PLATFORM_DB_NAME"] == "mvp-platform-vehicles"
    assert env["MVP_PLATFORM_DB_USER"] == "mvp_platform_user"
    assert env["MVP_PLATFORM_DB_PASSWORD"] == env_example()["MVP_PLATFORM_DB_PASSWORD"]
    assert env["MVP_PLATFORM_REDIS_URL"] == "redis://redis:6379/0"


def test_healthchecks_and_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, svc in services.items():
        if name != "airflow-init":
            assert svc.get("healthcheck", {}).get("test"), f"{name} has no health check"
        for dep, spec in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            assert spec["condition"] in ("service_healthy", "service_completed_successfully"), (name, dep)
            if spec["condition"] == "service_healthy":
                assert services[dep].get("healthcheck"), f"{name} waits for {dep} to be healthy, which has no check"
    sched = services["airflow-scheduler"]["depends_on"]
    for dep in ("airflow-db", "redis", "mvp-platform-database", "mssql-source", "airflow-api-server"):
        assert sched[dep]["condition"] == "service_healthy"
    assert sched["airflow-init"]["condition"] == "service_completed_successfully"
    assert set(services["airflow-init"]["depends_on"]) == {"airflow-db"}  # never itself


def test_volumes_declared_and_used(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    assert {"mssql_source_data", "mvp_platform_data"} <= declared
    used = {v.split(":")[0] for svc in compose["services"].values() for v in svc.get("volumes", [])
            if not v.startswith((".", "/"))}
    assert used == declared


def test_connections_are_valid_airflow_json(compose: dict[str, Any]) -> None:
    from airflow.models.connection import Connection

    env = compose["services"]["airflow-scheduler"]["environment"]
    mssql = Connection.from_json(env["AIRFLOW_CONN_MSSQL_SOURCE"], conn_id="mssql_source")
    assert (mssql.conn_type, mssql.host, mssql.port, mssql.login) == ("mssql", "mssql-source", 1433, "sa")
    assert mssql.password == env_example()["MSSQL_SOURCE_PASSWORD"]
    assert mssql.extra_dejson == {"tds_version": "7.4"}
    platform = Connection.from_json(env["AIRFLOW_CONN_MVP_PLATFORM"], conn_id="mvp_platform")
    assert (platform.conn_type, platform.host, platform.port) == ("postgres", "mvp-platform-database", 5432)
    assert (platform.login, platform.schema) == ("mvp_platform_user", "mvp-platform-vehicles")
    smtp = Connection.from_json(env["AIRFLOW_CONN_SMTP_DEFAULT"], conn_id="smtp_default")
    assert (smtp.conn_type, smtp.host, smtp.port) == ("smtp", "smtp.example.com", 587)
    assert env["VPIC_MSSQL_CONN_ID"] == "mssql_source"


def test_no_literal_secrets_in_compose(raw: dict[str, Any]) -> None:
    text = COMPOSE.read_text()
    for name, value in env_example().items():
        if "PASSWORD" in name and value:
            assert value not in text, f"{name}'s example value is hard-coded in docker-compose.yml"
    assert re.search(r"PASSWORD:\s*\$\{", text)


def test_env_example_documents_every_variable() -> None:
    lines = ENV_EXAMPLE.read_text().splitlines()
    names: list[str] = []
    for i, line in enumerate(lines):
        if line.strip() and not line.startswith("#"):
            name = line.split("=", 1)[0]
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*", name), line
            # A comment right above, or the variable continues a commented group of the same kind.
            j = i - 1
            while j >= 0 and lines[j].strip() and not lines[j].startswith("#"):
                j -= 1
            assert j >= 0 and lines[j].startswith("#") and lines[j].strip("# -"), f"{name} has no comment"
            names.append(name)
    assert len(names) == len(set(names)), "duplicate variables"
    referenced = referenced_names()
    assert {"AIRFLOW_API_PORT", "AIRFLOW_API_BASE_URL", "MSSQL_SOURCE_PASSWORD"} <= referenced
    assert referenced - set(names) == set(), "used in docker-compose.yml but missing from .env.example"
    required = {
        "MVP_PLATFORM_DB_HOST", "MVP_PLATFORM_DB_PORT", "MVP_PLATFORM_DB_NAME", "MVP_PLATFORM_DB_USER",
        "MVP_PLATFORM_DB_PASSWORD", "MSSQL_SOURCE_PASSWORD", "VPIC_SOURCE_URL", "VPIC_SOURCE_CONN_ID",
        "VPIC_BACKUPS_DIR", "VEHICLE_ETL_MARKER_DIR", "VEHICLE_ETL_HOME", "MVP_PLATFORM_REDIS_URL",
        "VPIC_DOWNLOAD_BASE_URL", "VPIC_KEEP_RELEASES", "ALERT_EMAIL_TO", "ALERT_WEBHOOK_URL", "SMTP_HOST",
        "SMTP_PORT", "SMTP_USER", "SMTP_PASSWORD", "VPIC_MSSQL_CONN_ID", "VPIC_RESTORE_PG_URL",
    }
    assert required - set(names) == set()


def test_required_secrets_are_enforced() -> None:
    env = env_example()  # AIRFLOW_FERNET_KEY left empty, as in the example
    with pytest.raises(ValueError, match="AIRFLOW_FERNET_KEY"):
        interpolate(COMPOSE.read_text(), env)
    env = filled_env()
    del env["MSSQL_SOURCE_PASSWORD"]
    with pytest.raises(ValueError, match="MSSQL_SOURCE_PASSWORD"):
        interpolate(COMPOSE.read_text(), env)


def test_interpolation_nests_like_compose() -> None:
    text = "a ${X:-${Y:-y}} b $${HOSTNAME} ${Z?need z}"
    assert interpolate(text, {"Z": "z"}) == "a y b ${HOSTNAME} z"
    assert interpolate(text, {"Y": "1", "Z": "z"}) == "a 1 b ${HOSTNAME} z"
    assert interpolate(text, {"X": "0", "Z": ""}) == "a 0 b ${HOSTNAME} "
    with pytest.raises(ValueError, match="need z"):
        interpolate(text, {})


def test_api_published_on_loopback_and_base_url_follows_the_port(compose: dict[str, Any]) -> None:
    """As on a host install: loopback unless configured, and one variable moves the port."""
    env = compose["services"]["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__API__BASE_URL"] == "http://localhost:8080"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-api-server:8080/execution/"
    moved = yaml.safe_load(interpolate(COMPOSE.read_text(), {**filled_env(), "AIRFLOW_API_PORT": "8091"}))
    assert moved["services"]["airflow-api-server"]["ports"] == ["127.0.0.1:8091:8080"]
    for name in ("airflow-scheduler", "airflow-api-server", "airflow-worker"):
        assert moved["services"][name]["environment"]["AIRFLOW__API__BASE_URL"] == "http://localhost:8091"
        # Task processes reach the api-server inside the stack, on its container port.
        assert moved["services"][name]["environment"]["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == \
            "http://airflow-api-server:8080/execution/"
    exposed = yaml.safe_load(interpolate(COMPOSE.read_text(), {
        **filled_env(), "AIRFLOW_API_BIND": "0.0.0.0", "AIRFLOW_API_BASE_URL": "https://airflow.example.com"}))
    assert exposed["services"]["airflow-api-server"]["ports"] == ["0.0.0.0:8080:8080"]
    assert exposed["services"]["airflow-scheduler"]["environment"]["AIRFLOW__API__BASE_URL"] == \
        "https://airflow.example.com"
    published = [p for svc in compose["services"].values() for p in svc.get("ports", [])]
    assert published and all(p.startswith("127.0.0.1:") for p in published), published


def test_default_worker_setting_runs_inside_a_task(compose: dict[str, Any], tmp_path: Path) -> None:
    """The stack's own task environment (its VEHICLE_ETL_WORKERS default and a metadata database URL
    a child process cannot use) applied to a process set up like a supervised task: the COPY
    workers load the sample. (The first round's default of 2 workers broke every task.)"""
    import os
    import subprocess
    import sys

    from conftest import create_database, drop_database, dsn
    from test_copy_workers import TASK_LIKE_MAIN

    from vehicle_etl.config import SAMPLE_DB

    env = compose["services"]["airflow-scheduler"]["environment"]
    workers = int(env["VEHICLE_ETL_WORKERS"])
    assert workers == 2
    script = tmp_path / "task_main.py"
    script.write_text(TASK_LIKE_MAIN.replace("workers=2", f"workers={workers}").replace(
        '"airflow-db-not-for-children://"', repr(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])))
    name = create_database("vetl_compose")
    try:
        proc = subprocess.run(
            [sys.executable, str(script), dsn(name), f"sqlite:///{SAMPLE_DB}", "20000"],
            env={**os.environ, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]},
            capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert json.loads(proc.stdout)["pattern"] > 0
    finally:
        drop_database(name)
