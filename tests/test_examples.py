"""The scheduling and CI examples (docs/examples/, .github/workflows/) parse, and every
command they run exists: make targets in the Makefile, `ship` subcommands and flags in
`ship --help`, dbt flags in dbt's --help. Airflow and Dagster are not installed: their
files are parsed, not imported."""

from __future__ import annotations

import ast
import functools
import re
import subprocess
from pathlib import Path

import pytest
import yaml

PROJECT_DIR = Path(__file__).resolve().parents[1]
BIN = PROJECT_DIR / ".venv" / "bin"
EXAMPLES = PROJECT_DIR / "docs" / "examples"
WORKFLOW = PROJECT_DIR / ".github" / "workflows" / "dbt-ci.yml"
CRONTAB = EXAMPLES / "crontab"
PYTHON_EXAMPLES = [EXAMPLES / "airflow_dag.py", EXAMPLES / "dagster_job.py"]
CI_DOC = PROJECT_DIR / "docs" / "ci.md"

MAKE = re.compile(r"\bmake\s+([a-z][a-z0-9_-]*)")
# ship and dbt as the examples run them, from the venv (prose that names them is skipped).
SHIP = re.compile(r"\.venv/bin/ship\s+([a-z]+)((?:\s+--?[a-z][a-z-]*)*)")
DBT = re.compile(r"\.venv/bin/dbt\s+([a-z]+)((?:\s+(?:--?[a-z][a-z-]*|[^\s-][^\s]*))*)")


def python_strings(path: Path) -> list[str]:
    """Every string the file holds (f-string parts too), and each list of strings joined
    by spaces, as a command list such as [".venv/bin/ship", "run", "--build"] is."""
    tree = ast.parse(path.read_text(), filename=str(path))
    strings = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            strings.append(node.value)
        elif isinstance(node, ast.List) and node.elts and all(
                isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
            strings.append(" ".join(e.value for e in node.elts))  # type: ignore[attr-defined]
    return strings


def workflow_commands() -> list[str]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    return [step["run"] for job in workflow["jobs"].values() for step in job["steps"]
            if "run" in step]


def cron_lines() -> list[str]:
    return [line for line in CRONTAB.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def commands_of(name: str) -> list[str]:
    if name == "crontab":
        return cron_lines()
    if name == "dbt-ci.yml":
        return workflow_commands()
    return python_strings(EXAMPLES / name)


@functools.cache
def make_targets() -> set[str]:
    text = (PROJECT_DIR / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z0-9_-]*)\s*:(?!=)", text, re.MULTILINE))


def make_recipe(target: str) -> list[str]:
    """The recipe's command lines, $(BIN) written out as .venv/bin."""
    lines = (PROJECT_DIR / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"^{target}\s*:(?!=)", line))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip().replace("$(BIN)", ".venv/bin"))
    return recipe


@functools.cache
def help_text(*argv: str) -> str:
    result = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=120, check=False,
                            cwd=PROJECT_DIR)
    assert result.returncode == 0, (argv, result.stderr)
    return result.stdout


def ship_subcommands() -> set[str]:
    text = help_text(str(BIN / "ship"))
    match = re.search(r"\{([a-z,]+)\}", text)
    listed = set(match.group(1).split(",")) if match else set()
    return listed | set(re.findall(r"^\s{4}([a-z]+)\s{2,}", text, re.MULTILINE))


def check_commands(texts: list[str]) -> list[str]:
    """What each text runs, checked: a list of what does not exist (empty when all do)."""
    missing = []
    for text in texts:
        for target in MAKE.findall(text):
            if target not in make_targets():
                missing.append(f"make {target}: no such target in the Makefile")
            elif target == "ship":
                missing += check_commands(make_recipe(target))
        for subcommand, flags in SHIP.findall(text):
            if subcommand not in ship_subcommands():
                missing.append(f"ship {subcommand}: not in `ship --help`")
                continue
            options = help_text(str(BIN / "ship"), subcommand)
            for flag in flags.split():
                if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", options):
                    missing.append(f"ship {subcommand} {flag}: not in `ship {subcommand} --help`")
        for subcommand, arguments in DBT.findall(text):
            options = help_text(str(BIN / "dbt"), subcommand)
            for flag in (a for a in arguments.split() if a.startswith("-")):
                if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", options):
                    missing.append(f"dbt {subcommand} {flag}: not in `dbt {subcommand} --help`")
    return missing


EXAMPLE_NAMES = ["crontab", "airflow_dag.py", "dagster_job.py", "dbt-ci.yml"]


@pytest.mark.parametrize("path", PYTHON_EXAMPLES, ids=lambda p: p.name)
def test_python_example_parses(path):
    ast.parse(path.read_text(), filename=str(path))


def test_airflow_dag_runs_the_build_and_ship_in_a_bash_operator():
    tree = ast.parse((EXAMPLES / "airflow_dag.py").read_text())
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
             and getattr(node.func, "id", None) == "BashOperator"]
    assert calls, "no BashOperator"
    commands = [kw.value for call in calls for kw in call.keywords if kw.arg == "bash_command"]
    assert commands and "ship run --build" in ast.unparse(commands[0])


def test_dagster_job_has_an_op_a_job_and_a_schedule():
    tree = ast.parse((EXAMPLES / "dagster_job.py").read_text())
    decorators = {d.id for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
                  for d in node.decorator_list if isinstance(d, ast.Name)}
    assert {"op", "job"} <= decorators
    assert "ScheduleDefinition" in ast.unparse(tree)


def test_cron_line_has_five_time_fields_and_a_command():
    lines = cron_lines()
    assert len(lines) == 1
    fields = lines[0].split(None, 5)
    assert len(fields) == 6, lines[0]
    ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
    for field, (low, high) in zip(fields[:5], ranges):
        for part in field.split(","):
            base, _, step = part.partition("/")
            assert not step or step.isdigit(), field
            if base == "*":
                continue
            for number in base.split("-"):
                assert number.isdigit() and low <= int(number) <= high, field
    assert "make ship" in fields[5] or "ship run --build" in fields[5]


def test_make_ship_builds_then_ships():
    assert any(".venv/bin/ship run --build" in line for line in make_recipe("ship"))


def test_workflow_builds_the_models_on_every_pull_request():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 reads the key `on` as True.
    triggers = workflow.get("on", workflow.get(True))
    assert "pull_request" in triggers
    commands = workflow_commands()
    assert any(command.strip() == "make setup" for command in commands)
    assert any(".venv/bin/dbt build" in command for command in commands)
    env = {name: str(value) for job in workflow["jobs"].values()
           for name, value in job.get("env", {}).items()}
    assert env.get("DO_NOT_TRACK") == "1"


def test_slim_ci_is_documented_with_flags_dbt_has():
    text = CI_DOC.read_text()
    for flag in ("state:modified+", "--defer", "--state"):
        assert flag in text
    assert check_commands(re.findall(r"dbt build[^\n`]*", text)) == []


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_command_an_example_runs_exists(name):
    texts = commands_of(name)
    ran = [t for t in texts if MAKE.search(t) or SHIP.search(t) or DBT.search(t)]
    assert ran, f"{name} runs no make, ship or dbt command"
    assert check_commands(texts) == []


def _free_base_port(count: int = 9) -> int:
    import random
    import socket

    for _ in range(50):
        base = random.randrange(30000, 60000 - count)
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no 9 free ports in a row")


def test_python_m_tests_fakes_serves_the_fakes_until_interrupted():
    """The rehearsal server (docs/ci.md): prints the environment for `ship`, answers on
    the ports it printed, and stops on Ctrl-C."""
    import signal
    import sys
    import time

    import requests

    base = _free_base_port()
    process = subprocess.Popen([sys.executable, "-m", "tests.fakes", "--base-port", str(base)],
                               cwd=PROJECT_DIR, stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, f"exited early: {''.join(lines)}"
            lines.append(line)
            if line.startswith("# Serving"):
                break
        output = "".join(lines)
        assert f"export META_BASE_URL=http://127.0.0.1:{base}\n" in output
        assert f"export UID2_BASE_URL=http://127.0.0.1:{base + 8}\n" in output
        session = requests.Session()
        session.trust_env = False  # no proxy between the test and loopback
        # Meta without its token answers Meta's error, as the platform would.
        answer = session.post(f"http://127.0.0.1:{base}/v26.0/4242/events", json={}, timeout=10)
        assert 400 <= answer.status_code < 500
        assert "error" in answer.json()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            rest, _ = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0
    assert "requests received: meta 1" in rest


def test_fakes_print_env_matches_what_ship_reads():
    """Every variable the rehearsal prints is one `ship` reads: a destination's
    <DESTINATION>_<SETTING>, or a credential a destination module names."""
    import sys

    result = subprocess.run([sys.executable, "-m", "tests.fakes", "--print-env"],
                            cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    names = re.findall(r"^export ([A-Z0-9_]+)=", result.stdout, re.MULTILINE)
    assert len(names) == 28
    shipper_text = "\n".join(p.read_text() for p in (PROJECT_DIR / "shipper").rglob("*.py"))
    for name in names:
        prefix_read = re.match(r"(META|TIKTOK|GOOGLE_ADS|PINTEREST|SNAPCHAT|BRAZE|KLAVIYO)_", name)
        assert prefix_read or name == "NO_PROXY" or f'"{name}"' in shipper_text, name
