"""``iaprune models`` and ``iaprune datasets``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add both subcommands."""
    sub.add_parser("models", help="list zoo models").set_defaults(func=_models)
    sub.add_parser("datasets", help="list datasets").set_defaults(func=_datasets)


def _models(_: argparse.Namespace) -> int:
    from iaprune.models import list_models

    print("\n".join(list_models()))
    return 0


def _datasets(_: argparse.Namespace) -> int:
    from iaprune.data import list_datasets

    print("\n".join(list_datasets()))
    return 0
