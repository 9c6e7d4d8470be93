"""CPU seconds per thread of one `ship run meta`: where the shipper's time goes.

    .venv/bin/python bench/ship_thread_cpu.py 1000000 [NAME=VALUE ...]

Builds (or reuses) the benchmark mart of bench_ship.py, starts its loopback Meta,
and runs the shipper with every Python thread named after itself (prctl), so
/proc shows which thread burned what. DuckDB's own worker threads are named
after the thread that created their database (`main` for the ledger's). The
NAME=VALUE arguments are extra environment settings (`META_CONCURRENCY=3`).
Prints wall time, events/s and CPU seconds per thread; the fake server's CPU
is shown apart. Polling /proc every 0.2 s, so a thread's last 0.2 s may be
missed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_ship

# Runs `ship run meta` with every Python thread named in /proc (Linux prctl).
NAMED_SHIP = """
import ctypes, runpy, sys, threading
libc = ctypes.CDLL("libc.so.6")
run = threading.Thread.run
def named_run(self):
    libc.prctl(15, self.name[:15].encode(), 0, 0, 0)
    run(self)
threading.Thread.run = named_run
libc.prctl(15, b"main", 0, 0, 0)
sys.argv = ["shipper", "run", "meta"]
runpy.run_module("shipper", run_name="__main__")
"""


def cpu_seconds(stat_line: str) -> float:
    fields = stat_line.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    mart = bench_ship.build_mart(size, True)
    ledger = bench_ship.DATA_DIR / "thread-cpu-ledger.duckdb"
    # A fresh ledger: its .wal and the marker of destinations that delivered go too
    # (the shipper refuses a live run on a ledger that forgot what it delivered).
    for path in (ledger, Path(f"{ledger}.wal"), Path(f"{ledger}.delivered")):
        path.unlink(missing_ok=True)
    server = bench_ship.FakeMeta()
    try:
        env = bench_ship.ship_env(mart, ledger, server.base_url, None,
                                  bench_ship.PROJECT_DIR)
        env.update(setting.split("=", 1) for setting in sys.argv[2:])
        env["PYTHONPATH"] = str(bench_ship.PROJECT_DIR)
        started = time.monotonic()
        process = subprocess.Popen([sys.executable, "-c", NAMED_SHIP], env=env,
                                   cwd=bench_ship.PROJECT_DIR, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        last: dict[tuple[str, str], float] = {}
        while process.poll() is None:
            try:
                for tid in os.listdir(f"/proc/{process.pid}/task"):
                    try:
                        name = Path(f"/proc/{process.pid}/task/{tid}/comm").read_text().strip()
                        stat = Path(f"/proc/{process.pid}/task/{tid}/stat").read_text()
                    except OSError:
                        continue
                    last[(tid, name)] = cpu_seconds(stat)
            except OSError:
                pass
            time.sleep(0.2)
        wall = time.monotonic() - started
        server_cpu = cpu_seconds(Path(f"/proc/{server.process.pid}/stat").read_text())
    finally:
        server.stop()
    by_thread = Counter({f"{name} ({tid})": seconds for (tid, name), seconds in last.items()})
    print(f"ship run meta, {size:,} events: wall {wall:.1f} s, {size / wall:,.0f} events/s, "
          f"exit {process.returncode}; loopback server CPU {server_cpu:.1f} s")
    for thread, seconds in by_thread.most_common():
        if seconds >= 0.05:
            print(f"  {thread:28s} {seconds:6.1f} s")
    print(f"  {'all threads':28s} {sum(by_thread.values()):6.1f} s")
    return process.returncode or 0


if __name__ == "__main__":
    raise SystemExit(main())
