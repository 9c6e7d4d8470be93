"""`kill -9` a `ship run meta` part way, rerun it, and count what arrived twice.

    .venv/bin/python bench/ship_kill_rerun.py 10000000 40

Builds (or reuses) the benchmark mart of bench_ship.py, starts its loopback Meta
(which counts the events it receives), starts `ship run meta` with a fresh
ledger, kills it with SIGKILL after the given seconds, then reruns it to the end.
Prints what the killed run had sent, the rerun's wall time, exit code and peak
RSS, and the events received twice (the rerun resends only the batches that were
in flight or waiting for the ledger when the process died).
"""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_ship


def main() -> int:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    kill_after = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    mart = bench_ship.build_mart(size, True)
    ledger = bench_ship.DATA_DIR / "kill-rerun-ledger.duckdb"
    for path in (ledger, Path(f"{ledger}.wal")):
        path.unlink(missing_ok=True)
    server = bench_ship.FakeMeta()
    try:
        env = bench_ship.ship_env(mart, ledger, server.base_url, None, bench_ship.PROJECT_DIR)
        command = [sys.executable, "-m", "shipper", "run", "meta"]
        first = subprocess.Popen(command, env=env, cwd=bench_ship.PROJECT_DIR,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(kill_after)
        first.send_signal(signal.SIGKILL)
        first.wait()
        time.sleep(0.5)  # requests of the dead process still being answered
        sent_before = server.stats()["events"]
        started = time.monotonic()
        rerun = subprocess.run(command, env=env, cwd=bench_ship.PROJECT_DIR,
                               capture_output=True, text=True, check=False)
        wall = time.monotonic() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        received = server.stats()["events"]
    finally:
        server.stop()
    print(f"ship run meta, {size:,} events, killed after {kill_after:g} s having sent "
          f"{sent_before:,}")
    print(f"rerun: exit {rerun.returncode}, {wall:.1f} s, peak RSS {peak_mb:,.0f} MB "
          "(the larger of the two runs)")
    print(f"received in all: {received:,}; twice: {received - size:,}")
    return rerun.returncode


if __name__ == "__main__":
    raise SystemExit(main())
