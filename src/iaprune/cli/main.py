"""Entry point: dispatch to subcommands; user errors become one line and exit code 2.

Only the standard library is imported at module level: the subcommands (and torch) are
imported inside :func:`main`, so a Ctrl-C in the first seconds, while they load, prints
one line and exits 130 like a Ctrl-C during the work.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

INTERRUPTED = "interrupted: finished work is saved; continue with --resume"
INTERRUPTED_EARLY = "interrupted before the command started; nothing was changed"

SUBCOMMANDS = (
    "prune",
    "search",
    "worker",
    "finetune",
    "evaluate",
    "listing",
    "export",
    "latency_table",
    "report",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    import importlib

    parser = argparse.ArgumentParser(
        prog="iaprune",
        description="Inference-aware CNN filter pruning with Bayesian optimisation.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"iaprune.cli.{name}")
        except ModuleNotFoundError as exc:  # subcommands still being written are skipped
            if exc.name != f"iaprune.cli.{name}":
                raise
            continue
        module.register(sub)
    return parser


def setup_logging(verbose: bool) -> None:
    """INFO to stderr with -v, or when stderr is not a terminal (CI, nohup, a log file).

    Without a terminal there are no progress bars, so stages, trials and epochs are logged.
    """
    level = logging.INFO if verbose or not sys.stderr.isatty() else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("iaprune").setLevel(level)


def error_line(exc: BaseException, limit: int = 500) -> str:
    """``error: <message>`` on one line, at most about ``limit`` characters."""
    text = " ".join(str(exc).split())
    return f"error: {text if len(text) <= limit else text[: limit - 3] + '...'}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    started = False
    try:
        from iaprune.cli._args import given_dests
        from iaprune.errors import IAPruneError, resource_error

        parser = build_parser()
        argv = list(sys.argv[1:] if argv is None else argv)
        args = parser.parse_args(argv)
        args.explicit = given_dests(build_parser(), argv)
        setup_logging(args.verbose)
        if args.command is None:
            parser.print_help()
            return 2
        started = True
        try:
            return int(args.func(args) or 0)
        except IAPruneError as exc:
            print(error_line(exc), file=sys.stderr)
            return 2
        except Exception as exc:  # a full disk or exhausted memory is one line too
            message = resource_error(exc)
            if message is None:
                raise
            logging.getLogger(__name__).debug("resource error", exc_info=True)
            print(f"error: {message}", file=sys.stderr)
            return 2
    except KeyboardInterrupt:
        print(INTERRUPTED if started else INTERRUPTED_EARLY, file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
