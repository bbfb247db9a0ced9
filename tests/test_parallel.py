"""Local search workers: they stop with their leader, however the leader ends."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import iaprune

ENV = os.environ | {
    "PYTHONPATH": str(Path(iaprune.__file__).resolve().parents[1]),
    "IAPRUNE_NO_PROGRESS": "1",
}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has ended


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_workers_die_with_their_leader(received_run: Path, tmp_path: Path, sig: int) -> None:
    log = tmp_path / "leader.log"
    argv = [
        "prune",
        "--run-dir",
        str(received_run),
        "--resume",
        "--trials",
        "400",
        "--workers",
        "2",
    ]
    with log.open("w") as err:
        leader = subprocess.Popen(
            [sys.executable, "-m", "iaprune.cli.main", *argv],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=ENV,
        )
    found = None
    try:
        deadline = time.monotonic() + 240
        while not (found := re.search(r"search workers \(pids \[(\d+)\]\)", log.read_text())):
            assert leader.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "no worker started"
            time.sleep(0.2)
        worker = int(found.group(1))
        time.sleep(1.0)  # the worker is importing or already running trials
        assert _alive(worker)
        leader.send_signal(sig)
        leader.wait(timeout=60)
        deadline = time.monotonic() + 30
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(worker), "the worker outlived its leader"
    finally:
        if leader.poll() is None:
            leader.kill()
            leader.wait()
        if found and _alive(int(found.group(1))):
            os.kill(int(found.group(1)), signal.SIGKILL)
