"""Entry point: dispatch to subcommands; user errors become one line and exit code 2.

SIGTERM is handled like Ctrl-C (finished work is kept, local search workers are stopped,
a half-started ``--overwrite`` is undone), with exit code 143. A command's run-directory
locks are released when it ends.

Only the standard library is imported at module level: the subcommands (and torch) are
imported inside :func:`main`, so a Ctrl-C in the first seconds, while they load, prints
one line and exits 130 like a Ctrl-C during the work.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

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
        allow_abbrev=False,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"iaprune.cli.{name}").register(sub)
    _exact_options(parser)
    return parser


def _exact_options(parser: argparse.ArgumentParser) -> None:
    """Turn off prefix matching in ``parser`` and every subcommand's parser.

    A flag means exactly what it says: ``--max-latency 0.4`` must never be read as
    ``--max-latency-ms 0.4`` because one name is a prefix of the other.
    """
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _exact_options(child)


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


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM, so that it unwinds like Ctrl-C."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    started = False
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        from iaprune.cli._args import given_dests
        from iaprune.errors import IAPruneError, resource_error
        from iaprune.rundir import release_locks

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
        finally:
            release_locks()
    except KeyboardInterrupt as exc:
        if isinstance(exc, Terminated):
            stopped = INTERRUPTED.replace("interrupted", "terminated")
            print(stopped if started else INTERRUPTED_EARLY, file=sys.stderr)
            return 143
        print(INTERRUPTED if started else INTERRUPTED_EARLY, file=sys.stderr)
        return 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
