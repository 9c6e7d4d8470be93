# The two commands: `make demo` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

# The build and the tests make no network connection (dbt's tracking is off).
export DO_NOT_TRACK := 1
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export DBT_PROFILES_DIR := $(CURDIR)
export DUCKDB_PATH ?= $(CURDIR)/offline_conversions.duckdb

.PHONY: demo test setup lint clean setup-spark test-spark

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

demo: setup
	$(BIN)/python scripts/demo.py

test: setup
	$(BIN)/python -m pytest -q -m "not spark"

# The same project on Apache Spark (dbt-spark's session method, a local
# pyspark; Java 17 from the system) in a venv of its own: builds the fixture
# data on Spark and on DuckDB and checks that the marts are identical.
SPARK_VENV := .venv-spark
SPARK_BIN := $(SPARK_VENV)/bin

setup-spark: $(SPARK_VENV)/.installed

$(SPARK_VENV)/.installed: requirements-spark.lock requirements.lock
	$(PYTHON) -m venv $(SPARK_VENV)
	$(SPARK_BIN)/pip install --quiet --disable-pip-version-check -r requirements-spark.lock
	touch $@

test-spark: setup-spark
	SPARK_LOCAL_IP=127.0.0.1 $(SPARK_BIN)/python -m pytest -q -m spark tests/spark

lint: setup
	$(BIN)/ruff check shipper tests scripts bench

clean:
	rm -rf target logs outbox offline_conversions.duckdb* delivery_ledger.duckdb*
