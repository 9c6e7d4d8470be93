"""The shipper against drt-core 1.2.1 on the same Meta rows and loopback server (issue 11).

    .venv/bin/python bench/bench_drt.py --sizes 1000000              # both tools
    .venv/bin/python bench/bench_drt.py --sizes 1000000 10000000 --drt-sizes 1000000

drt (https://github.com/drt-hub/drt, `pip install drt-core[duckdb]==1.2.1`) lives in
its own virtualenv, bench/.venv-drt (git-ignored; `--setup` creates it). Its Meta
destination (drt/destinations/meta_conversions.py) posts to
`f"{_BASE_URL}/{api_version}/{pixel_id}/events"`, `_BASE_URL` a module constant
(https://graph.facebook.com). The wrapper below, run by .venv-drt's Python as
`bench_drt.py --drt-cli ARGS`, sets that constant to the loopback server and then
calls drt's own console entry point (`drt.cli.main:app`) with ARGS: nothing else
of drt is changed.

For each size N the driver (run with the project venv, like bench_ship.py):

1. builds or reuses bench_ship's mart bench/data/ship/mart-<N>.duckdb (the same
   rows both tools read);
2. starts one bench_ship.FakeMeta loopback server for everything;
3. per repeat: `ship run meta` with a fresh ledger and its rerun (bench_ship),
   then `drt run` with a fresh drt project in bench/data/drt/ (no watermark yet)
   and its rerun (watermark saved: nothing new). Each run is a child process:
   wall time, CPU (user + sys) per event, peak RSS, and the events the server
   counted, which must be N for a first run and 0 for a rerun;
4. prints both tools side by side: events/s, ratio, CPU per event, peak RSS.

The drt sync (bench/README.md has the reasoning): source profile type duckdb on
the mart file; model a SELECT of the columns its Meta destination can map
(event_name, event_time, event_id, em, ph, value); mode incremental on
event_time (drt's way of not resending: a watermark); batch_size 1000 (Meta's
maximum per request, as the shipper's batch_size; drt's default is 100);
rate_limit.requests_per_second 0 (no pacing, as the shipper's default; drt's
default, 10 requests/s, caps it at 10,000 events/s).
"""

from __future__ import annotations

import os
import sys

BASE_URL_ENV = "BENCH_DRT_META_BASE_URL"


def drt_cli() -> None:
    """The wrapper: drt's CLI, unchanged, with the Meta Graph API base URL on loopback."""
    from drt.cli.main import app
    from drt.destinations import meta_conversions

    meta_conversions._BASE_URL = os.environ[BASE_URL_ENV]
    sys.argv = ["drt", *sys.argv[2:]]
    app()


if __name__ == "__main__" and sys.argv[1:2] == ["--drt-cli"]:
    drt_cli()
    sys.exit(0)

# --------------------------------------------------------------------------- #
# The driver (project venv; stdlib and bench_ship only: no DuckDB in this process)
# --------------------------------------------------------------------------- #

import argparse
import json
import math
import resource
import shutil
import statistics
import subprocess
import textwrap
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_ship
from bench_ship import PROJECT_DIR, FakeMeta, RunResult

DRT_VERSION = "1.2.1"
DRT_VENV = PROJECT_DIR / "bench" / ".venv-drt"
DRT_PYTHON = DRT_VENV / "bin" / "python"
DATA_DIR = PROJECT_DIR / "bench" / "data" / "drt"
PIXEL_ID = "123456789"

# The columns drt's Meta destination can map, read from the same mart as the shipper.
DRT_MODEL = ("select event_name, event_time, event_id, em, ph, value "
             "from meta_conversions")


def setup_drt_venv() -> None:
    """bench/.venv-drt with drt-core[duckdb]==1.2.1 and the project's DuckDB version."""
    import importlib.metadata

    duckdb_version = importlib.metadata.version("duckdb")
    if not DRT_PYTHON.exists():
        subprocess.run(["python3", "-m", "venv", str(DRT_VENV)], check=True)
    subprocess.run([str(DRT_PYTHON), "-m", "pip", "install", "--quiet",
                    f"drt-core[duckdb]=={DRT_VERSION}", f"duckdb=={duckdb_version}"],
                   check=True)


def drt_version() -> str:
    return subprocess.run(
        [str(DRT_PYTHON), "-c", "import drt; print(drt.__version__)"],
        check=True, capture_output=True, text=True).stdout.strip()


def write_drt_project(project: Path, mart: Path, batch_size: int,
                      requests_per_second: float) -> dict[str, str]:
    """A fresh drt project (no state) reading `mart`; returns the environment to run it."""
    shutil.rmtree(project, ignore_errors=True)
    home = project / "home"
    (home / ".drt").mkdir(parents=True)
    (project / "syncs").mkdir()
    # ~/.drt/profiles.yml: drt reads connection profiles from the home directory.
    (home / ".drt" / "profiles.yml").write_text(json.dumps(
        {"bench": {"type": "duckdb", "database": str(mart)}}, indent=2))
    (project / "drt_project.yml").write_text(json.dumps(
        {"name": "bench", "version": "0.1", "profile": "bench"}, indent=2))
    (project / "syncs" / "meta.yml").write_text(json.dumps({
        "name": "meta_conversions",
        "model": DRT_MODEL,
        "destination": {
            "type": "meta_conversions",
            "pixel_id": PIXEL_ID,
            "access_token_env": "META_ACCESS_TOKEN",
            "api_version": "v25.0",
            # One per sync in drt; the mart's 10% phone_call rows go as physical_store.
            "action_source": "physical_store",
            "event_name_field": "event_name",
            "event_time_field": "event_time",
            "event_id_field": "event_id",
            # drt normalises and hashes these itself (the mart's are hashes already).
            "email_field": "em",
            "phone_field": "ph",
            "value_field": "value",
            "currency": "USD",
        },
        "sync": {"mode": "incremental", "cursor_field": "event_time",
                 "batch_size": batch_size, "on_error": "fail",
                 # drt paces every destination at 10 requests/s unless told otherwise
                 # (RateLimitConfig); 0 is its "no pacing", as the shipper's default.
                 "rate_limit": {"requests_per_second": requests_per_second}},
    }, indent=2))
    env = {key: value for key, value in os.environ.items()
           if not key.lower().endswith("_proxy") and not key.startswith(("META_", "DRT_"))}
    env.update({"HOME": str(home), "DO_NOT_TRACK": "1", "META_ACCESS_TOKEN": "bench-token",
                "NO_PROXY": "127.0.0.1,localhost", "NO_COLOR": "1"})
    return env


def measure_drt(size: int, repeat: int, kind: str, env: dict[str, str], server: FakeMeta,
                project: Path, run_dir: Path) -> RunResult:
    before = server.stats()
    log = run_dir / f"drt-{size}-{repeat}-{kind}.log"
    env = env | {BASE_URL_ENV: server.base_url}
    command = [str(DRT_PYTHON), str(Path(__file__).resolve()), "--drt-cli", "run",
               "--output", "json"]
    usage = bench_ship.run_child(command, env, project, log)
    after = server.stats()
    result = RunResult(
        size=size, repeat=repeat, kind=kind, wall_s=usage.wall_s,
        peak_rss_mb=usage.vm_hwm_mb, ru_maxrss_mb=usage.ru_maxrss_mb,
        user_s=usage.user_s, sys_s=usage.sys_s, returncode=usage.returncode,
        server_events=after["events"] - before["events"],
        server_requests=after["requests"] - before["requests"],
        # drt keeps no per-row ledger: the rows it reports synced stand in for it.
        delivered_in_ledger=drt_rows_synced(log),
        server_bytes=after["bytes"] - before["bytes"],
    )
    print(f"  drt  {kind:5s} repeat {repeat}: {result.wall_s:8.1f} s  "
          f"{result.events_per_s:10,.0f} events/s  peak RSS {result.peak_rss_mb:6.0f} MB "
          f"(wait4 {result.ru_maxrss_mb:.0f})  cpu {result.user_s + result.sys_s:6.1f} s "
          f"({result.cpu_s_per_event * 1e6:.1f} µs/event)  exit {result.returncode}  "
          f"({result.server_events:,} events in {result.server_requests:,} requests, "
          f"{result.server_bytes / max(result.server_events, 1):,.0f} B/event; "
          f"drt says {result.delivered_in_ledger:,} synced; "
          f"log {log.relative_to(PROJECT_DIR)})", flush=True)
    if result.returncode != 0:
        print(textwrap.indent("\n".join(log.read_text(errors="replace").splitlines()[-20:]),
                              "    | "), flush=True)
    return result


def drt_rows_synced(log: Path) -> int:
    """rows_synced from `drt run --output json` (the last JSON object in the log)."""
    text = log.read_text(errors="replace")
    start = text.rfind("\n{")
    try:
        answer = json.loads(text[start + 1 if start >= 0 else 0:])
    except ValueError:
        return -1
    syncs = answer.get("syncs") or []
    return sum(int(sync.get("rows_synced") or 0) for sync in syncs)


def ok(first: RunResult, rerun: RunResult | None) -> bool:
    return (first.returncode == 0 and first.server_events == first.size
            and first.delivered_in_ledger == first.size
            and (rerun is None or (rerun.returncode == 0 and rerun.server_events == 0)))


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_side_by_side(ship: list[RunResult], drt: list[RunResult]) -> None:
    """One line per size: medians over the repeats of each tool (first runs)."""
    print()
    header = (f"{'size':>11}  {'ship ev/s':>10}  {'drt ev/s':>9}  {'ship/drt':>8}  "
              f"{'ship µs/ev':>10}  {'drt µs/ev':>9}  {'ship MB':>7}  {'drt MB':>6}  "
              f"{'ship rerun':>10}  {'drt rerun':>9}  {'ok':>3}")
    print("medians over repeats; µs/ev = CPU (user+sys) per event; MB = peak RSS; "
          "rerun = rerun wall / first wall")
    print(header)
    print("-" * len(header))
    for size in sorted({r.size for r in ship + drt}):
        rows = {}
        for name, results in (("ship", ship), ("drt", drt)):
            firsts = [r for r in results if r.size == size and r.kind == "first"]
            reruns = {r.repeat: r for r in results if r.size == size and r.kind == "rerun"}
            rows[name] = {
                "rate": median([r.events_per_s for r in firsts]),
                "cpu": median([r.cpu_s_per_event * 1e6 for r in firsts]),
                "rss": median([r.peak_rss_mb for r in firsts]),
                "rerun": median([reruns[r.repeat].wall_s / r.wall_s for r in firsts
                                 if r.repeat in reruns]),
                "ok": all(ok(r, reruns.get(r.repeat)) for r in firsts) if firsts else None,
                "n": len(firsts),
            }
        s, d = rows["ship"], rows["drt"]
        ratio = s["rate"] / d["rate"] if s["n"] and d["n"] and d["rate"] else float("nan")

        def cell(value: float, width: int, spec: str) -> str:
            return f"{'-':>{width}}" if math.isnan(value) else f"{value:>{width}{spec}}"

        oks = [x["ok"] for x in (s, d) if x["ok"] is not None]
        print(f"{size:>11,}  {cell(s['rate'], 10, ',.0f')}  {cell(d['rate'], 9, ',.0f')}  "
              f"{cell(ratio, 7, '.2f') + ('x' if not math.isnan(ratio) else ' ')}  {cell(s['cpu'], 10, '.1f')}  {cell(d['cpu'], 9, '.1f')}  "
              f"{cell(s['rss'], 7, '.0f')}  {cell(d['rss'], 6, '.0f')}  "
              f"{cell(s['rerun'], 10, '.3f')}  {cell(d['rerun'], 9, '.3f')}  "
              f"{'yes' if all(oks) else 'NO':>3}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--drt-sizes", type=int, nargs="*", default=None,
                        help="sizes drt runs at (default: all of --sizes; none: no drt)")
    parser.add_argument("--ship-sizes", type=int, nargs="*", default=None,
                        help="sizes the shipper runs at (default: all of --sizes)")
    parser.add_argument("--repeat", type=int, default=2, help="measured runs per tool and size")
    parser.add_argument("--reuse", action="store_true",
                        help="keep an existing mart of the same size (rebuilt when stale)")
    parser.add_argument("--no-rerun", action="store_true", help="skip the reruns")
    parser.add_argument("--drt-batch-size", type=int, default=1000,
                        help="drt's sync.batch_size (rows per load() call; drt's Meta "
                             "destination sends at most 1,000 events per request)")
    parser.add_argument("--drt-requests-per-second", type=float, default=0,
                        help="drt's sync.rate_limit.requests_per_second (drt's default is "
                             "10; 0 = no pacing, as the shipper's requests_per_second)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="an extra environment setting for the shipper, e.g. "
                             "SHIP_DUCKDB_MEMORY_LIMIT=256MB (repeatable)")
    parser.add_argument("--setup", action="store_true",
                        help="create bench/.venv-drt (pip install drt-core) first")
    args = parser.parse_args()
    drt_sizes = args.sizes if args.drt_sizes is None else args.drt_sizes
    ship_sizes = args.sizes if args.ship_sizes is None else args.ship_sizes

    if args.setup or (drt_sizes and not DRT_PYTHON.exists()):
        setup_drt_venv()
    version = drt_version() if drt_sizes else None
    if drt_sizes:
        print(f"drt-core {version} ({DRT_VENV.relative_to(PROJECT_DIR)})", flush=True)

    stamp = time.strftime("%Y%m%dT%H%M%S")
    run_dir = DATA_DIR / "runs" / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    ship_results: list[RunResult] = []
    drt_results: list[RunResult] = []
    server = FakeMeta()
    try:
        for size in sorted(set(ship_sizes) | set(drt_sizes)):
            mart = bench_ship.build_mart(size, args.reuse)
            print(f"{size:,} events:", flush=True)
            for repeat in range(1, args.repeat + 1):
                if size in ship_sizes:
                    ledger = run_dir / f"ledger-{size}-{repeat}.duckdb"
                    env = bench_ship.ship_env(mart, ledger, server.base_url, None, PROJECT_DIR)
                    env.update(setting.split("=", 1) for setting in args.set)
                    print("  ship", end="", flush=True)
                    ship_results.append(bench_ship.measure(
                        size, repeat, "first", env, server, ledger, run_dir, []))
                    if not args.no_rerun:
                        print("  ship", end="", flush=True)
                        ship_results.append(bench_ship.measure(
                            size, repeat, "rerun", env, server, ledger, run_dir, []))
                    bench_ship.remove_ledger(ledger)
                if size in drt_sizes:
                    project = DATA_DIR / f"project-{size}"
                    env = write_drt_project(project, mart, args.drt_batch_size,
                                            args.drt_requests_per_second)
                    drt_results.append(measure_drt(size, repeat, "first", env, server,
                                                   project, run_dir))
                    if not args.no_rerun:
                        drt_results.append(measure_drt(size, repeat, "rerun", env, server,
                                                       project, run_dir))
    finally:
        server.stop()
    if ship_results:
        print("\nship run meta:", end="")
        bench_ship.print_table(ship_results)
    if drt_results:
        print(f"\ndrt {version} run:", end="")
        bench_ship.print_table(drt_results)
    print_side_by_side(ship_results, drt_results)
    out = DATA_DIR / f"results-{stamp}.json"
    out.write_text(json.dumps(
        {"sizes": args.sizes, "ship_sizes": ship_sizes, "drt_sizes": drt_sizes,
         "drt_version": version, "drt_batch_size": args.drt_batch_size,
         "drt_requests_per_second": args.drt_requests_per_second, "ship_settings": args.set,
         "load": os.getloadavg(),
         "results": [asdict(r) | {"tool": tool, "events_per_s": r.events_per_s,
                                  "cpu_s_per_event": r.cpu_s_per_event}
                     for tool, results in (("ship", ship_results), ("drt", drt_results))
                     for r in results]},
        indent=2))
    print(f"\nresults: {out.relative_to(PROJECT_DIR)} (this process's own peak RSS: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")
    return 0 if all(r.returncode == 0 for r in ship_results + drt_results) else 1


if __name__ == "__main__":
    sys.exit(main())
