# The two commands a newcomer needs:  make run  (the ETL once, embedded defaults)  and  make test.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Keep these in step with scripts/airflow-env.sh, the environment of `scripts/airflow` (the way to
# run any airflow command outside make); tests/integration/test_airflow_cli.py checks that they agree.
export AIRFLOW_HOME ?= $(CURDIR)/var/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__UNIT_TEST_MODE := False
export PYTHONPATH := $(CURDIR)

.PHONY: run test install airflow-db lint bench airflow-ui airflow clean

$(BIN)/.installed: requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q uv==0.13.9
	$(BIN)/uv pip install --python $(BIN)/python -q -r requirements.txt
	$(BIN)/uv pip install --python $(BIN)/python -q --no-deps -e .
	@# Byte-compile once: with PYTHONDONTWRITEBYTECODE set (as on the team's machines) every import
	@# of Airflow or great_expectations would otherwise recompile from source (GX: 19 s -> 8 s).
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib >/dev/null || true
	touch $@

install: $(BIN)/.installed

# A stamp, not airflow.db itself: anything that touches Airflow first (a bare pytest) leaves an
# empty airflow.db behind, which must not count as migrated.
$(AIRFLOW_HOME)/.migrated: $(BIN)/.installed
	mkdir -p $(AIRFLOW_HOME)
	scripts/airflow db migrate >/dev/null
	touch $@

airflow-db: $(AIRFLOW_HOME)/.migrated

# The ETL once, end to end, through Airflow (airflow dags test), on the embedded defaults.
run: install airflow-db
	@# The summary is printed either way: on a failed run it shows the step and the error.
	scripts/airflow dags test vpic_vehicle_etl; rc=$$?; $(BIN)/vehicle-etl summary; exit $$rc

test: install airflow-db
	$(BIN)/ruff check .
	@# The browser test drives Debian's Chromium (apt-get on a fresh machine; nothing when present).
	scripts/ensure_chromium.sh
	$(BIN)/pytest

bench: install
	$(BIN)/python bench/etl_full.py

# The Airflow UI (airflow standalone) on http://127.0.0.1:8080 (AIRFLOW__API__HOST/PORT to change);
# prints the URL, where the admin password is and how to stop it, on every start.
airflow-ui: install airflow-db
	@scripts/airflow-ui

# Any airflow command against this project's Airflow home: make airflow ARGS="dags list"
# (the same as scripts/airflow dags list).
airflow: install airflow-db
	@scripts/airflow $(ARGS)

clean:
	-$(BIN)/vehicle-etl embedded-stop
	rm -rf var
