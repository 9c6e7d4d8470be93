"""`kill -9` in the middle of a real `ship run` loses nothing; the rerun finishes the job
and resends at most the batches that were in flight."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shipper.ledger import Ledger
from tests.shipper.marts import meta_row

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_sigkill_mid_run_then_rerun(workspace):
    total, batch_size, concurrency = 2000, 50, 2
    # What a kill -9 may leave sent but unrecorded: the batches on the wire (a sender
    # thread records its batch before it takes another).
    exposed = batch_size * concurrency
    fake = workspace.meta()
    fake.latency = 0.12
    workspace.env(META_BATCH_SIZE=str(batch_size), META_CONCURRENCY=str(concurrency))
    workspace.meta_mart(meta_row(i) for i in range(total))

    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen(
        [sys.executable, "-m", "shipper", "run", "meta"], cwd=workspace.root, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        started = _wait_for(lambda: len(fake.accepted_ids) >= 600, timeout=30)
        assert started, process.stderr.read().decode() if process.poll() is not None else ""
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL

    # Requests the dead process had in flight are still processed by the platform.
    time.sleep(fake.latency * 3)
    accepted_before_rerun = set(fake.accepted_ids)
    assert 600 <= len(accepted_before_rerun) < total

    with Ledger.open(workspace.ledger_path) as ledger:  # replays the WAL like a rerun would
        delivered_before_rerun = ledger.status_counts("meta").get("delivered", 0)
        (killed_run,) = ledger.recent_runs(["meta"])
    assert killed_run["status"] == "interrupted"
    # What the ledger knows is a subset of what arrived, short by the batches in flight.
    assert 0 < delivered_before_rerun <= len(accepted_before_rerun)
    assert len(accepted_before_rerun) - delivered_before_rerun <= exposed

    fake.latency = 0
    assert workspace.ship("run", "meta") == 0

    arrived = fake.accepted_ids
    assert set(arrived) == {f"evt-{i}" for i in range(total)}
    duplicates = len(arrived) - len(set(arrived))
    assert duplicates <= exposed
    assert set(fake.duplicates()) <= accepted_before_rerun
    assert workspace.statuses("meta") == {"delivered": total}


def test_a_killed_first_run_whose_wal_is_lost_is_not_resent(workspace):
    """All a killed run delivered may live only in the .wal: lose it, and the marker,
    written at the first accepted batch, still stops the next live run."""
    fake = workspace.meta()
    fake.latency = 0.05
    workspace.env(META_BATCH_SIZE="50", META_CONCURRENCY="1")
    workspace.meta_mart(meta_row(i) for i in range(2000))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen([sys.executable, "-m", "shipper", "run", "meta"],
                               cwd=workspace.root, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        assert _wait_for(lambda: len(fake.accepted_ids) >= 200, timeout=30)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    Path(f"{workspace.ledger_path}.wal").unlink(missing_ok=True)
    time.sleep(fake.latency * 3)  # the request the dead process had on the wire lands
    sent = len(fake.accepted_ids)

    fake.latency = 0
    assert workspace.ship("run", "meta") == 2
    assert len(fake.accepted_ids) == sent
