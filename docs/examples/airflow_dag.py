"""Airflow: build, check, then ship, once a day (docs/examples/, README "Configuring and
scheduling"). Copy into the DAGs folder; PROJECT_DIR is this checkout on the worker.

`ship run --build` runs dbt build and ships only when the build succeeded; its exit
code is the task's (0 delivered, 1 some rows rejected, 2 the run could not complete),
so a failed build or a refused mart fails the task and Airflow retries or alerts.
Credentials (META_ACCESS_TOKEN, ...) come from the worker's environment or a secrets
backend mapped into `env`.
"""

from __future__ import annotations

import pendulum
from airflow import DAG
from airflow.operators.bash import BashOperator

PROJECT_DIR = "/srv/offline-conversions"

with DAG(
    dag_id="offline_conversions",
    schedule="30 2 * * *",
    start_date=pendulum.datetime(2026, 12, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # one ledger, one run at a time
    tags=["dbt", "offline-conversions"],
) as dag:
    BashOperator(
        task_id="build_and_ship",
        bash_command=f"cd {PROJECT_DIR} && .venv/bin/ship run --build",
        env={"DO_NOT_TRACK": "1", "DBT_PROFILES_DIR": PROJECT_DIR},
        append_env=True,
        retries=1,
    )
