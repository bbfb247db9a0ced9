"""The ``--trust-code`` opt-in shared by every subcommand that loads a model or a run."""

from __future__ import annotations

import argparse

from iaprune.model_source import TRUST_FLAG

TRUST_HELP = (
    "allow code to run while loading: a factory 'module:fn' named in a run's model.json, "
    "or a module file saved with torch.save(model) (unpickled). Without it only zoo "
    "models and plain weight files load, so a run directory from someone else is safe; "
    "use it only for files you trust"
)


def add_trust_arg(p: argparse.ArgumentParser) -> None:
    """Add ``--trust-code`` (stored as ``trust_code``)."""
    p.add_argument(TRUST_FLAG, dest="trust_code", action="store_true", help=TRUST_HELP)
