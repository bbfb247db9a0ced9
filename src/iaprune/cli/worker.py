"""``iaprune worker RUN_DIR``: run trials of a run's study as one more process."""

from __future__ import annotations

import argparse

from iaprune.cli._trust import add_trust_arg
from iaprune.parallel import follow_leader
from iaprune.session import Session


def register(sub: argparse._SubParsersAction) -> None:
    """Add the subcommand."""
    p = sub.add_parser(
        "worker",
        help="run trials of RUN_DIR's study (started by `iaprune search/prune`) until it has "
        "its trials; writes nothing in RUN_DIR",
    )
    p.add_argument("run_dir")
    add_trust_arg(p)
    p.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    """Join the study of an existing run directory whose baseline is finished."""
    follow_leader()  # a worker started by `--workers N` ends with its leader
    session = Session.open(a.run_dir, trust_code=a.trust_code)
    session.check_joinable()
    ran = session.join(session.finished_baseline_model())
    print(f"worker: ran {ran} trials of study {session.config.search.study_name!r}")
    return 0
