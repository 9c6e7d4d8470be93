"""Benchmark the shipper: `ship run meta` against a loopback server (issue 7).

    .venv/bin/python bench/bench_ship.py --sizes 1000000 10000000

For each size N:

1. build a `meta_conversions` mart of N rows (the columns of docs/marts.md)
   straight into bench/data/ship/mart-<N>.duckdb, generated in SQL with
   range() and sha256(): unique email, phone and external_id hashes, contents
   JSON of one to three items, event_time within the last hour, and `payload`,
   the event's JSON as sent, built from those columns in SQL the way the dbt
   mart builds it (the shipper reads delivery_key, payload and event_time).
   With --reuse an existing file is kept unless its events are getting too old
   for Meta's 7-day window (or it predates the payload column);
2. start a loopback HTTP server (a child process) that answers every POST with
   Meta's success body at once. It reads the body but does not parse it: it
   only counts `"event_id":` in it, so the benchmark can check that every event
   arrived exactly once;
3. run `ship run meta` as a child process with a fresh ledger: wall time,
   events/s, CPU seconds (user + sys) per event and peak RSS (VmHWM polled
   from /proc, ru_maxrss from wait4 as a cross-check: the shipper process,
   DuckDB included since it runs in-process);
4. run it again on the same ledger (the rerun: nothing new, nothing sent).

Steps 3 and 4 are repeated --repeat times (default 2: the machine is shared,
timings are noisy). The results are printed as a table and written to
bench/data/ship/results-<timestamp>.json. Everything lives under bench/data/
(git-ignored). bench/bench_drt.py runs drt-core on the same marts and server and
prints both tools side by side (bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_DIR / "bench" / "data" / "ship"
# A mart older than this is rebuilt even with --reuse: its events would approach
# Meta's 7-day window and be rejected instead of sent.
MAX_MART_AGE_SECONDS = 5 * 86_400

# The mart's typed columns (docs/marts.md), generated: unique email, phone and
# external_id hashes, contents of one to three items, event_time within the last hour.
TYPED_SQL = """
select
    'evt-' || lpad(cast(i as varchar), 10, '0') as delivery_key,
    'Purchase' as event_name,
    cast($now - (i % 3600) as bigint) as event_time,
    'evt-' || lpad(cast(i as varchar), 10, '0') as event_id,
    case when i % 10 = 0 then 'phone_call' else 'physical_store' end as action_source,
    case when i % 10 = 0 then 7 else 62 end as max_event_age_days,
    sha256('customer' || i || '@example.com') as em,
    case when i % 3 = 0 then null else sha256('1555' || lpad(cast(i as varchar), 7, '0')) end
        as ph,
    sha256('first' || (i % 5000)) as fn,
    sha256('last' || (i % 20000)) as ln,
    case when i % 4 = 0 then null else sha256('19' || (40 + i % 60) || '0' || (1 + i % 9) || '15')
        end as db,
    case when i % 5 = 0 then null when i % 2 = 0 then sha256('f') else sha256('m') end as ge,
    sha256('city' || (i % 900)) as ct,
    sha256('st' || (i % 50)) as st,
    sha256(lpad(cast(i % 99999 as varchar), 5, '0')) as zp,
    sha256('us') as country,
    sha256('cust-' || (i // 2)) as external_id,
    cast(list_sum(list_transform(items, lambda item: item.quantity * item.item_price))
        as decimal(18, 2)) as value,
    'USD' as currency,
    'ord-' || lpad(cast(i as varchar), 10, '0') as order_id,
    cast(to_json(items) as varchar) as contents,
    cast(list_sum(list_transform(items, lambda item: item.quantity)) as integer) as num_items
from (
    select
        i,
        list_transform(range(1 + i % 3), lambda k: struct_pack(
            id := 'P' || lpad(cast((i * 7 + k * 13) % 5000 as varchar), 6, '0'),
            quantity := 1 + cast((i + k) % 2 as integer),
            item_price := cast(((i * 31 + k * 17) % 20000) / 100 + 0.99 as decimal(18, 2))
        )) as items
    from range($rows) as t(i)
)
"""


# `payload`, the event exactly as Meta receives it, built from the typed columns the
# way the dbt mart does it (macros/portable/json.sql, DuckDB flavour): a member whose
# value is NULL is left out, each identifier hash a one-element list, numbers as their
# SQL text (decimals keep their scale), contents the JSON text as it is.
def _json_string(column: str) -> str:
    return f"cast(to_json(cast({column} as varchar)) as varchar)"


def _json_number(column: str) -> str:
    return f"cast({column} as varchar)"


def _json_string_list(column: str) -> str:
    return f"'[' || {_json_string(column)} || ']'"


def _json_object(members: list[tuple[str, str]]) -> str:
    pieces = " || ".join(f"coalesce(',\"{key}\":' || ({expression}), '')"
                         for key, expression in members)
    return f"('{{' || substr({pieces}, 2) || '}}')"


PAYLOAD_SQL = _json_object([
    ("event_name", _json_string("event_name")),
    ("event_time", _json_number("event_time")),
    ("event_id", _json_string("event_id")),
    ("action_source", _json_string("action_source")),
    ("user_data", _json_object([(key, _json_string_list(key)) for key in (
        "em", "ph", "fn", "ln", "db", "ge", "ct", "st", "zp", "country", "external_id")])),
    ("custom_data", _json_object([
        ("value", _json_number("value")),
        ("currency", _json_string("currency")),
        ("order_id", _json_string("order_id")),
        ("contents", "nullif(contents, '[]')"),
        ("num_items", _json_number("num_items")),
    ])),
])

MART_SQL = f"""
create or replace table meta_conversions as
select typed.*, {PAYLOAD_SQL} as payload
from ({TYPED_SQL}) as typed
"""

SERVER_CODE = textwrap.dedent('''
    import json, socket, sys, threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    lock = threading.Lock()
    stats = {"requests": 0, "events": 0, "bytes": 0}
    ANSWER = json.dumps({"events_received": 1000, "messages": [],
                         "fbtrace_id": "BenchTrace"}).encode()
    OK = (b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\n"
          b"Content-Length: " + str(len(ANSWER)).encode() + b"\\r\\n\\r\\n" + ANSWER)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the shipper reuses its connections

        def setup(self):
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            # Count events without parsing the JSON: the server must stay cheap.
            events = body.count(b\'"event_id":\')
            with lock:
                stats["requests"] += 1
                stats["events"] += events
                stats["bytes"] += len(body)
            # One write (status, headers and body): no Nagle/delayed-ACK stall.
            self.wfile.write(OK)

        def do_GET(self):  # /stats, read by the benchmark between runs
            with lock:
                answer = json.dumps(stats).encode()
            self.wfile.write(b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\n"
                             b"Content-Length: " + str(len(answer)).encode() + b"\\r\\n\\r\\n"
                             + answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()
''')


@dataclass
class RunResult:
    size: int
    repeat: int
    kind: str  # first | rerun
    wall_s: float
    peak_rss_mb: float  # VmHWM polled from /proc
    ru_maxrss_mb: float  # wait4's ru_maxrss
    user_s: float
    sys_s: float
    returncode: int
    server_events: int
    server_requests: int
    delivered_in_ledger: int
    server_bytes: int = 0  # request bodies the server read

    @property
    def events_per_s(self) -> float:
        return self.server_events / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_s_per_event(self) -> float:
        """CPU seconds (user + sys) of the shipper process per event the server counted."""
        events = self.server_events if self.kind == "first" else self.size
        return (self.user_s + self.sys_s) / events if events else 0.0


# --------------------------------------------------------------------------- #
# The mart
# --------------------------------------------------------------------------- #

def build_mart(rows: int, reuse: bool) -> Path:
    """The mart file of `rows` rows, built (or checked for --reuse) in a child process.

    DuckDB never runs inside this process: the shipper is started with vfork, and
    Linux carries the parent's peak RSS into the child's ru_maxrss across exec, so
    a fat parent would inflate every peak RSS measured below.
    """
    path = DATA_DIR / f"mart-{rows}.duckdb"
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    answer = subprocess.run(
        [sys.executable, __file__, "--build-mart", str(rows), str(path)]
        + (["--reuse"] if reuse else []),
        check=True, capture_output=True, text=True).stdout.strip()
    if answer == "reused":
        print(f"mart: reusing {path.relative_to(PROJECT_DIR)}", flush=True)
    else:
        print(f"mart: built {rows:,} rows in {time.perf_counter() - started:.1f} s "
              f"({path.stat().st_size / 2**20:,.0f} MB)", flush=True)
    return path


def build_mart_here(rows: int, path: Path, reuse: bool) -> str:
    import duckdb

    if reuse and path.is_file():
        try:
            with duckdb.connect(str(path), read_only=True) as con:
                # A mart of an older bench (no payload column) fails here and is rebuilt.
                count, oldest, _ = con.execute(
                    "select count(*), min(event_time), min(length(payload)) "
                    "from meta_conversions").fetchone()
            if count == rows and oldest is not None and oldest > time.time() - MAX_MART_AGE_SECONDS:
                return "reused"
        except duckdb.Error:
            pass
    path.unlink(missing_ok=True)
    with duckdb.connect(str(path)) as con:
        con.execute(MART_SQL, {"rows": rows, "now": int(time.time()) - 60})
    return "built"


# --------------------------------------------------------------------------- #
# The loopback server
# --------------------------------------------------------------------------- #

class FakeMeta:
    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", SERVER_CODE],
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())
        self.base_url = f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.base_url}/stats", timeout=10) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


# --------------------------------------------------------------------------- #
# ship run meta
# --------------------------------------------------------------------------- #

def ship_env(mart: Path, ledger: Path, base_url: str, concurrency: int | None,
             checkout: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.lower().endswith("_proxy") and not key.startswith(("META_", "SHIP_"))}
    env.update({
        "SHIP_CONFIG": str(checkout / "shipper.toml"),
        "DUCKDB_PATH": str(mart),
        "SHIP_LEDGER_PATH": str(ledger),
        "SHIP_OUTBOX_DIR": str(DATA_DIR / "outbox"),
        "META_BASE_URL": base_url,
        "META_ACCESS_TOKEN": "bench-access-token",
        "META_DATASET_ID": "123456789",
        "NO_PROXY": "127.0.0.1,localhost",
    })
    if concurrency is not None:
        env["META_CONCURRENCY"] = str(concurrency)
    return env


@dataclass
class ChildUsage:
    returncode: int
    wall_s: float
    vm_hwm_mb: float  # the shipper's peak RSS, read from /proc while it runs
    ru_maxrss_mb: float  # wait4's figure, a cross-check
    user_s: float
    sys_s: float


def run_ship(env: dict[str, str], log: Path, extra_args: list[str],
             prefix: list[str] | None = None) -> ChildUsage:
    command = [*(prefix or []), sys.executable, *extra_args, "-m", "shipper", "run", "meta"]
    # `python -m` puts the working directory first on sys.path: the checkout's shipper runs.
    checkout = Path(env["SHIP_CONFIG"]).parent
    return run_child(command, env, checkout, log)


def run_child(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> ChildUsage:
    """Run `command`, its output to `log`: wall time, peak RSS and CPU of that process.

    Also used by bench_drt.py for drt's CLI. ru_maxrss and the CPU times are the
    child's own (wait4 on its pid), so nothing of this process is counted.
    """
    with open(log, "wb") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=out,
                                   stderr=subprocess.STDOUT)
        peak = HighWaterMark(process.pid)
        peak.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        peak.stop()
    return ChildUsage(os.waitstatus_to_exitcode(status), wall, peak.mb, usage.ru_maxrss / 1024,
                      usage.ru_utime, usage.ru_stime)


class HighWaterMark(threading.Thread):
    """Polls VmHWM (the peak RSS of the process's own memory map) of a running child.

    VmHWM never decreases, so the last successful read is the peak up to then; what
    a run allocates in its last poll interval before exiting is the only blind spot.
    """

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.status = Path(f"/proc/{pid}/status")
        self.interval = interval
        self.mb = 0.0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            try:
                for line in self.status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.mb = max(self.mb, int(line.split()[1]) / 1024)
            except (OSError, ValueError, IndexError):
                pass  # exited (a zombie has no VmHWM) or not exec'd yet
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join()


def remove_ledger(ledger: Path) -> None:
    """The ledger and what the shipper and DuckDB keep beside it (WAL, spill and scratch)."""
    import shutil

    for path in ledger.parent.glob(f"*{ledger.name}*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def delivered(ledger: Path) -> int:
    """Delivered meta rows in the ledger (read in a child process: see build_mart)."""
    code = ("import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
            "print(con.execute(\"select count(*) from deliveries where destination = 'meta' "
            "and status = 'delivered'\").fetchone()[0])")
    if not ledger.is_file():
        return -1  # the run failed before creating it
    answer = subprocess.run([sys.executable, "-c", code, str(ledger)], check=False,
                            capture_output=True,
                            text=True)
    return int(answer.stdout) if answer.returncode == 0 else -1


def measure(size: int, repeat: int, kind: str, env: dict[str, str], server: FakeMeta,
            ledger: Path, run_dir: Path, extra_args: list[str],
            prefix: list[str] | None = None) -> RunResult:
    before = server.stats()
    log = run_dir / f"ship-{size}-{repeat}-{kind}.log"
    usage = run_ship(env, log, extra_args, prefix)
    after = server.stats()
    wall, returncode = usage.wall_s, usage.returncode
    result = RunResult(
        size=size, repeat=repeat, kind=kind, wall_s=wall, peak_rss_mb=usage.vm_hwm_mb,
        ru_maxrss_mb=usage.ru_maxrss_mb, user_s=usage.user_s, sys_s=usage.sys_s,
        returncode=returncode,
        server_events=after["events"] - before["events"],
        server_requests=after["requests"] - before["requests"],
        delivered_in_ledger=delivered(ledger),
        server_bytes=after["bytes"] - before["bytes"],
    )
    print(f"  {kind:5s} repeat {repeat}: {wall:8.1f} s  {result.events_per_s:10,.0f} events/s  "
          f"peak RSS {result.peak_rss_mb:6.0f} MB (wait4 {result.ru_maxrss_mb:.0f})  "
          f"cpu {result.user_s + result.sys_s:6.1f} s "
          f"({result.cpu_s_per_event * 1e6:.1f} µs/event)  exit {returncode}  "
          f"({result.server_events:,} events in {result.server_requests:,} requests, "
          f"{result.server_bytes / max(result.server_events, 1):,.0f} B/event; "
          f"log {log.relative_to(PROJECT_DIR)})", flush=True)
    if returncode != 0:
        print(textwrap.indent("\n".join(log.read_text(errors="replace").splitlines()[-20:]),
                              "    | "), flush=True)
    return result


def print_table(results: list[RunResult]) -> None:
    print()
    header = (f"{'size':>11}  {'rep':>3}  {'first s':>8}  {'events/s':>10}  "
              f"{'cpu µs/ev':>9}  {'peak MB':>7}  "
              f"{'rerun s':>7}  {'rerun MB':>8}  {'rerun/first':>11}  {'ok':>3}")
    print(header)
    print("-" * len(header))
    firsts = [r for r in results if r.kind == "first"]
    for first in firsts:
        rerun = next((r for r in results if r.kind == "rerun" and r.size == first.size
                      and r.repeat == first.repeat), None)
        ok = (first.returncode == 0 and first.server_events == first.size
              and first.delivered_in_ledger == first.size
              and (rerun is None or (rerun.returncode == 0 and rerun.server_events == 0)))
        print(f"{first.size:>11,}  {first.repeat:>3}  {first.wall_s:>8.1f}  "
              f"{first.events_per_s:>10,.0f}  {first.cpu_s_per_event * 1e6:>9.1f}  "
              f"{first.peak_rss_mb:>7.0f}  "
              + (f"{rerun.wall_s:>7.1f}  {rerun.peak_rss_mb:>8.0f}  "
                 f"{rerun.wall_s / first.wall_s:>11.3f}  " if rerun else f"{'-':>7}  "
                 f"{'-':>8}  {'-':>11}  ")
              + f"{'yes' if ok else 'NO':>3}")


def main() -> int:
    if sys.argv[1:2] == ["--build-mart"]:  # the child process of build_mart
        print(build_mart_here(int(sys.argv[2]), Path(sys.argv[3]), "--reuse" in sys.argv[4:]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--repeat", type=int, default=2, help="measured runs per size")
    parser.add_argument("--reuse", action="store_true",
                        help="keep an existing mart of the same size (rebuilt when stale)")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="META_CONCURRENCY (default: shipper.toml's)")
    parser.add_argument("--no-rerun", action="store_true", help="skip the rerun")
    parser.add_argument("--profile", action="store_true",
                        help="run the first run under cProfile (times are then not comparable)")
    parser.add_argument("--py-spy", metavar="PY_SPY",
                        help="run the first run under this py-spy (record, all threads, "
                             "collapsed stacks); times are then not comparable")
    parser.add_argument("--checkout", type=Path, default=PROJECT_DIR,
                        help="directory holding the shipper/ package and shipper.toml to run "
                             "(default: this tree); e.g. `git archive` of an older commit, "
                             "for before/after figures")
    parser.add_argument("--label", default="", help="a word kept in the results file name")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="an extra environment setting for the shipper, e.g. "
                             "SHIP_READ_BATCH_ROWS=5000 (repeatable)")
    args = parser.parse_args()

    stamp = time.strftime("%Y%m%dT%H%M%S")
    run_dir = DATA_DIR / "runs" / f"{stamp}{'-' + args.label if args.label else ''}"
    run_dir.mkdir(parents=True, exist_ok=True)
    results: list[RunResult] = []
    server = FakeMeta()
    try:
        for size in args.sizes:
            mart = build_mart(size, args.reuse)
            print(f"ship run meta, {size:,} events:", flush=True)
            for repeat in range(1, args.repeat + 1):
                ledger = run_dir / f"ledger-{size}-{repeat}.duckdb"
                env = ship_env(mart, ledger, server.base_url, args.concurrency,
                               args.checkout.resolve())
                env.update(setting.split("=", 1) for setting in args.set)
                extra = (["-m", "cProfile", "-o", str(run_dir / f"ship-{size}-{repeat}.prof")]
                         if args.profile else [])
                prefix = ([args.py_spy, "record", "--threads", "--gil", "--rate", "200",
                           "--format", "raw", "--output",
                           str(run_dir / f"ship-{size}-{repeat}.pyspy.txt"), "--"]
                          if args.py_spy else None)
                results.append(measure(size, repeat, "first", env, server, ledger, run_dir,
                                       extra, prefix))
                if not args.no_rerun:
                    results.append(measure(size, repeat, "rerun", env, server, ledger,
                                           run_dir, []))
                # Ledgers of 10M rows are large; the mart stays for --reuse.
                remove_ledger(ledger)
    finally:
        server.stop()
    print_table(results)
    out = DATA_DIR / f"results-{stamp}{'-' + args.label if args.label else ''}.json"
    out.write_text(json.dumps(
        {"sizes": args.sizes, "concurrency": args.concurrency, "load": os.getloadavg(),
         "results": [asdict(r) | {"events_per_s": r.events_per_s,
                                  "cpu_s_per_event": r.cpu_s_per_event} for r in results]},
        indent=2))
    print(f"\nresults: {out.relative_to(PROJECT_DIR)} (this process's own peak RSS: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")
    return 0 if all(r.returncode == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
