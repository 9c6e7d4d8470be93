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

.PHONY: demo test setup sshd lint ship clean setup-spark test-spark

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

demo: setup
	$(BIN)/python scripts/demo.py

# The linters first (make lint), then every test but Spark's.
test: setup sshd lint
	$(BIN)/python -m pytest -q -m "not spark"

# What a scheduler calls after the raw files land: `ship run --build` runs
# dbt build and ships only when the build succeeded (exit codes: README).
# SHIP_ARGS adds destinations or flags: make ship SHIP_ARGS="meta tiktok".
SHIP_ARGS ?=
ship: setup
	$(BIN)/ship run --build $(SHIP_ARGS)

# The SFTP tests run a real OpenSSH sshd on loopback: installed here when it can be
# (root and apt), otherwise the one command to run is printed.
sshd:
	@command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null; \
	  else \
	    echo "make test needs OpenSSH's sshd for the SFTP tests: run 'sudo apt-get install openssh-server' and try again."; exit 2; \
	  fi; }

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

# ruff (with C901, pyproject.toml), mypy on shipper/ (pyproject.toml), and
# sqlfluff with the dbt templater on the models (.sqlfluff;
# the templater skips macro files and lints what the models render from
# them). It compiles the project into its own target directory and DuckDB
# file under target/sqlfluff, never the demo's database. About a minute.
LINT_DIR := $(CURDIR)/target/sqlfluff
lint: setup
	$(BIN)/ruff check shipper tests scripts bench
	$(BIN)/mypy
	@mkdir -p $(LINT_DIR)
	DUCKDB_PATH=$(LINT_DIR)/lint.duckdb DBT_TARGET_PATH=$(LINT_DIR) DBT_LOG_PATH=$(LINT_DIR)/logs \
	  $(BIN)/sqlfluff lint models

clean:
	rm -rf target logs outbox offline_conversions.duckdb* delivery_ledger.duckdb*
