"""The dataset registry, the :class:`DataBundle` every dataset factory returns, and loaders."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from iaprune._registry import Registry
from iaprune.data.file_index import FileIndex
from iaprune.data.split import check_fraction
from iaprune.errors import IAPruneError

__all__ = [
    "DATASETS",
    "DataBundle",
    "DatasetFactory",
    "create_dataset",
    "list_datasets",
    "make_loaders",
    "register_dataset",
]


@dataclass(frozen=True)
class DataBundle:
    """All splits of one dataset plus the metadata a model needs.

    Every item of every split is ``(image, label)``: a normalised float32
    tensor of shape ``(in_channels, *input_size)`` and an int64 scalar tensor.

    Attributes:
        name: the registered dataset name.
        train: training split minus the validation part, with augmentation
            (if requested).
        val: validation part carved from the official training split with the
            run seed; never augmented. The search scores candidates on it.
        test: the official test split (or a fixed held-out part for datasets
            without one); never augmented and never used by the search.
        num_classes: number of classes (labels are ``0 .. num_classes - 1``).
        in_channels: image channels (1 grey-scale, 3 RGB).
        input_size: ``(H, W)`` as fed to the model.
        train_eval: same samples as ``train`` but without augmentation, for
            BN recalibration and importance estimation.
        file_index: for datasets that list folders, the listing, to cache in the run
            directory (:mod:`iaprune.data.file_index`); None for the others.
    """

    name: str
    train: Dataset[Any]
    val: Dataset[Any]
    test: Dataset[Any]
    num_classes: int
    in_channels: int
    input_size: tuple[int, int]
    train_eval: Dataset[Any]
    file_index: FileIndex | None = None

    def check_files(self) -> None:
        """Check that every split's files can be read, before any work uses them.

        Splits read lazily from files (image folders) have a ``check_files`` method; a
        bad file of any split (the test split included, which only the report reads) is
        a one-line :class:`IAPruneError` now rather than hours later. ``train_eval``
        holds ``train``'s samples and is not checked twice.
        """
        for split in (self.train, self.val, self.test):
            check = getattr(split, "check_files", None)
            if callable(check):
                check()


# A dataset factory: ``factory(root, *, val_fraction, seed, augment, **options) -> DataBundle``
# where ``options`` are the dataset's own keywords (``pad_to``, ``image_size``, ...). A
# Protocol with ``**kw`` would force every factory to accept any keyword, so the alias is
# loose; the dataset contract suite (iaprune.testing.datasets) checks the real signature.
DatasetFactory = Callable[..., DataBundle]


DATASETS: Registry[DatasetFactory] = Registry("dataset")
"""Datasets by name (``--dataset``); add one with :func:`register_dataset`."""


def register_dataset(name: str) -> Callable[[DatasetFactory], DatasetFactory]:
    """Decorator registering a dataset factory under ``name``.

    The factory is called as ``factory(root, val_fraction=..., seed=...,
    augment=..., **options)`` where ``root`` is a :class:`~pathlib.Path` or
    None (meaning: look in the usual places) and must return a
    :class:`DataBundle`. Options it does not declare are rejected by
    :func:`create_dataset` with an :class:`IAPruneError`.
    """
    return DATASETS.register(name)


def _load_builtins() -> None:
    # Importing the package registers every built-in dataset.
    importlib.import_module("iaprune.data")


def _check_options(name: str, factory: DatasetFactory, kw: dict[str, Any]) -> None:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without signature
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    fixed = {"root", "val_fraction", "seed", "augment", "index_file"}
    allowed = sorted(
        p for p, v in params.items() if v.kind is inspect.Parameter.KEYWORD_ONLY and p not in fixed
    )
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        valid = ", ".join(allowed) or "none"
        raise IAPruneError(
            f"dataset {name!r} got unknown option(s) {', '.join(unknown)}; valid: {valid}"
        )


def create_dataset(
    name: str,
    *,
    root: str | Path | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    augment: bool = True,
    index_file: str | Path | None = None,
    **kw: Any,
) -> DataBundle:
    """Create the dataset registered as ``name``.

    Args:
        name: a registered dataset name (see :func:`list_datasets`).
        root: directory holding the data; None searches the usual places
            (``$IAPRUNE_DATA/<name>``, ``~/.cache/iaprune/<name>``,
            ``./data/<name>`` and, for fashion-mnist, Debian's
            ``/usr/share/datasets/fashion-mnist``).
        val_fraction: fraction of the official training split held out
            (seeded, stratified) as the validation split, in (0, 1).
        seed: seed of the train/validation split.
        augment: apply training augmentation to ``train``.
        index_file: a cached file listing (``RUN_DIR/data_index.json.gz``) for datasets
            that list folders (``imagefolder``): reused while current; ignored by the others.
        **kw: dataset-specific options (e.g. ``pad_to`` for the digit sets,
            ``image_size`` for ``imagefolder``).

    Raises:
        IAPruneError: for an unknown name (the message lists the valid ones),
            an invalid option, missing/corrupt data, or fewer than 2 classes.
    """
    _load_builtins()
    factory = DATASETS.get(name)
    fraction = check_fraction(val_fraction)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise IAPruneError(f"seed must be an integer >= 0, got {seed!r}")
    _check_options(name, factory, kw)
    path = Path(root).expanduser() if root is not None else None
    if index_file is not None and "index_file" in inspect.signature(factory).parameters:
        kw["index_file"] = Path(index_file)
    bundle = factory(path, val_fraction=fraction, seed=seed, augment=bool(augment), **kw)
    if bundle.num_classes < 2:  # every prediction would be right: a meaningless top-1
        raise IAPruneError(
            f"dataset {name!r} has {bundle.num_classes} class(es); a classifier needs at least 2"
        )
    return bundle


def list_datasets() -> list[str]:
    """Sorted names of all registered datasets."""
    _load_builtins()
    return DATASETS.names()


def make_loaders(
    bundle: DataBundle,
    batch_size: int,
    *,
    seed: int = 0,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> dict[str, DataLoader[Any]]:
    """Data loaders for every split of ``bundle``.

    Returns a dict with keys ``train`` (shuffled by a generator seeded with
    ``seed``, which also seeds worker augmentation; ``drop_last=False``),
    ``val``, ``test`` and ``train_eval`` (all in order, unshuffled).
    ``num_workers`` processes decode and augment batches in the background (the
    augmentation's random numbers then come from per-worker seeds, so a run with workers
    differs from one without); ``pin_memory`` (for CUDA) copies batches to page-locked
    memory.

    Raises:
        IAPruneError: if ``batch_size`` < 1 or ``num_workers`` < 0.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise IAPruneError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise IAPruneError(f"num_workers must be an integer >= 0, got {num_workers!r}")
    common: dict[str, Any] = {
        "batch_size": batch_size,
        "num_workers": num_workers,
        "persistent_workers": num_workers > 0,
        "pin_memory": pin_memory,
    }
    gen = torch.Generator()
    gen.manual_seed(seed)
    return {
        "train": DataLoader(bundle.train, shuffle=True, generator=gen, drop_last=False, **common),
        "val": DataLoader(bundle.val, shuffle=False, **common),
        "test": DataLoader(bundle.test, shuffle=False, **common),
        "train_eval": DataLoader(bundle.train_eval, shuffle=False, **common),
    }
