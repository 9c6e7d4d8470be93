"""Dagster: build, check, then ship, once a day (docs/examples/, README "Configuring
and scheduling"). Load with `dagster dev -f docs/examples/dagster_job.py`; PROJECT_DIR
is this checkout.

One op runs `ship run --build` (dbt build, then ship only when the build succeeded);
a non-zero exit (1 some rows rejected, 2 the run could not complete) fails the run.
"""

from __future__ import annotations

import os
import subprocess

from dagster import Definitions, Failure, OpExecutionContext, ScheduleDefinition, job, op

PROJECT_DIR = "/srv/offline-conversions"
COMMAND = [".venv/bin/ship", "run", "--build"]


@op
def build_and_ship(context: OpExecutionContext) -> None:
    env = {**os.environ, "DO_NOT_TRACK": "1", "DBT_PROFILES_DIR": PROJECT_DIR}
    result = subprocess.run(COMMAND, cwd=PROJECT_DIR, env=env, capture_output=True, text=True)
    context.log.info(result.stdout)
    if result.returncode != 0:
        raise Failure(f"{' '.join(COMMAND)} exited {result.returncode}: {result.stderr[-2000:]}")


@job
def offline_conversions() -> None:
    build_and_ship()


defs = Definitions(
    jobs=[offline_conversions],
    schedules=[ScheduleDefinition(job=offline_conversions, cron_schedule="30 2 * * *")],
)
