# shellcheck shell=bash
# The environment every `airflow …` command of this project runs with, outside Docker. Sourced by
# scripts/airflow and scripts/airflow-ui (and so by `make run`, `make airflow`, `make airflow-ui`).
# Anything already set in the environment wins, so AIRFLOW_HOME=/elsewhere scripts/airflow … works.
# Keep the first block in step with the exports at the top of the Makefile (tests/integration/test_airflow_cli.py
# checks that both give Airflow the same configuration).
ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"

export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/var/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="${AIRFLOW__CORE__DAGS_FOLDER:-$ROOT/dags}"
export AIRFLOW__CORE__PLUGINS_FOLDER="${AIRFLOW__CORE__PLUGINS_FOLDER:-$ROOT/plugins}"
export AIRFLOW__CORE__LOAD_EXAMPLES="${AIRFLOW__CORE__LOAD_EXAMPLES:-False}"
export AIRFLOW__CORE__UNIT_TEST_MODE="${AIRFLOW__CORE__UNIT_TEST_MODE:-False}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
# `airflow standalone` starts its parts as `airflow` from PATH: this project's, not another one.
export PATH="$ROOT/.venv/bin:$PATH"
# A task process reports its start to the api-server; with the SQLite metadata database of a local
# install, a busy machine can hold that call for tens of seconds, past Airflow's 5 s default, and
# the retried call is then refused (the task already started): the attempt fails before running.
export AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT="${AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT:-90}"
# SQLite metadata database: wait for its write lock (see vehicle_etl.airflow_adapter); {} otherwise.
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS="${AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS:-vehicle_etl.airflow_adapter.METADATA_CONNECT_ARGS}"

# The API server (UI + REST API + the execution API the task processes call back to): loopback
# unless configured. The base URL follows host and port, so changing the port is one variable.
export AIRFLOW__API__HOST="${AIRFLOW__API__HOST:-127.0.0.1}"
export AIRFLOW__API__PORT="${AIRFLOW__API__PORT:-8080}"
case "$AIRFLOW__API__HOST" in
  0.0.0.0 | :: | "") _url_host=localhost ;;
  *:*) _url_host="[$AIRFLOW__API__HOST]" ;;  # an IPv6 address
  *) _url_host="$AIRFLOW__API__HOST" ;;
esac
export AIRFLOW__API__BASE_URL="${AIRFLOW__API__BASE_URL:-http://$_url_host:$AIRFLOW__API__PORT}"
unset _url_host
