"""Frozen configuration dataclasses shared by the Python API and the CLI."""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import asdict, dataclass, field
from types import UnionType
from typing import Any, Literal, Union

from iaprune.errors import IAPruneError, one_line
from iaprune.formats import current
from iaprune.storage_url import MASK as MASK  # re-exported: part of the settings' API
from iaprune.storage_url import in_memory_sqlite as in_memory_sqlite
from iaprune.storage_url import masked_url as masked_url
from iaprune.storage_url import unmasked_url as unmasked_url
from iaprune.timing import TimingSettings


def _positive(value: float) -> bool:
    """Finite and > 0 (NaN and inf are neither)."""
    return math.isfinite(value) and value > 0


MAX_SEED = 2**32 - 1
"""Largest seed: NumPy's generators (Optuna's samplers) take seeds in 0 .. 2**32 - 1."""
MAX_HEARTBEAT = 86_400
"""Longest heartbeat interval in seconds (a day); Python's thread waits overflow beyond ~1e9 s."""
MAX_STORAGE_RETRY = 86_400
"""Longest ``--storage-retry`` in seconds (a day)."""
MAX_IMAGE_SIDE = 4096
"""Largest ``image_size`` / ``pad_to``: an image side beyond any CNN's input."""


def check_seed(seed: object, name: str = "--seed") -> None:
    """A one-line error unless ``seed`` is an integer in ``0 .. MAX_SEED``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise IAPruneError(f"{name} must be an integer in 0..{MAX_SEED}, got {seed!r}")


def check_finite(obj: object, *names: str) -> None:
    """A one-line error naming the first of ``names`` that is NaN or infinite."""
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, float) and not math.isfinite(value):
            raise IAPruneError(f"{name} must be a finite number, got {value}")


def _accepts(hint: Any, value: Any) -> bool:
    """Whether ``value`` fits a field annotation (str, int, float, bool, None, Literal)."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (Union, UnionType) else (hint,)
    for option in options:
        if typing.get_origin(option) is Literal and value in typing.get_args(option):
            return True
        if option is type(None) and value is None:
            return True
        if option is float and isinstance(value, int | float) and not isinstance(value, bool):
            return True
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if option in (str, bool) and isinstance(value, option):
            return True
    return False


def check_types(cls: type, data: Any, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """``data`` (a dict read from JSON) if every scalar field of dataclass ``cls`` fits its type.

    Fields missing from ``data`` take their defaults (files from older versions lack the
    newer fields), except those named in ``required``.

    Raises:
        IAPruneError: ``data`` is not a dict, a required key is missing, or a field has the
            wrong type.
    """
    if not isinstance(data, dict):
        raise IAPruneError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}")
    missing = [k for k in required if k not in data]
    if missing:
        raise IAPruneError(f"missing key(s) {', '.join(missing)}")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        nested = dataclasses.is_dataclass(hints[f.name])
        if f.name in data and not nested and not _accepts(hints[f.name], data[f.name]):
            raise IAPruneError(f"{f.name} has the wrong type: {data[f.name]!r}")
    return data


ObjectiveKind = Literal["constrained", "weighted", "pareto"]
OBJECTIVE_KINDS = ("constrained", "weighted", "pareto")


@dataclass(frozen=True)
class FinetuneConfig:
    """SGD + Nesterov momentum with a cosine schedule over ``epochs``.

    ``sync_bn``: under torchrun, BatchNorm normalises with the statistics of the global
    batch (:mod:`iaprune.train.syncbn`), as one process would; no effect in one process.
    """

    epochs: int = 5
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    batch_size: int = 64
    sync_bn: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 0 or not _positive(self.lr) or self.batch_size < 1:
            raise IAPruneError("finetune needs epochs >= 0, a finite lr > 0 and batch size >= 1")
        if not 0 <= self.label_smoothing < 1:
            raise IAPruneError("label smoothing must be in [0, 1)")


@dataclass(frozen=True)
class CostConfig(TimingSettings):
    """How inference cost is measured. MACs are per sample; latency is per batch.

    The timing fields (``backend``, ``batch_size``, ``threads``, ``warmup``, ``repeats``,
    ``device``) are those of :class:`~iaprune.timing.TimingSettings`, so a
    ``CostConfig`` is passed wherever timing settings are expected. ``latency`` says how
    search trials get a latency: ``"measured"`` (timed) or ``"predicted"`` (a latency
    table at ``table``, default :func:`iaprune.cost.default_table_path`).
    """

    latency: Literal["measured", "predicted"] = "measured"
    table: str | None = None

    def __post_init__(self) -> None:
        threads_ok = self.threads is None or self.threads >= 1
        if self.batch_size < 1 or not threads_ok or self.repeats < 1 or self.warmup < 0:
            raise IAPruneError("latency needs batch size, threads and repeats >= 1")
        super().__post_init__()
        if self.latency not in ("measured", "predicted"):
            raise IAPruneError(f"unknown latency mode {self.latency!r}; valid: measured, predicted")


@dataclass(frozen=True)
class ObjectiveConfig:
    """The search objective (see :mod:`iaprune.objective`).

    Budgets ``max_*`` are ratios to the unpruned model (0.4 = at most 40% of the
    original; ``max_latency`` of its latency on the run's backend, batch size and
    threads), except ``max_latency_ms`` which is absolute. Weights ``w_*`` are the
    penalties per unit of cost ratio in the weighted form.
    """

    kind: ObjectiveKind = "constrained"
    max_macs: float | None = None
    max_params: float | None = None
    max_memory: float | None = None
    max_latency: float | None = None
    max_latency_ms: float | None = None
    w_macs: float = 0.0
    w_params: float = 0.0
    w_memory: float = 0.0
    w_latency: float = 0.0
    pareto_cost: Literal["macs", "latency"] = "macs"

    def __post_init__(self) -> None:
        if self.kind not in OBJECTIVE_KINDS:
            raise IAPruneError(
                f"unknown objective {self.kind!r}; valid: {', '.join(OBJECTIVE_KINDS)}"
            )
        if self.pareto_cost not in ("macs", "latency"):
            raise IAPruneError(f"unknown pareto cost {self.pareto_cost!r}; valid: macs, latency")
        for name in ("max_macs", "max_params", "max_memory", "max_latency"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= 1:
                raise IAPruneError(f"{name} is a ratio of the original model and must be in (0, 1]")
        if self.max_latency_ms is not None and not _positive(self.max_latency_ms):
            raise IAPruneError("max_latency_ms must be a finite positive number")
        self._check_weights()
        if self.kind == "constrained" and not self.budgets():
            raise IAPruneError(
                "the constrained objective needs a budget: --max-macs, --max-params, "
                "--max-memory, --max-latency or --max-latency-ms"
            )
        if self.kind == "weighted" and not any(self.weights().values()):
            raise IAPruneError("the weighted objective needs a positive weight (e.g. --w-macs 0.5)")

    def _check_weights(self) -> None:
        """Weights are finite, >= 0, and only given with the weighted objective."""
        weights = self.weights()
        if not all(math.isfinite(w) and w >= 0 for w in weights.values()):
            raise IAPruneError("objective weights (--w-*) must be finite numbers >= 0")
        if self.kind != "weighted" and any(weights.values()):
            raise IAPruneError(
                f"--w-* weights apply only to --objective weighted (objective is {self.kind})"
            )

    def budgets(self) -> dict[str, float]:
        """Non-empty budgets as ``{"macs": 0.4, "latency_ms": 2.0, ...}``."""
        pairs = {
            "macs": self.max_macs,
            "params": self.max_params,
            "activation_bytes": self.max_memory,
            "latency": self.max_latency,
            "latency_ms": self.max_latency_ms,
        }
        return {k: v for k, v in pairs.items() if v is not None}

    def weights(self) -> dict[str, float]:
        """Penalty weight per cost ratio."""
        return {
            "macs": self.w_macs,
            "params": self.w_params,
            "activation_bytes": self.w_memory,
            "latency": self.w_latency,
        }

    @property
    def needs_latency(self) -> bool:
        """Whether candidates must have their latency measured."""
        pareto_latency = self.kind == "pareto" and self.pareto_cost == "latency"
        budget = self.max_latency is not None or self.max_latency_ms is not None
        return budget or self.w_latency > 0 or pareto_latency

    @property
    def multi_objective(self) -> bool:
        """Pareto mode: maximise accuracy and minimise ``pareto_cost`` jointly."""
        return self.kind == "pareto"


SPACES = ("budget", "local", "free")
DEFAULT_STUDY = "iaprune"
"""Study name of runs made before studies were named after their run directory."""
TIE_MODES = ("stage", "none")


@dataclass(frozen=True)
class SearchConfig:
    """Bayesian optimisation over per-layer widths.

    ``space="budget"`` (default) samples one relative allocation per cluster of groups
    (``tie``) and projects it onto the MACs/params budget, so every candidate uses the
    budget; ``"local"`` searches a trust region of one multiplicative move per group around
    the best warm start, projected onto the budget the same way
    (:mod:`iaprune.search.local`); ``"free"`` samples one keep-ratio per group in
    ``[min_ratio, 1]``. With
    ``warm_start`` the first trials are the heuristics' allocations (uniform, torch-pruning's
    global magnitude pruning, the cost knapsack, the one-shot global ranking and, with
    residual streams, the inner convs pruned alone); ``startup_trials`` random trials follow
    before the GP takes over (None: a quarter of the trials, 2 to 10). The final choice
    is made among the *finalists*, the warm starts and the best ``rescore`` searched
    candidates: with two or more, each
    is scored again after ``final_steps`` recovery steps with ``final_distill`` weight on
    knowledge distillation from the unpruned model (0 steps: their trial scores), and a
    heuristic is kept unless a searched candidate beats it by more than the score's noise,
    measured by scoring both once more (``rescore=0``: the best trial, no finalists).
    ``final_rungs`` (``"STEPS:SURVIVORS,..."``, :func:`parse_rungs`) adds successive
    halving: the best finalists continue their recovery to more steps and are scored again,
    and the choice is made among the last rung's.
    The finalists' first scores spend at most ``final_time`` times the search's own time on
    the searched finalists (the warm starts, the later rungs and the noise scores always
    run; 0: no limit).
    ``finetune_steps`` SGD steps per trial, with ``distill`` weight on distillation.
    ``importance`` names the filter criterion (:data:`iaprune.importance.IMPORTANCES`);
    the default ``group_l1`` is torch-pruning's group magnitude, which also counts the
    BatchNorm scales and the input weights of every layer that reads a channel.
    ``workers`` processes run trials of the study ``study_name`` in ``storage`` at once;
    every trial sends a heartbeat every ``heartbeat`` seconds, and one silent for three
    intervals (its worker died) is failed and retried by another worker. While the
    storage's database is unreachable (a server restart), every process retries it for up
    to ``storage_retry`` seconds before it stops with a one-line error.
    """

    sampler: str = "gp"
    trials: int = 30
    seed: int = 0
    importance: str = "group_l1"
    min_ratio: float = 0.05
    min_keep: int = 1
    round_to: int | None = None
    bn_batches: int = 10
    finetune_steps: int = 0
    val_batches: int | None = None
    storage: str | None = None
    study_name: str = DEFAULT_STUDY
    objective: ObjectiveConfig = field(default_factory=lambda: ObjectiveConfig(max_macs=0.5))
    space: str = "budget"
    tie: str = "stage"
    warm_start: bool = True
    startup_trials: int | None = None
    rescore: int = 3
    distill: float = 0.0
    final_steps: int = 100
    final_rungs: str = ""
    final_distill: float = 1.0
    final_time: float = 1.0
    workers: int = 1
    heartbeat: int = 10
    storage_retry: float = 600.0

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise IAPruneError(f"unknown search space {self.space!r}; valid: {', '.join(SPACES)}")
        if self.tie not in TIE_MODES:
            raise IAPruneError(f"unknown --tie {self.tie!r}; valid: {', '.join(TIE_MODES)}")
        if self.startup_trials is not None and self.startup_trials < 0:
            raise IAPruneError("startup_trials must be >= 0")
        if self.rescore < 0:
            raise IAPruneError("rescore must be >= 0")
        if not 0 <= self.distill <= 1:
            raise IAPruneError("distill must be in [0, 1]")
        if not 0 <= self.final_distill <= 1:
            raise IAPruneError("final_distill must be in [0, 1]")
        if self.final_steps < 0:
            raise IAPruneError("--final-steps must be >= 0")
        if self.rungs() and (self.final_steps == 0 or self.rescore == 0):
            raise IAPruneError(
                "--final-rungs continue the finalists' --final-steps recovery; "
                "set --final-steps and --rescore > 0"
            )
        if self.rungs() and self.objective.multi_objective:
            raise IAPruneError("--final-rungs: --objective pareto keeps a front, no finalists")
        if not (math.isfinite(self.final_time) and self.final_time >= 0):
            raise IAPruneError("--final-time must be a finite number >= 0")
        if self.distill > 0 and self.finetune_steps == 0:
            raise IAPruneError("--distill applies to the --trial-steps of each trial; set both")
        if self.trials < 1:
            raise IAPruneError("the search needs at least one trial")
        if not 0 < self.min_ratio <= 1:
            raise IAPruneError("min_ratio must be in (0, 1]")
        if self.min_keep < 1:
            raise IAPruneError("min_keep must be >= 1 (a layer is never pruned to zero)")
        if self.round_to is not None and self.round_to < 1:
            raise IAPruneError("round_to must be >= 1")
        if self.bn_batches < 0 or self.finetune_steps < 0:
            raise IAPruneError("--bn-batches and --trial-steps must be >= 0")
        if self.val_batches is not None and self.val_batches < 1:
            raise IAPruneError("val_batches must be >= 1")
        if self.workers < 1 or self.heartbeat < 1:
            raise IAPruneError("--workers and --heartbeat must be >= 1")
        if self.heartbeat > MAX_HEARTBEAT:
            raise IAPruneError(f"--heartbeat must be at most {MAX_HEARTBEAT} seconds (a day)")
        if not 0 <= self.storage_retry <= MAX_STORAGE_RETRY:  # NaN fails too
            raise IAPruneError(
                f"--storage-retry must be a number of seconds in 0..{MAX_STORAGE_RETRY}, "
                f"got {self.storage_retry}"
            )
        check_seed(self.seed)
        if self.storage is not None and in_memory_sqlite(self.storage):
            raise IAPruneError(
                f"--storage {masked_url(self.storage)} is an in-memory database: workers, "
                "heartbeats and --resume need one that outlives the process (e.g. "
                "sqlite:///study.db)"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return asdict(self)

    def rungs(self) -> tuple[tuple[int, int], ...]:
        """:attr:`final_rungs` as ``(steps, survivors)`` pairs (see :func:`parse_rungs`)."""
        return parse_rungs(self.final_rungs, self.final_steps)


def parse_rungs(text: str, first_steps: int) -> tuple[tuple[int, int], ...]:
    """The finalists' later rungs from ``"STEPS:SURVIVORS,..."`` (``""``: none).

    After every finalist is scored at ``first_steps`` recovery steps, each rung keeps the
    best ``SURVIVORS`` by their latest score and continues their recovery to ``STEPS`` in
    all (successive halving). Steps must grow from ``first_steps`` and survivors must not.

    Raises:
        IAPruneError: a malformed or inconsistent schedule, in one line.
    """
    rungs: list[tuple[int, int]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        left, sep, right = item.partition(":")
        if not (sep and left.strip().isdecimal() and right.strip().isdecimal()):
            raise IAPruneError(f"--final-rungs takes STEPS:SURVIVORS,..., got {item!r}")
        rungs.append((int(left), int(right)))
    last_steps, last_survivors = first_steps, None
    for steps, survivors in rungs:
        if steps <= last_steps or survivors < 2:
            raise IAPruneError(
                f"--final-rungs: every rung needs more steps than the one before "
                f"(--final-steps {first_steps} first) and at least two survivors (one has "
                f"nothing to be compared with), got {steps}:{survivors}"
            )
        if last_survivors is not None and survivors > last_survivors:
            raise IAPruneError("--final-rungs: a rung cannot keep more finalists than the last")
        last_steps, last_survivors = steps, survivors
    return tuple(rungs)


# Keys config.json must hold (newer fields may be missing from older runs' files).
_REQUIRED = ("model", "dataset", "seed", "search", "finetune", "cost")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run; saved as ``config.json``.

    ``data_workers``: background processes that load and augment training batches (0:
    the main process does it); a machine's own choice, like ``device``.
    """

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
    data_workers: int = 0
    image_size: int | None = None
    pad_to: int | None = None
    search: SearchConfig = field(default_factory=SearchConfig)
    finetune: FinetuneConfig = field(default_factory=lambda: FinetuneConfig(epochs=10))
    cost: CostConfig = field(default_factory=CostConfig)

    def __post_init__(self) -> None:
        check_finite(self, "width_mult", "baseline_lr", "val_fraction")
        if self.width_mult <= 0 or self.baseline_lr <= 0 or self.baseline_epochs < 0:
            raise IAPruneError("need --width-mult > 0, --baseline-lr > 0, --baseline-epochs >= 0")
        check_seed(self.seed)
        if isinstance(self.data_workers, bool) or not 0 <= self.data_workers <= 256:
            raise IAPruneError("--data-workers must be an integer in 0..256")
        for name in ("image_size", "pad_to"):
            value = getattr(self, name)
            if value is not None and not 1 <= value <= MAX_IMAGE_SIDE:
                raise IAPruneError(f"--{name.replace('_', '-')} must be in 1..{MAX_IMAGE_SIDE}")

    def dataset_options(self) -> dict[str, Any]:
        """Dataset-specific options given (``image_size``, ``pad_to``, ``download``)."""
        options = {"image_size": self.image_size, "pad_to": self.pad_to}
        options = {k: v for k, v in options.items() if v is not None}
        return options | ({"download": True} if self.download else {})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return asdict(self)

    def stored(self) -> dict[str, Any]:
        """:meth:`to_dict` with the storage URL's password masked: what config.json holds."""
        data = self.to_dict()
        if self.search.storage is not None:
            data["search"]["storage"] = masked_url(self.search.storage)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "config.json") -> RunConfig:
        """Inverse of :meth:`to_dict`; a missing key or a wrong type is a one-line error."""
        try:
            data = current(data, where=where)
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
