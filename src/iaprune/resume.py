"""What ``--resume`` may change in ``config.json`` (and the diff it shows), and may write."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from typing import Any

from iaprune.config import DEFAULT_STUDY, RunConfig, masked_url
from iaprune.errors import IAPruneError
from iaprune.flags import SAFE_CHANGES

STORED_OUTPUTS = ("search.storage", "cost.table")
"""Paths in config.json a run writes to. A resumed run writes to them only when the command
line names them again: a run directory received from someone else must not make iaprune
write elsewhere (the Python API, with ``explicit=None``, names every field itself)."""


def confirm_outputs(
    config: RunConfig, explicit: Collection[str] | None
) -> tuple[RunConfig, frozenset[str]]:
    """What a resumed ``config`` may write where its run directory says, without being told.

    A stored storage URL that ``explicit`` does not name again is refused (one line saying
    how to confirm it) and a stored ``download`` is turned off. Returns the config and the
    other :data:`STORED_OUTPUTS` not named again (to be used read-only).
    """
    if explicit is None:
        return config, frozenset()
    flat = flatten(config.to_dict())
    unconfirmed = {k: str(flat[k]) for k in STORED_OUTPUTS if flat.get(k) and k not in explicit}
    storage = unconfirmed.pop("search.storage", None)
    if storage is not None:
        storage = masked_url(storage)
        raise IAPruneError(
            f"config.json keeps this run's study in {storage}; a resumed run writes there "
            f"only when told: pass --storage {storage} (if you trust that location)"
        )
    if config.download and "download" not in explicit:
        config = replace(config, download=False)  # fetch into a stored data_root only if asked
    return config, frozenset(unconfirmed)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"search": {"trials": 3}}`` -> ``{"search.trials": 3}``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out |= flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten`."""
    out: dict[str, Any] = {}
    for path, value in flat.items():
        *parents, leaf = path.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def with_study_name(config: RunConfig, saved: RunConfig | None, run_name: str) -> RunConfig:
    """``config`` with its study: the one chosen, else the resumed run's, else ``run_name``."""
    if config.search.study_name != DEFAULT_STUDY:
        return config
    name = saved.search.study_name if saved is not None else run_name
    return replace(config, search=replace(config.search, study_name=name))


def resume_config(
    saved: RunConfig, requested: RunConfig, explicit: Collection[str] | None = None
) -> RunConfig:
    """The config a resumed run continues with: ``saved`` plus the requested safe changes.

    ``explicit`` names the dotted fields the user actually set (None: all of them).
    A change to any field outside :data:`SAFE_CHANGES` refuses the resume.
    """
    old, new = flatten(saved.to_dict()), flatten(requested.to_dict())
    asked = set(new) if explicit is None else set(explicit) & set(new)
    changed = sorted(k for k in asked if old.get(k) != new[k])
    refused = [k for k in changed if k not in SAFE_CHANGES]
    if refused:
        diff = ", ".join(f"{k}: {old.get(k)} -> {new[k]}" for k in refused)
        raise IAPruneError(
            f"--resume cannot change what defines the run ({diff}); "
            "use another --run-dir (or --overwrite)"
        )
    return RunConfig.from_dict(unflatten(old | {k: new[k] for k in changed}))


def describe_changes(old: RunConfig, new: RunConfig) -> str:
    """``"search.trials: 30 -> 60, finetune.lr: 0.01 -> 0.001"`` (passwords masked)."""
    a, b = flatten(old.stored()), flatten(new.stored())
    return ", ".join(f"{k}: {a.get(k)} -> {b[k]}" for k in sorted(b) if a.get(k) != b[k])
