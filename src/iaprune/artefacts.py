"""The stage artefacts of a run directory: ``baseline.pt`` and ``pruned.pt``.

Each is written atomically and only when its stage is complete. ``baseline.pt`` says
``complete``; ``pruned.pt`` carries the spec it was pruned with, its training history and
what it was made from (:func:`finetune_record`), so spec.json and finetune.json, written
after it, can always be rebuilt from it (:func:`restore_finetune_files`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from torch import nn

from iaprune.config import FinetuneConfig
from iaprune.errors import IAPruneError
from iaprune.pruning import PruningSpec
from iaprune.rundir import RunDir
from iaprune.train import TrainHistory, save_atomic
from iaprune.train.checkpoint import load_state

log = logging.getLogger(__name__)


def finished_baseline(root: Path) -> dict[str, Any] | None:
    """``root/baseline.pt`` if it holds a finished baseline (not an interrupted one)."""
    path = root / "baseline.pt"
    if not path.is_file():
        return None
    obj = load_state(path)
    # Older runs wrote "epoch" into the file while training and dropped it when done.
    return obj if obj.get("complete") or "epoch" not in obj else None


def save_baseline(run: RunDir, model: nn.Module, **extra: Any) -> None:
    """Write the finished ``baseline.pt`` (``extra``: what it came from) and drop the partial."""
    save_atomic({"state_dict": model.state_dict(), "complete": True, **extra}, run / "baseline.pt")
    (run / "baseline.partial.pt").unlink(missing_ok=True)


def adopt_checkpoint(run: RunDir, model: nn.Module, source: str) -> None:
    """Store ``model`` (loaded from the checkpoint ``source``) as the finished baseline.pt."""
    save_atomic(
        {"state_dict": model.state_dict(), "complete": True, "source": source}, run / "baseline.pt"
    )


def finetune_record(spec: PruningSpec, config: FinetuneConfig) -> dict[str, Any]:
    """What a pruned.pt was made from: the kept widths and the fine-tuning settings."""
    return {
        "keep": dict(spec.keep),
        "epochs": config.epochs,
        "lr": config.lr,
        "label_smoothing": config.label_smoothing,
    }


def finetune_done(run: RunDir, spec: PruningSpec, config: FinetuneConfig) -> bool:
    """Whether pruned.pt is a finished fine-tune of ``spec`` with the settings ``config``."""
    path = run / "pruned.pt"
    return path.is_file() and load_state(path).get("made_from") == finetune_record(spec, config)


def save_pruned(
    run: RunDir, pruned: nn.Module, spec: PruningSpec, record: dict[str, Any], history: TrainHistory
) -> None:
    """Write ``pruned.pt`` (with its spec, ``record`` and history), then spec.json.

    pruned.pt carries its spec, so it never disagrees with the weights even when a kill
    lands between writing it and spec.json.
    """
    state = {"state_dict": pruned.state_dict(), "spec": spec.to_dict(), "made_from": record}
    save_atomic(state | {"history": history.epochs}, run / "pruned.pt")
    spec.save(run / "spec.json")
    (run / "pruned.partial.pt").unlink(missing_ok=True)


def unfinished_stage(run: RunDir, *, checkpoint: str | None) -> str:
    """The first stage of ``run`` without its artefact: baseline, search or fine-tune."""
    if not checkpoint and finished_baseline(run.root) is None:
        return "baseline"
    if not (run / "search.json").is_file():
        return "search"
    return "fine-tune"


def pruned_spec(run: RunDir, *, checkpoint: str | None) -> PruningSpec:
    """The spec pruned.pt was made from (spec.json for runs that predate it).

    ``checkpoint``: the run's ``--checkpoint`` (its baseline then needs no training).
    """
    if not (run / "pruned.pt").exists():
        raise IAPruneError(
            f"{run.root} has no pruned model: its {unfinished_stage(run, checkpoint=checkpoint)} "
            f"stage is not finished (continue with: iaprune prune --run-dir {run.root} "
            "--resume)"
        )
    saved = load_state(run / "pruned.pt").get("spec")
    if isinstance(saved, dict):
        return PruningSpec.from_dict(saved)
    return PruningSpec.load(run / "spec.json")


def restore_finetune_files(run: RunDir) -> list[str]:
    """Rewrite spec.json and finetune.json from a finished pruned.pt where they differ.

    pruned.pt carries its spec and training history, so a spec.json or finetune.json
    that is missing, truncated, of the wrong shape or stale (a kill between the
    writes) is rebuilt from it exactly. Returns the names rewritten.
    """
    state = load_state(run / "pruned.pt")
    rewritten = []
    spec = state.get("spec")
    if isinstance(spec, dict):
        expected = PruningSpec.from_dict(spec)
        try:
            ok = PruningSpec.load(run / "spec.json") == expected
        except IAPruneError:
            ok = False
        if not ok:
            expected.save(run / "spec.json")
            rewritten.append("spec.json")
    history = state.get("history")
    if isinstance(history, list):
        expected_json = {"epochs": history}
        try:
            ok = run.read_dict("finetune.json") == _as_json(expected_json)
        except IAPruneError:
            ok = False
        if not ok:
            run.write_json("finetune.json", expected_json)
            rewritten.append("finetune.json")
    for name in rewritten:
        log.warning("%s was missing or corrupt: rebuilt from pruned.pt", name)
    return rewritten


def _as_json(data: Any) -> Any:
    """``data`` as written to and read back from a JSON artefact."""
    return json.loads(json.dumps(data, default=str))
