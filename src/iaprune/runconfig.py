"""The run's configuration (``config.json``) and what ``--resume`` may change in it."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from typing import Any

from iaprune.config import (
    CostConfig,
    FinetuneConfig,
    ObjectiveConfig,
    SearchConfig,
    check_finite,
    check_types,
)
from iaprune.errors import IAPruneError, one_line

# Settings --resume may change: they do not alter what the finished stages computed.
SAFE_CHANGES = frozenset(
    {
        "download",
        "baseline_epochs",
        "baseline_lr",
        "search.trials",
        "finetune.epochs",
        "finetune.lr",
        "finetune.label_smoothing",
        "cost.warmup",
        "cost.repeats",
        "device",
        "search.rescore",
        "search.storage",
        "search.workers",
        "search.heartbeat",
    }
)


# Keys config.json must hold (newer fields may be missing from older runs' files).
_REQUIRED = ("model", "dataset", "seed", "search", "finetune", "cost")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run; saved as ``config.json``."""

    model: str = "vgg16"
    dataset: str = "digits"
    data_root: str | None = None
    download: bool = False
    width_mult: float = 0.25
    checkpoint: str | None = None
    baseline_epochs: int = 30
    baseline_lr: float = 0.05
    val_fraction: float = 0.1
    seed: int = 0
    device: str = "cpu"
    image_size: int | None = None
    pad_to: int | None = None
    search: SearchConfig = field(default_factory=SearchConfig)
    finetune: FinetuneConfig = field(default_factory=lambda: FinetuneConfig(epochs=10))
    cost: CostConfig = field(default_factory=CostConfig)

    def __post_init__(self) -> None:
        check_finite(self, "width_mult", "baseline_lr", "val_fraction")
        if self.width_mult <= 0 or self.baseline_lr <= 0 or self.baseline_epochs < 0:
            raise IAPruneError("need --width-mult > 0, --baseline-lr > 0, --baseline-epochs >= 0")
        for name in ("image_size", "pad_to"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise IAPruneError(f"{name} must be >= 1")

    def dataset_options(self) -> dict[str, Any]:
        """Dataset-specific options given (``image_size``, ``pad_to``, ``download``)."""
        options = {"image_size": self.image_size, "pad_to": self.pad_to}
        options = {k: v for k, v in options.items() if v is not None}
        return options | ({"download": True} if self.download else {})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "config.json") -> RunConfig:
        """Inverse of :meth:`to_dict`; a missing key or a wrong type is a one-line error."""
        try:
            data = dict(check_types(cls, data, _REQUIRED))
            search = dict(check_types(SearchConfig, data.pop("search"), ("objective",)))
            objective = ObjectiveConfig(**check_types(ObjectiveConfig, search.pop("objective")))
            search_cfg = SearchConfig(**search, objective=objective)
            finetune_cfg = FinetuneConfig(**check_types(FinetuneConfig, data.pop("finetune")))
            cost = CostConfig(**check_types(CostConfig, data.pop("cost")))
            return cls(**data, search=search_cfg, finetune=finetune_cfg, cost=cost)
        except IAPruneError as exc:
            raise IAPruneError(f"{where} is invalid: {exc}") from exc
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            raise IAPruneError(f"{where} is invalid: {one_line(exc, 200)}") from exc


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
    """``"search.trials: 30 -> 60, finetune.lr: 0.01 -> 0.001"``."""
    a, b = flatten(old.to_dict()), flatten(new.to_dict())
    return ", ".join(f"{k}: {a.get(k)} -> {b[k]}" for k in sorted(b) if a.get(k) != b[k])
