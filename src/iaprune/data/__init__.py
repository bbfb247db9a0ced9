"""Datasets: every dataset is created by name and returned as a :class:`DataBundle`.

Built-in datasets: ``digits`` (scikit-learn, no download), ``mnist``,
``fashion-mnist`` (IDX files; Debian's ``dataset-fashion-mnist`` package is
found automatically), ``cifar10``, ``cifar100`` (python pickle batches),
``imagefolder`` (ImageNet-style folders) and ``synthetic``.
"""

from __future__ import annotations

# Importing the modules registers the built-in datasets.
from iaprune.data import cifar, digits, file_index, idx, imagefolder, synthetic  # noqa: F401
from iaprune.data._registry import (
    DataBundle,
    create_dataset,
    list_datasets,
    make_loaders,
    register_dataset,
)

__all__ = ["DataBundle", "create_dataset", "list_datasets", "make_loaders", "register_dataset"]
