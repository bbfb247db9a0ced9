"""Scale-out of a run: the definition a shared study holds, and local worker processes.

A run's study can be worked on by several processes (see :mod:`iaprune.search.workers`
for the storage mechanics). This module holds the pipeline's side of it:

* :func:`run_definition` is what every worker must agree on: the run's configuration
  without settings that may differ per machine or per resume, plus a fingerprint of the
  baseline weights (workers on other machines must search the same baseline);
  :func:`refuse_other_run` compares it with the one a study stores (a worker joining, a
  command whose storage already holds the study).
* :func:`local_workers` starts ``--workers N - 1`` extra ``iaprune worker RUN_DIR``
  processes next to the leader and waits for them (and stops them on failure).
* :func:`follow_leader`, called by such a worker, ends it when its leader ends, however
  the leader ends (SIGKILL included): Linux's parent-death signal, and a thread that
  watches the parent pid elsewhere.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from iaprune.config import RunConfig
from iaprune.errors import IAPruneError
from iaprune.flags import LOCAL_KEYS, SAFE_CHANGES
from iaprune.resume import flatten

log = logging.getLogger(__name__)

LEADER_ENV = "IAPRUNE_LEADER_PID"
"""Set by :func:`local_workers` for its workers: the pid of the process they die with."""
STORAGE_ENV = "IAPRUNE_STORAGE"
"""Set by :func:`local_workers` for its workers: the study's storage URL with its password
(config.json keeps it masked; the environment is not visible to other users, argv is)."""
PR_SET_PDEATHSIG = 1
"""Linux ``prctl`` option: the signal a process gets when its parent ends."""
GRACE_SECONDS = 30.0
"""How long a worker whose leader ended may take to stop after SIGTERM before it is ended."""


def fingerprint(model: nn.Module) -> str:
    """SHA-256 of a model's state dict (names, shapes, dtypes and values), first 16 hex."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def run_definition(config: RunConfig, baseline: nn.Module | None = None) -> dict[str, Any]:
    """Flat ``{"dotted.key": value}`` every worker of the run's study must share."""
    flat = flatten(config.to_dict())
    out = {k: v for k, v in flat.items() if k not in SAFE_CHANGES | LOCAL_KEYS}
    if baseline is not None:
        out[BASELINE_KEY] = fingerprint(baseline)
    return out


def differences(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> list[str]:
    """``"key: theirs -> ours"`` for every flat key that differs."""
    keys = sorted(set(ours) | set(theirs))
    return [f"{k}: {theirs.get(k)} -> {ours.get(k)}" for k in keys if ours.get(k) != theirs.get(k)]


BASELINE_KEY = "baseline_sha256"
"""The run definition's fingerprint of the baseline weights (:func:`run_definition`)."""


def refuse_other_run(
    study_name: str,
    url: str,
    ours: Mapping[str, Any],
    theirs: Mapping[str, Any],
    *,
    baseline: bool = True,
) -> None:
    """A one-line error unless run definitions ``ours`` and ``theirs`` (the study's) agree.

    ``baseline=False`` leaves the baseline's fingerprint out (not known yet). A study whose
    definition differs in the baseline alone gets its own message: every worker must load
    the same weights.
    """
    if not baseline:
        ours = {k: v for k, v in ours.items() if k != BASELINE_KEY}
        theirs = {k: v for k, v in theirs.items() if k != BASELINE_KEY}
    diff = differences(ours, theirs)
    if diff and all(d.startswith(f"{BASELINE_KEY}:") for d in diff):
        raise IAPruneError(
            f"this worker's baseline differs from the one study {study_name!r} searches "
            f"({diff[0]}); give every worker the same --checkpoint"
        )
    if diff:
        raise IAPruneError(
            f"study {study_name!r} in {url} belongs to another run ({'; '.join(diff[:5])}); "
            "choose another --study-name or --run-dir"
        )


def check_joinable(run_dir: Path, storage: str | None) -> None:
    """Refuse to join a run whose study does not exist yet (no ``study.db``, no ``storage``).

    A worker never creates the run's study database: a leader (``iaprune prune`` or
    ``iaprune search``) creates it before its workers start.
    """
    if not storage and not (run_dir / "study.db").is_file():
        raise IAPruneError(
            f"{run_dir} has no study yet (no study.db): a worker joins a search "
            f"started by `iaprune prune` or `iaprune search`; start that first"
        )


@contextlib.contextmanager
def local_workers(
    run_dir: Path,
    count: int,
    *,
    trust_code: bool = False,
    cuda: bool = False,
    storage: str | None = None,
) -> Iterator[None]:
    """Run ``count`` ``iaprune worker RUN_DIR`` processes alongside the ``with`` body.

    ``storage``: the study's URL (given to the workers in :data:`STORAGE_ENV`, since
    config.json keeps its password masked).

    CPU threads are split between the processes; with ``cuda`` and several visible GPUs,
    worker ``i`` gets GPU ``(i + 1) % gpus`` (``CUDA_VISIBLE_DEVICES``; the leader uses
    its own device). On leaving normally the workers are
    waited for (they stop once the study has its trials); on an error or Ctrl-C they are
    terminated. A worker that dies costs nothing: its trial is retried by another.
    """
    if count <= 0:
        yield
        return
    threads = max(1, (os.cpu_count() or 1) // (count + 1))
    torch.set_num_threads(threads)
    cmd = [sys.executable, "-m", "iaprune.cli.main", "worker", str(run_dir)]
    cmd += ["--trust-code"] if trust_code else []
    env = os.environ | {
        "OMP_NUM_THREADS": str(threads),
        "IAPRUNE_NO_PROGRESS": "1",
        LEADER_ENV: str(os.getpid()),
    }
    if storage:
        env[STORAGE_ENV] = storage
    gpus = torch.cuda.device_count() if cuda else 0
    procs = [
        subprocess.Popen(
            cmd, env=env | ({"CUDA_VISIBLE_DEVICES": str((i + 1) % gpus)} if gpus > 1 else {})
        )
        for i in range(count)
    ]
    log.info("started %d search workers (pids %s)", count, [p.pid for p in procs])
    try:
        yield
        for p in procs:
            if p.wait() != 0:
                log.warning("search worker %d exited with code %d", p.pid, p.returncode)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()


def follow_leader() -> None:
    """End this process (SIGTERM, then exit) when the leader named by :data:`LEADER_ENV` ends.

    A no-op for a worker started by hand. SIGTERM lets the worker stop like Ctrl-C (its
    running trial is marked failed and retried by others); one still alive after
    :data:`GRACE_SECONDS` exits at once.
    """
    raw = os.environ.get(LEADER_ENV, "")
    if not raw.isdigit():
        return
    leader = int(raw)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    threading.Thread(target=_watch_leader, args=(leader,), name="leader-watch", daemon=True).start()


def _watch_leader(leader: int) -> None:
    """Poll the parent pid (it changes when the parent ends); covers the start-up race too."""
    while os.getppid() == leader:
        time.sleep(0.5)
    log.warning("search leader %d ended: stopping this worker", leader)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(GRACE_SECONDS)
    os._exit(143)
