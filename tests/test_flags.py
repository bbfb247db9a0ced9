"""The one table of settings: every entry names a real config field and a real option."""

from __future__ import annotations

import argparse

from iaprune.cli.main import build_parser
from iaprune.config import RunConfig
from iaprune.flags import CONFIG_PATHS, FLAGS, LOCAL_KEYS, SAFE_CHANGES
from iaprune.resume import flatten


def _dests(parser: argparse.ArgumentParser, command: str) -> set[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest for a in sub.choices[command]._actions}


def test_every_setting_is_a_config_field_listed_once() -> None:
    fields = set(flatten(RunConfig().to_dict()))
    paths = [f.path for f in FLAGS]
    assert len(paths) == len(set(paths))
    assert set(paths) <= fields
    assert (SAFE_CHANGES | LOCAL_KEYS).issubset(fields)


def test_every_option_in_the_table_is_an_option_of_prune() -> None:
    assert set(CONFIG_PATHS) <= _dests(build_parser(), "prune")
    assert CONFIG_PATHS["seed"] == ("seed", "search.seed")  # one option, two settings


def test_what_resume_and_workers_may_change() -> None:
    assert "search.trials" in SAFE_CHANGES and "search.trials" not in LOCAL_KEYS
    assert "search.storage" in SAFE_CHANGES and "search.storage" in LOCAL_KEYS
    assert "search.objective.max_macs" not in SAFE_CHANGES | LOCAL_KEYS
    assert "search.final_distill" in LOCAL_KEYS  # set by the Python API only
