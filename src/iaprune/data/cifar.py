"""CIFAR-10 and CIFAR-100 from the standard "python version" pickle batches.

``root`` may be the extracted folder (``cifar-10-batches-py`` /
``cifar-100-python``) or its parent. The pickles are read with a restricted
unpickler that only admits the numpy objects these files contain, so a
malicious file cannot run code.
"""

from __future__ import annotations

import codecs
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iaprune.data._paths import default_roots
from iaprune.data._registry import DataBundle, register_dataset
from iaprune.data.memory import build_memory_bundle
from iaprune.errors import IAPruneError

__all__ = ["load_cifar_batch"]

_ALLOWED = {
    ("_codecs", "encode"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"forbidden global {module}.{name}")
        if module == "_codecs":
            return codecs.encode
        if module.startswith("numpy.") and module.endswith(".multiarray"):
            # numpy >= 2 moved numpy.core to numpy._core; avoid its deprecation shim.
            for mod in ("numpy._core.multiarray", "numpy.core.multiarray"):
                try:
                    return super().find_class(mod, name)
                except (ImportError, AttributeError):
                    continue
        return super().find_class(module, name)


@dataclass(frozen=True)
class _CifarSpec:
    name: str
    folder: str
    archive: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: str
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


CIFAR10 = _CifarSpec(
    name="cifar10",
    folder="cifar-10-batches-py",
    archive="cifar-10-python.tar.gz",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    label_key="labels",
    num_classes=10,
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
)

CIFAR100 = _CifarSpec(
    name="cifar100",
    folder="cifar-100-python",
    archive="cifar-100-python.tar.gz",
    train_files=("train",),
    test_files=("test",),
    label_key="fine_labels",
    num_classes=100,
    mean=(0.5071, 0.4865, 0.4409),
    std=(0.2673, 0.2564, 0.2762),
)


def _get(d: dict[Any, Any], key: str) -> Any:
    if key.encode() in d:
        return d[key.encode()]
    return d[key]


def load_cifar_batch(
    path: str | Path, label_key: str = "labels", num_classes: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR pickle batch into ``(N, 3, 32, 32) uint8`` images and ``(N,) int64`` labels.

    Raises:
        IAPruneError: if the file is missing, not a CIFAR batch, or inconsistent.
    """
    p = Path(path)
    try:
        with p.open("rb") as f:
            d = _SafeUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise IAPruneError(f"missing CIFAR batch file {p}") from None
    except Exception as exc:  # pickle raises many types on corrupt input
        raise IAPruneError(f"corrupt CIFAR batch file {p}: {type(exc).__name__}: {exc}") from None
    try:
        if not isinstance(d, dict):
            raise TypeError(f"expected a dict, got {type(d).__name__}")
        data = np.asarray(_get(d, "data"))
        labels = np.asarray(_get(d, label_key))
    except (KeyError, TypeError, ValueError) as exc:
        raise IAPruneError(f"corrupt CIFAR batch file {p}: missing or bad {exc}") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise IAPruneError(
            f"corrupt CIFAR batch file {p}: data is {data.dtype} {data.shape}, "
            "expected uint8 (N, 3072)"
        )
    if labels.ndim != 1 or len(labels) != len(data) or not np.issubdtype(labels.dtype, np.integer):
        raise IAPruneError(
            f"corrupt CIFAR batch file {p}: {len(labels)} labels for {len(data)} images"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise IAPruneError(f"corrupt CIFAR batch file {p}: labels outside 0..{num_classes - 1}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _resolve(spec: _CifarSpec, root: Path | None) -> Path:
    def check(base: Path) -> Path | None:
        for d in (base / spec.folder, base):
            if d.is_dir() and all((d / f).is_file() for f in spec.train_files + spec.test_files):
                return d
        return None

    if root is not None:
        if not root.exists():
            raise IAPruneError(f"{spec.name}: directory {root} does not exist")
        found = check(root)
        if found is not None:
            return found
        hint = ""
        if (root / spec.archive).is_file() or (root.parent / spec.archive).is_file():
            hint = f" (extract {spec.archive} first)"
        files = ", ".join(spec.train_files + spec.test_files)
        raise IAPruneError(
            f"{spec.name}: neither {root} nor {root / spec.folder} contains {files}{hint}"
        )
    looked = default_roots(spec.name, spec.folder)
    for cand in looked:
        found = check(cand)
        if found is not None:
            return found
    where = ", ".join(str(p) for p in looked)
    raise IAPruneError(
        f"{spec.name} not found (looked in {where}); pass root=DIR containing {spec.folder}"
    )


def _load(
    spec: _CifarSpec, root: Path | None, *, val_fraction: float, seed: int, augment: bool
) -> DataBundle:
    directory = _resolve(spec, root)

    def read(files: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [load_cifar_batch(directory / f, spec.label_key, spec.num_classes) for f in files]
        x = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        return torch.from_numpy(x), torch.from_numpy(y)

    xtr, ytr = read(spec.train_files)
    xte, yte = read(spec.test_files)
    return build_memory_bundle(
        spec.name,
        train_images=xtr,
        train_labels=ytr,
        test_images=xte,
        test_labels=yte,
        num_classes=spec.num_classes,
        val_fraction=val_fraction,
        seed=seed,
        augment=augment,
        mean=spec.mean,
        std=spec.std,
        flip=True,
        crop_padding=4,
    )


@register_dataset("cifar10")
def cifar10(root: Path | None, *, val_fraction: float, seed: int, augment: bool) -> DataBundle:
    """CIFAR-10 (50k train / 10k test, 3x32x32, 10 classes).

    Augmentation: random crop with 4-pixel zero padding and horizontal flips.
    """
    return _load(CIFAR10, root, val_fraction=val_fraction, seed=seed, augment=augment)


@register_dataset("cifar100")
def cifar100(root: Path | None, *, val_fraction: float, seed: int, augment: bool) -> DataBundle:
    """CIFAR-100 with fine labels (50k train / 10k test, 3x32x32, 100 classes).

    Augmentation: random crop with 4-pixel zero padding and horizontal flips.
    """
    return _load(CIFAR100, root, val_fraction=val_fraction, seed=seed, augment=augment)
