"""``iaprune worker RUN_DIR``: run trials of a run's study as one more process.

A worker may start before its leader (``iaprune prune`` / ``search``): it waits, up to
``--wait`` seconds and with one log line, until the run directory has its config.json, a
finished baseline and its study, then joins.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from iaprune.cli._trust import add_trust_arg
from iaprune.config import MAX_STORAGE_RETRY
from iaprune.errors import IAPruneError
from iaprune.parallel import STORAGE_ENV, check_joinable, follow_leader
from iaprune.rundir import RUN_MARKER
from iaprune.search import open_storage
from iaprune.session import Session

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
"""How often a waiting worker looks at the run directory again."""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the subcommand."""
    p = sub.add_parser(
        "worker",
        help="run trials of RUN_DIR's study (started by `iaprune search/prune`) until it has "
        "its trials; writes nothing in RUN_DIR",
    )
    p.add_argument("run_dir")
    p.add_argument(
        "--wait",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long to wait for the leader to create RUN_DIR, train its baseline and start "
        "its study (default 600; 0: join now or stop)",
    )
    p.add_argument(
        "--storage",
        metavar="URL",
        help="the study's storage URL, when config.json's does not reach it from here (its "
        "password is stored masked: give it here, or in PGPASSWORD or ~/.pgpass)",
    )
    add_trust_arg(p)
    p.set_defaults(func=run)


class _Waiter:
    """Polls conditions until one shared deadline; logs one line the first time it waits."""

    def __init__(self, root: Path, seconds: float) -> None:
        self.root = root
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.logged = False

    def until(self, ready: Callable[[], bool]) -> bool:
        """Whether ``ready()`` holds before the deadline."""
        while not ready():
            if time.monotonic() >= self.deadline:
                return False
            if not self.logged:
                self.logged = True
                log.warning(
                    "worker: waiting up to %g s for the search of %s to start (its config.json, "
                    "baseline and study)",
                    self.seconds,
                    self.root,
                )
            time.sleep(POLL_SECONDS)
        return True

    def left(self) -> float:
        """Seconds until the deadline."""
        return max(0.0, self.deadline - time.monotonic())

    def after(self) -> str:
        """`` after waiting N s`` for messages (empty without a wait)."""
        return f" after waiting {self.seconds:g} s" if self.seconds else ""


def _opens(url: str) -> bool:
    """Whether the run's SQLite study opens (its creator may still be making its tables)."""
    try:
        open_storage(url, heartbeat=1)
    except IAPruneError:
        return False
    return True


def run(a: argparse.Namespace) -> int:
    """Wait until the run's baseline is finished and its study exists, then join the study."""
    follow_leader()  # a worker started by `--workers N` ends with its leader
    if not (math.isfinite(a.wait) and 0 <= a.wait <= MAX_STORAGE_RETRY):
        raise IAPruneError(f"--wait must be a number of seconds in 0..{MAX_STORAGE_RETRY}")
    root = Path(a.run_dir)
    waiter = _Waiter(root, a.wait)
    if not waiter.until(lambda: (root / RUN_MARKER).is_file()):
        raise IAPruneError(
            f"{root} is not an iaprune run directory (no config.json){waiter.after()}; a worker "
            f"joins a run started by `iaprune prune` or `iaprune search --run-dir {root}`"
        )
    session = Session.open(root, trust_code=a.trust_code)
    storage = a.storage or os.environ.get(STORAGE_ENV)
    if storage:
        search = replace(session.config.search, storage=storage)
        session.config = replace(session.config, search=search)
    finished = bool(session.config.checkpoint) or waiter.until(
        lambda: (root / "baseline.pt").is_file() and session.baseline_done() is not None
    )
    if not finished:
        raise IAPruneError(
            f"the baseline of {root} is not finished{waiter.after()}: a worker joins once "
            "the run's leader has trained it (raise --wait to wait longer)"
        )
    model = session.finished_baseline_model()
    if not session.config.search.storage:  # the run's study.db, made by its leader
        url = session.run.storage
        if not waiter.until(lambda: (root / "study.db").is_file() and _opens(url)):
            check_joinable(root, session.config.search.storage)  # no study.db: says so
            open_storage(url, heartbeat=1)  # its error
    ran = session.join(model, timeout=waiter.left())
    print(f"worker: ran {ran} trials of study {session.config.search.study_name!r}")
    return 0
