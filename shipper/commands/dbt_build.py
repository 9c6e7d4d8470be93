"""`ship run --build`: `dbt build` first, and shipping only after it succeeded.

The dbt is the one installed beside this Python (the project's venv); the project is
the directory of the settings file (else the current one), the profiles directory
$DBT_PROFILES_DIR or the project's, and DUCKDB_PATH the mart database the settings
name, so dbt builds exactly the database `ship` then reads.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from shipper.config import Config, ConfigError
from shipper.redact import get_logger

log = get_logger("shipper")


class BuildFailed(ConfigError):
    """dbt build did not succeed: nothing is shipped (printed as one sentence, exit 2)."""


def dbt_executable() -> str:
    """The venv's dbt (beside this Python), else the first on PATH."""
    beside = Path(sys.executable).with_name("dbt")
    if beside.is_file():
        return str(beside)
    found = shutil.which("dbt")
    if found is None:
        raise BuildFailed("ship run --build found no dbt beside this Python or on PATH: "
                          "install the project's requirements (make setup).")
    return found


def project_dir(config: Config) -> Path:
    """The dbt project: the settings file's directory when it holds dbt_project.yml,
    else the current directory."""
    if config.path is not None and (config.path.parent / "dbt_project.yml").is_file():
        return config.path.parent
    return Path.cwd()


def build_command(config: Config, dbt_vars: str | None) -> tuple[list[str], dict[str, str]]:
    """The dbt build command line and its environment."""
    project = project_dir(config)
    env = dict(config.env)
    profiles = env.get("DBT_PROFILES_DIR") or str(project)
    env["DUCKDB_PATH"] = config.ship.duckdb_path
    # As `make` runs it: no usage statistics leave the machine.
    env.setdefault("DO_NOT_TRACK", "1")
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    command = [dbt_executable(), "build", "--project-dir", str(project),
               "--profiles-dir", profiles]
    if dbt_vars:
        command += ["--vars", dbt_vars]
    return command, env


def build(config: Config, dbt_vars: str | None) -> None:
    """Run dbt build; raise BuildFailed (nothing is shipped) unless it succeeded."""
    if config.ship.source != "duckdb":
        raise BuildFailed("ship run --build builds the DuckDB marts, but source is "
                          f"{config.ship.source!r}: build and export them yourself, or set "
                          "source = 'duckdb'.")
    command, env = build_command(config, dbt_vars)
    log.info("building the marts: %s", " ".join(command[1:]))
    try:
        result = subprocess.run(command, env=env, cwd=command[3], check=False)
    except OSError as exc:
        raise BuildFailed(f"dbt could not be started ({exc.strerror}): nothing was "
                          "shipped.") from None
    if result.returncode != 0:
        raise BuildFailed(f"dbt build failed (exit {result.returncode}): nothing was shipped; "
                          "fix the build (its output is above) and run ship run --build "
                          "again.")
