"""Benchmark the dbt transform: `dbt run` against the same SQL run bare on DuckDB.

    python bench/bench_transform.py --sizes 1000000 10000000

For each size (order items; customers are a tenth of it):

1. generate the raw tables with scripts/generate_raw_data.py under
   bench/data/raw/<format>-<size>/ (skipped when a complete set with the same
   arguments is already there, unless --regenerate);
2. load the seeds into a fresh DuckDB file (`dbt seed`, not timed) and copy
   that file as the starting point of both measured builds;
3. `dbt compile` (not timed; it also warms dbt's partial parse, so the timed
   run parses like a developer's second run);
4. time `dbt run` (models only: unit and data tests excluded) as a child
   process: wall time, and peak RSS from wait4(), which covers the dbt process
   and anything it waits for. DuckDB runs in-process, so that is the engine too;
5. time the bare SQL: the compiled SQL of every model (manifest.json), in DAG
   order, as `create view/table ... as <compiled SQL>` through the duckdb
   Python API into a fresh copy of the seeded file, in a child process of its
   own (same measurements);
6. unless --skip-tests, time `dbt test --exclude test_type:unit` (the data
   tests on the built models), reported apart.

Everything the benchmark writes (DuckDB files, DBT_TARGET_PATH, DBT_LOG_PATH,
results) lives under bench/data/ (git-ignored), so it never touches the
target/ and logs/ of other builds in the tree.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = PROJECT_DIR / "bench" / "data"
AS_OF = "2026-11-28"
SEED = 42
DB_NAME = "offline_conversions.duckdb"  # same stem for both, so catalog names match


# --------------------------------------------------------------------------- #
# Child processes with their own resource usage
# --------------------------------------------------------------------------- #


@dataclass
class Measured:
    wall_s: float
    peak_rss_mb: float
    user_s: float
    sys_s: float
    returncode: int


def run_measured(cmd: list[str], *, env: dict[str, str], cwd: Path, log: Path) -> Measured:
    """Run cmd to completion; wall time and the child's own rusage (wait4)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss is in KiB on Linux: the peak of the child and of the
    # descendants it waited for.
    return Measured(wall, usage.ru_maxrss / 1024, usage.ru_utime, usage.ru_stime, proc.returncode)


def run_checked(
    cmd: list[str], *, env: dict[str, str], cwd: Path, log: Path, what: str
) -> Measured:
    result = run_measured(cmd, env=env, cwd=cwd, log=log)
    if result.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-40:]
        sys.exit(
            f"{what} failed (exit {result.returncode}); last lines of {log}:\n" + "\n".join(tail)
        )
    return result


# --------------------------------------------------------------------------- #
# Data
# --------------------------------------------------------------------------- #


def generate(size: int, fmt: str, raw_root: Path, regenerate: bool, reuse_any: bool) -> Path:
    out = raw_root / f"{fmt}-{size}"
    customers = max(1, size // 10)
    args = [
        "--out",
        str(out),
        "--customers",
        str(customers),
        "--as-of",
        AS_OF,
        "--seed",
        str(SEED),
        "--format",
        fmt,
        "--items-target",
        str(size),
    ]
    marker = out / ".bench-complete"
    complete = all(
        any(out.glob(f"{table}.*")) for table in ("customers", "orders", "order_items", "stores")
    )
    if (
        not regenerate
        and complete
        and (reuse_any or (marker.exists() and marker.read_text() == json.dumps(args)))
    ):
        print(f"  reusing raw data in {out}", flush=True)
        return out
    if out.exists():
        shutil.rmtree(out)
    print(f"  generating {size:,} items, {customers:,} customers ({fmt}) into {out}", flush=True)
    cmd = [sys.executable, str(PROJECT_DIR / "scripts" / "generate_raw_data.py"), *args]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=PROJECT_DIR, stdout=subprocess.DEVNULL)
    print(f"  generated in {time.perf_counter() - started:.1f}s", flush=True)
    marker.write_text(json.dumps(args))
    return out


# --------------------------------------------------------------------------- #
# dbt
# --------------------------------------------------------------------------- #


def dbt_executable() -> str:
    candidate = Path(sys.executable).parent / "dbt"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("dbt")
    if not found:
        sys.exit("dbt not found: run with the project venv (.venv/bin/python)")
    return found


def dbt_env(db_path: Path, work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DO_NOT_TRACK": "1",
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DBT_PROFILES_DIR": str(PROJECT_DIR),
            "DUCKDB_PATH": str(db_path),
            "DBT_TARGET_PATH": str(work / "target"),
            "DBT_LOG_PATH": str(work / "logs"),
            "DBT_USE_COLORS": "false",
        }
    )
    return env


def dbt_cmd(*args: str, raw_dir: Path) -> list[str]:
    variables = json.dumps({"raw_path": str(raw_dir), "as_of": AS_OF})
    return [dbt_executable(), *args, "--project-dir", str(PROJECT_DIR), "--vars", variables]


def models_in_dag_order(manifest: dict) -> list[dict]:
    """Model nodes of this project, dependencies first (stable: by name within a level)."""
    nodes = {
        unique_id: node
        for unique_id, node in manifest["nodes"].items()
        if node["resource_type"] == "model"
        and node["package_name"] == manifest["metadata"].get("project_name", node["package_name"])
    }
    ordered: list[dict] = []
    done: set[str] = set()
    remaining = dict(nodes)
    while remaining:
        ready = sorted(
            (
                uid
                for uid, node in remaining.items()
                if all(dep in done or dep not in nodes for dep in node["depends_on"]["nodes"])
            ),
            key=lambda uid: remaining[uid]["name"],
        )
        if not ready:
            sys.exit(f"cycle among models: {sorted(remaining)}")
        for uid in ready:
            ordered.append(remaining.pop(uid))
            done.add(uid)
    return ordered


def bare_plan(target_dir: Path) -> list[dict]:
    """The statements the bare run executes, from the compiled project."""
    manifest = json.loads((target_dir / "manifest.json").read_text())
    plan = []
    for node in models_in_dag_order(manifest):
        materialized = node["config"]["materialized"]
        if materialized not in ("view", "table"):
            sys.exit(
                f"{node['name']}: materialization {materialized!r} is not handled by the bare run"
            )
        compiled = node.get("compiled_code")
        if compiled is None:
            compiled_path = (
                target_dir / "compiled" / node["package_name"] / node["original_file_path"]
            )
            compiled = compiled_path.read_text()
        plan.append(
            {
                "name": node["name"],
                "materialized": materialized,
                "relation": node["relation_name"],
                "schema": node["schema"],
                "sql": compiled,
            }
        )
    return plan


# --------------------------------------------------------------------------- #
# The bare worker (runs in its own process so its RSS is its own)
# --------------------------------------------------------------------------- #


def bare_worker(plan_file: Path, db_path: Path, timings_file: Path) -> None:
    import duckdb

    plan = json.loads(plan_file.read_text())
    # dbt-duckdb applies the profile's settings (TimeZone: UTC) with SET on
    # every cursor; do the same.
    con = duckdb.connect(str(db_path))
    con.execute("set TimeZone = 'UTC'")
    timings = []
    for schema in sorted({step["schema"] for step in plan}):
        con.execute(f'create schema if not exists "{schema}"')
    for step in plan:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        con.execute(
            f"create or replace {step['materialized']} {step['relation']} as (\n{step['sql']}\n)"
        )
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        # CPU of the whole process (DuckDB's worker threads included): on a
        # busy machine it says more about a model's cost than its wall time.
        cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
        timings.append(
            {
                "name": step["name"],
                "materialized": step["materialized"],
                "seconds": seconds,
                "cpu_s": cpu,
            }
        )
    con.close()
    timings_file.write_text(json.dumps(timings, indent=1))


# --------------------------------------------------------------------------- #
# One size
# --------------------------------------------------------------------------- #


@dataclass
class SizeResult:
    size: int
    customers: int
    fmt: str
    dbt_runs: list[dict] = field(default_factory=list)
    bare_runs: list[dict] = field(default_factory=list)
    dbt_test: dict | None = None
    dbt_model_seconds: dict[str, float] = field(default_factory=dict)
    bare_model_seconds: dict[str, float] = field(default_factory=dict)
    bare_model_cpu: dict[str, float] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)
    hashing_ok: bool = False
    hashing_lines: list[str] = field(default_factory=list)
    event_id_models: list[str] = field(default_factory=list)

    # A shared 2-core machine is noisy: the best of N runs is the figure
    # least disturbed by other work; the median is kept alongside.
    @staticmethod
    def _wall(runs: list[dict]) -> tuple[float, float]:
        walls = [run["wall_s"] for run in runs]
        return min(walls), statistics.median(walls)

    @staticmethod
    def _cpu(runs: list[dict]) -> float:
        return min(run["user_s"] + run["sys_s"] for run in runs)

    @property
    def dbt_wall(self) -> tuple[float, float]:
        return self._wall(self.dbt_runs)

    @property
    def bare_wall(self) -> tuple[float, float]:
        return self._wall(self.bare_runs)

    @property
    def dbt_cpu(self) -> float:
        return self._cpu(self.dbt_runs)

    @property
    def bare_cpu(self) -> float:
        return self._cpu(self.bare_runs)

    @property
    def dbt_rss(self) -> float:
        return max(run["peak_rss_mb"] for run in self.dbt_runs)

    @property
    def bare_rss(self) -> float:
        return max(run["peak_rss_mb"] for run in self.bare_runs)


def fresh_copy(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in (dest, dest.with_name(dest.name + ".wal")):
        stale.unlink(missing_ok=True)
    shutil.copyfile(source, dest)
    wal = source.with_name(source.name + ".wal")
    if wal.exists():
        shutil.copyfile(wal, dest.with_name(dest.name + ".wal"))


def dbt_reported_seconds(log: Path) -> float | None:
    """The "Finished running ... (12.34s)." figure: dbt's time in the run itself."""
    match = re.search(r"Finished running .* \(([0-9.]+)s\)", log.read_text(errors="replace"))
    return float(match.group(1)) if match else None


def read_run_results(target_dir: Path) -> dict[str, float]:
    results = json.loads((target_dir / "run_results.json").read_text())
    seconds = {}
    for result in results["results"]:
        name = result["unique_id"].split(".")[-1]
        seconds[name] = result["execution_time"]
    return seconds


def bench_size(size: int, args: argparse.Namespace) -> SizeResult:
    data_dir: Path = args.data_dir
    print(f"\n== {size:,} order items", flush=True)
    raw_dir = generate(size, args.format, data_dir / "raw", args.regenerate, args.reuse_data)
    work = data_dir / "runs" / f"{args.format}-{size}"
    target_dir = work / "target"
    seeded = work / "seeded" / DB_NAME
    dbt_db = work / "dbt" / DB_NAME
    bare_db = work / "bare" / DB_NAME
    result = SizeResult(size=size, customers=max(1, size // 10), fmt=args.format)

    # Seeds, once, into a file both runs start from. Seed and compile use the
    # same DUCKDB_PATH as the timed run: the path is part of the profile, and
    # a changed profile would cost the timed run a full parse.
    dbt_db.parent.mkdir(parents=True, exist_ok=True)
    for stale in (dbt_db, dbt_db.with_name(dbt_db.name + ".wal")):
        stale.unlink(missing_ok=True)
    env = dbt_env(dbt_db, work)
    print("  dbt seed + compile (not timed)", flush=True)
    run_checked(
        dbt_cmd("seed", raw_dir=raw_dir),
        env=env,
        cwd=PROJECT_DIR,
        log=work / "seed.log",
        what="dbt seed",
    )
    fresh_copy(dbt_db, seeded)
    run_checked(
        dbt_cmd("compile", raw_dir=raw_dir),
        env=env,
        cwd=PROJECT_DIR,
        log=work / "compile.log",
        what="dbt compile",
    )
    plan = bare_plan(target_dir)
    plan_file = work / "bare_plan.json"
    plan_file.write_text(json.dumps(plan, indent=1))
    result.hashing_ok, result.hashing_lines, result.event_id_models = hashing_check(plan)
    print("  hash calls in the compiled SQL:\n" + "\n".join(result.hashing_lines), flush=True)

    for attempt in range(args.repeat):
        # dbt run, models only, into a fresh copy of the seeded file.
        fresh_copy(seeded, dbt_db)
        print(f"  [{attempt + 1}/{args.repeat}] dbt run ...", end=" ", flush=True)
        log = work / f"run-{attempt}.log"
        measured = run_checked(
            dbt_cmd("run", raw_dir=raw_dir),
            env=dbt_env(dbt_db, work),
            cwd=PROJECT_DIR,
            log=log,
            what="dbt run",
        )
        result.dbt_runs.append({**asdict(measured), "dbt_reported_s": dbt_reported_seconds(log)})
        print(
            f"{measured.wall_s:.1f}s (dbt reports {dbt_reported_seconds(log)}s running models), "
            f"peak RSS {measured.peak_rss_mb:,.0f} MB",
            flush=True,
        )
        for name, seconds in read_run_results(target_dir).items():
            result.dbt_model_seconds.setdefault(name, seconds)
            result.dbt_model_seconds[name] = min(result.dbt_model_seconds[name], seconds)

        # The same compiled SQL, bare, into a fresh copy of the seeded file.
        fresh_copy(seeded, bare_db)
        timings_file = work / f"bare-timings-{attempt}.json"
        print(f"  [{attempt + 1}/{args.repeat}] bare SQL ...", end=" ", flush=True)
        measured = run_checked(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--bare-worker",
                str(plan_file),
                str(bare_db),
                str(timings_file),
            ],
            env=dbt_env(bare_db, work),
            cwd=PROJECT_DIR,
            log=work / f"bare-{attempt}.log",
            what="bare SQL run",
        )
        result.bare_runs.append(asdict(measured))
        print(f"{measured.wall_s:.1f}s, peak RSS {measured.peak_rss_mb:,.0f} MB", flush=True)
        for step in json.loads(timings_file.read_text()):
            previous = result.bare_model_seconds.get(step["name"], step["seconds"])
            result.bare_model_seconds[step["name"]] = min(previous, step["seconds"])
            previous = result.bare_model_cpu.get(step["name"], step["cpu_s"])
            result.bare_model_cpu[step["name"]] = min(previous, step["cpu_s"])

    if not args.skip_tests:
        print("  dbt test --exclude test_type:unit ...", end=" ", flush=True)
        measured = run_measured(
            dbt_cmd("test", "--exclude", "test_type:unit", raw_dir=raw_dir),
            env=dbt_env(dbt_db, work),
            cwd=PROJECT_DIR,
            log=work / "test.log",
        )
        result.dbt_test = asdict(measured)
        status = (
            "ok"
            if measured.returncode == 0
            else f"FAILED (exit {measured.returncode}, see {work / 'test.log'})"
        )
        print(
            f"{measured.wall_s:.1f}s, peak RSS {measured.peak_rss_mb:,.0f} MB, {status}", flush=True
        )

    result.row_counts = count_rows(dbt_db, plan)
    return result


def count_rows(db_path: Path, plan: list[dict]) -> dict[str, int]:
    import duckdb

    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return {
            step["name"]: con.execute(f"select count(*) from {step['relation']}").fetchone()[0]
            for step in plan
            if step["materialized"] == "table"
        }
    finally:
        con.close()


# --------------------------------------------------------------------------- #
# Hashing: once per customer, never per event (issue 7)
# --------------------------------------------------------------------------- #

HASH_CALL = re.compile(
    r"\b(sha256|sha2|sha1|md5|md5_number|hash|unhex|to_base64|base64)\s*\(", re.IGNORECASE
)
SQL_COMMENT = re.compile(r"--[^\n]*")
# The customer hashes live in this table, one row per customer.
CUSTOMER_HASHES = "int_customers_normalized"
# The one other hash allowed: the stable event_id, sha256 of the order id,
# in a table with one row per order (int_orders_eligible_keyed; the marts read
# it through the view int_orders_eligible, which hashes nothing).
EVENT_ID_HASH = re.compile(
    r"sha256\(\s*'offline-order:'\s*\|\|\s*order_id\s*\)\s+as\s+event_id", re.IGNORECASE
)
# And in a profile mart (one row per customer), the fingerprint of the payload
# the shipper compares to decide whether a profile changed since it was sent.
PAYLOAD_FINGERPRINT = re.compile(r"sha256\(\s*payload\s*\)\s+as\s+payload_sha256", re.IGNORECASE)


def hashing_check(plan: list[dict]) -> tuple[bool, list[str], list[str]]:
    """Where the compiled SQL hashes, and whether that is only where it should be.

    Allowed: any hash function in int_customers_normalized, a table (one row
    per customer); exactly one sha256, the event_id of an order, in one other
    table; and a profile mart's payload fingerprint (`payload_sha256`, one
    per profile sent), reported but not counted. A hash in a view would run
    again for every model that reads it, and a hash anywhere else (a mart)
    would run once per event.
    """
    ok = True
    lines = []
    hashing_models = []
    for step in plan:
        code = SQL_COMMENT.sub("", step["sql"])
        if step["materialized"] == "table" and PAYLOAD_FINGERPRINT.search(code):
            code = PAYLOAD_FINGERPRINT.sub("", code)
            lines.append(f"  {step['name']} (table): the payload fingerprint, once per profile")
        calls = [match.group(1).lower() for match in HASH_CALL.finditer(code)]
        if not calls:
            continue
        hashing_models.append(step["name"])
        counts = {name: calls.count(name) for name in sorted(set(calls))}
        summary = ", ".join(f"{name}() x{count}" for name, count in counts.items())
        is_table = step["materialized"] == "table"
        if step["name"] == CUSTOMER_HASHES:
            good = is_table
            verdict = (
                "once per customer" if good else "NOT a table: hashes run again in every reader"
            )
        else:
            good = is_table and counts == {"sha256": 1} and bool(EVENT_ID_HASH.search(code))
            verdict = (
                "the event_id, once per order"
                if good
                else "UNEXPECTED: hashing outside the customer table"
            )
        ok &= good
        lines.append(f"  {step['name']} ({step['materialized']}): {summary} -- {verdict}")
    event_id_models = [name for name in hashing_models if name != CUSTOMER_HASHES]
    if len(event_id_models) != 1:
        ok = False
        lines.append(f"  expected the event_id hash in exactly one model, found {event_id_models}")
    others = len(plan) - len(hashing_models)
    lines.append(f"  no hash function in the other {others} models (staging, intermediate, marts)")
    return ok, lines, event_id_models


# --------------------------------------------------------------------------- #
# Report
# --------------------------------------------------------------------------- #


def top(seconds: dict[str, float], n: int) -> str:
    ranked = sorted(seconds.items(), key=lambda item: item[1], reverse=True)[:n]
    return ", ".join(f"{name} {value:.1f}s" for name, value in ranked)


def report(results: list[SizeResult], args: argparse.Namespace) -> str:
    def wall(pair: tuple[float, float]) -> str:
        best, median = pair
        return f"{best:.1f} s" if args.repeat == 1 else f"{best:.1f} s ({median:.1f})"

    header = (
        "| order items | customers | dbt run wall | bare SQL wall | dbt / bare wall "
        "| dbt CPU | bare CPU | dbt / bare CPU | dbt peak RSS | bare peak RSS | data tests wall |"
    )
    lines = [header, "|---:" * (header.count("|") - 1) + "|"]
    for r in results:
        tests = "skipped" if r.dbt_test is None else f"{r.dbt_test['wall_s']:.1f} s"
        if r.dbt_test is not None and r.dbt_test["returncode"] != 0:
            tests += " (failures)"
        lines.append(
            f"| {r.size:,} | {r.customers:,} | {wall(r.dbt_wall)} | {wall(r.bare_wall)} "
            f"| {r.dbt_wall[0] / r.bare_wall[0]:.2f}x "
            f"| {r.dbt_cpu:.1f} s | {r.bare_cpu:.1f} s | {r.dbt_cpu / r.bare_cpu:.2f}x "
            f"| {r.dbt_rss:,.0f} MB | {r.bare_rss:,.0f} MB | {tests} |"
        )
    lines.append("")
    for r in results:
        lines.append(
            f"{r.size:,} items, slowest models, dbt (execution_time, 4 threads): "
            f"{top(r.dbt_model_seconds, 4)}"
        )
        lines.append(
            f"{r.size:,} items, slowest models, bare (one at a time), wall:    "
            f"{top(r.bare_model_seconds, 4)}"
        )
        lines.append(
            f"{r.size:,} items, slowest models, bare (one at a time), CPU:     "
            f"{top(r.bare_model_cpu, 4)}"
        )
    for r in results:
        counts = r.row_counts
        per_order = "; ".join(
            f"{name}: {counts.get(name, 0):,} rows" for name in r.event_id_models
        )
        lines.append(
            f"{r.size:,} items, hashing {'OK' if r.hashing_ok else 'NOT OK'} "
            f"(int_customers_normalized: {counts.get('int_customers_normalized', 0):,} rows; "
            f"{per_order}):"
        )
        lines.extend(r.hashing_lines)
    lines.append("")
    best = f"best of {args.repeat} runs (median in brackets)" if args.repeat > 1 else "1 run"
    lines.append(
        f"raw format {args.format}; wall: {best}; CPU = user + sys of the process, best run; RSS: max. "
        "dbt run = models only (no seeds, no tests; after dbt seed + dbt compile, so partial parse is warm); "
        "bare = the same compiled SQL, create view/table ... as, in DAG order on one duckdb connection; "
        "per-model times are the best over runs."
    )
    return "\n".join(lines)


def use_project_venv() -> None:
    """Re-run under the project's .venv when started with a Python that lacks dbt or duckdb."""
    venv = PROJECT_DIR / ".venv"
    try:
        import duckdb  # noqa: F401

        has_duckdb = True
    except ImportError:
        has_duckdb = False
    has_dbt = (Path(sys.executable).parent / "dbt").exists()
    in_venv = Path(sys.prefix).resolve() == venv.resolve()
    if not (has_duckdb and has_dbt) and not in_venv and (venv / "bin" / "python").exists():
        os.execv(str(venv / "bin" / "python"), [str(venv / "bin" / "python"), *sys.argv])


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--bare-worker":
        bare_worker(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
        return
    use_project_venv()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[1_000_000, 10_000_000],
        help="order items per run (customers: a tenth of it)",
    )
    parser.add_argument(
        "--format",
        choices=["csv", "csv.gz", "parquet"],
        default="csv",
        help="raw file format (default csv, the input contract's usual form)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="where raw data, DuckDB files, target/ and logs/ go (default bench/data)",
    )
    parser.add_argument(
        "--regenerate",
        action="store_true",
        help="regenerate raw data even if a complete set is there (default: reuse it)",
    )
    parser.add_argument(
        "--reuse-data",
        action="store_true",
        help="reuse bench/data/raw/<format>-<size> as it is, even without the marker "
        "this script leaves after generating",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="timed runs per size, dbt and bare alternating (best and median reported)",
    )
    parser.add_argument("--skip-tests", action="store_true", help="do not time dbt test")
    args = parser.parse_args()
    args.data_dir = args.data_dir.resolve()

    results = [bench_size(size, args) for size in args.sizes]
    text = report(results, args)
    print("\n" + text)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    out = args.data_dir / f"results-{args.format}-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "args": {**vars(args), "data_dir": str(args.data_dir)},
                "results": [asdict(r) for r in results],
                "table": text,
            },
            indent=1,
        )
    )
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
