"""MNIST and Fashion-MNIST from IDX files (raw or gzip-compressed).

Expected files (each optionally ``.gz``, dots instead of the last dash are
accepted too)::

    train-images-idx3-ubyte  train-labels-idx1-ubyte
    t10k-images-idx3-ubyte   t10k-labels-idx1-ubyte

Debian's ``dataset-fashion-mnist`` package installs them, gzip-compressed, in
``/usr/share/datasets/fashion-mnist``. Its ``.gz`` files are recompressed, so
their md5 sums differ from the official ones: checksums are only verified for
files this module downloads.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from iaprune.data._paths import cache_dir, default_roots, dpkg_dirs
from iaprune.data._registry import DataBundle, register_dataset
from iaprune.data.memory import build_memory_bundle, pad_images
from iaprune.data.transforms import crop_padding_for
from iaprune.errors import IAPruneError

__all__ = ["IDX_FILES", "download_and_verify", "find_idx_dir", "md5_file", "read_idx"]

#: Base names of the four IDX files, in the order train images/labels, test images/labels.
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

_IDX_DTYPES: dict[int, str] = {
    0x08: "u1",
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


@dataclass(frozen=True)
class _IdxSpec:
    name: str
    base_url: str
    md5: tuple[str, str, str, str]  # of the official .gz files, in IDX_FILES order
    mean: float
    std: float
    flip: bool
    subdirs: tuple[str, ...]
    root_names: tuple[str, ...]
    debian_package: str | None

    @property
    def hint(self) -> str:
        if self.debian_package:
            return (
                f"install it with `apt-get install {self.debian_package}` or pass --download "
                "(download=True in Python)"
            )
        return "pass --download (download=True in Python) to fetch it"


MNIST = _IdxSpec(
    name="mnist",
    base_url="https://ossci-datasets.s3.amazonaws.com/mnist/",
    md5=(
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "d53e105ee54ea40749a09fcbcd1e9432",
        "9fb629c4189551a2d022fa330f9573f3",
        "ec29112dd5afa0611ce80d1b7f02629c",
    ),
    mean=0.1307,
    std=0.3081,
    flip=False,  # a mirrored digit is a different (or no) digit
    subdirs=("", "raw", "MNIST/raw", "mnist"),
    root_names=("mnist", "MNIST"),
    debian_package=None,
)

FASHION_MNIST = _IdxSpec(
    name="fashion-mnist",
    base_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    md5=(
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "25c81989df183df01b3e8a0aad5dffbe",
        "bef4ecab320f06d8554ea6380940ec79",
        "bb300cfdad3c16e7a12a480ee83fd310",
    ),
    mean=0.2860,
    std=0.3530,
    flip=True,
    subdirs=("", "raw", "FashionMNIST/raw", "fashion-mnist"),
    root_names=("fashion-mnist", "fashion_mnist", "FashionMNIST"),
    debian_package="dataset-fashion-mnist",
)


def _read_bytes(path: Path) -> bytes:
    with path.open("rb") as f:
        head = f.read(2)
    if head == b"\x1f\x8b":
        with gzip.open(path, "rb") as g:
            return g.read()
    return path.read_bytes()


def read_idx(path: str | Path, expect_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a native-endian numpy array.

    Args:
        path: the file.
        expect_magic: if given, the 4-byte magic number the file must have
            (``0x00000803`` for ``uint8`` image stacks, ``0x00000801`` for labels).

    Raises:
        IAPruneError: if the file cannot be read, is not IDX, has an unexpected
            magic number, or its size does not match its header (truncation).
    """
    p = Path(path)
    try:
        raw = _read_bytes(p)
    except (OSError, EOFError, zlib.error) as exc:
        raise IAPruneError(f"cannot read IDX file {p}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise IAPruneError(f"{p} is not an IDX file (bad magic number)")
    magic = int.from_bytes(raw[:4], "big")
    if expect_magic is not None and magic != expect_magic:
        raise IAPruneError(f"{p}: IDX magic number 0x{magic:08x}, expected 0x{expect_magic:08x}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IAPruneError(f"{p}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    count = int(np.prod(dims, dtype=np.int64)) if dims else 1
    expected = header + count * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "corrupt (trailing data)"
        raise IAPruneError(
            f"{p}: {what} IDX file, header {dims} needs {expected} bytes but it has {len(raw)}"
        )
    arr = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def _candidates(directory: Path, base: str) -> list[Path]:
    # Some mirrors name the files "train-images.idx3-ubyte" (dot before "idx").
    names = (base, base.replace("-idx", ".idx"))
    return [directory / (n + ext) for n in names for ext in (".gz", "")]


def _find_file(directory: Path, base: str) -> Path | None:
    for c in _candidates(directory, base):
        if c.is_file():
            return c
    return None


def find_idx_dir(root: Path, subdirs: tuple[str, ...] = ("", "raw")) -> Path | None:
    """The first of ``root/<subdir>`` holding all four IDX files, or None."""
    for sub in subdirs:
        d = root / sub if sub else root
        if d.is_dir() and all(_find_file(d, b) is not None for b in IDX_FILES):
            return d
    return None


def md5_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex md5 digest of a file."""
    h = hashlib.md5()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def download_and_verify(url: str, dest: str | Path, md5: str, *, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` and check its md5; the file only appears if it matches.

    Raises:
        IAPruneError: if the download fails or the checksum does not match
            (the partial file is removed).
    """
    target = Path(dest)
    part = target.with_name(target.name + ".part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=timeout) as resp, part.open("wb") as out:
            shutil.copyfileobj(resp, out)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        part.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise IAPruneError(f"download of {url} failed: {reason}") from None
    got = md5_file(part)
    if got != md5:
        part.unlink(missing_ok=True)
        raise IAPruneError(f"checksum mismatch for {url}: md5 {got}, expected {md5}")
    part.replace(target)
    return target


def _download(spec: _IdxSpec, directory: Path) -> None:
    for base, md5 in zip(IDX_FILES, spec.md5, strict=True):
        if _find_file(directory, base) is None:
            download_and_verify(spec.base_url + base + ".gz", directory / (base + ".gz"), md5)


def _resolve(spec: _IdxSpec, root: Path | None, download: bool) -> Path:
    files = ", ".join(f"{b}[.gz]" for b in IDX_FILES)
    if root is not None:
        if not root.exists() and not download:
            raise IAPruneError(f"{spec.name}: directory {root} does not exist; {spec.hint}")
        found = find_idx_dir(root, spec.subdirs) if root.exists() else None
        if found is not None:
            return found
        if download:
            _download(spec, root)
            return root
        raise IAPruneError(f"{spec.name}: {root} does not contain {files}; {spec.hint}")
    looked = default_roots(*spec.root_names)
    for cand in looked:
        found = find_idx_dir(cand, spec.subdirs)
        if found is not None:
            return found
    if spec.debian_package:
        for cand in dpkg_dirs(spec.debian_package, IDX_FILES[0] + ".gz"):
            found = find_idx_dir(cand, spec.subdirs)
            if found is not None:
                return found
    if download:
        target = cache_dir(spec.name)
        _download(spec, target)
        return target
    where = ", ".join(str(p) for p in looked)
    raise IAPruneError(f"{spec.name} not found (looked in {where}); pass root=DIR, or {spec.hint}")


def load_idx_split(directory: Path, images: str, labels: str) -> tuple[np.ndarray, np.ndarray]:
    """Read and cross-check one image/label IDX pair from ``directory``."""
    ip, lp = _find_file(directory, images), _find_file(directory, labels)
    if ip is None or lp is None:
        missing = images if ip is None else labels
        raise IAPruneError(f"{directory} does not contain {missing}[.gz]")
    x = read_idx(ip, IMAGES_MAGIC)
    y = read_idx(lp, LABELS_MAGIC)
    if len(x) != len(y):
        raise IAPruneError(f"{ip} has {len(x)} images but {lp} has {len(y)} labels")
    return x, y


def _load(
    spec: _IdxSpec,
    root: Path | None,
    *,
    val_fraction: float,
    seed: int,
    augment: bool,
    pad_to: int | None,
    download: bool,
) -> DataBundle:
    directory = _resolve(spec, root, bool(download))
    xtr, ytr = load_idx_split(directory, IDX_FILES[0], IDX_FILES[1])
    xte, yte = load_idx_split(directory, IDX_FILES[2], IDX_FILES[3])
    if xtr.shape[1:] != xte.shape[1:]:
        raise IAPruneError(
            f"{spec.name}: train images are {xtr.shape[1:]} but test images {xte.shape[1:]}"
        )
    for y, what in ((ytr, "train"), (yte, "test")):
        if len(y) and (int(y.min()) < 0 or int(y.max()) > 9):
            raise IAPruneError(f"{spec.name}: {what} labels outside 0..9 in {directory}")
    native = int(min(xtr.shape[1:]))
    train_images = pad_images(torch.from_numpy(xtr).unsqueeze(1), pad_to, spec.name)
    test_images = pad_images(torch.from_numpy(xte).unsqueeze(1), pad_to, spec.name)
    return build_memory_bundle(
        spec.name,
        train_images=train_images,
        train_labels=torch.from_numpy(ytr.astype(np.int64)),
        test_images=test_images,
        test_labels=torch.from_numpy(yte.astype(np.int64)),
        num_classes=10,
        val_fraction=val_fraction,
        seed=seed,
        augment=augment,
        mean=(spec.mean,),
        std=(spec.std,),
        flip=spec.flip,
        crop_padding=crop_padding_for(native),
    )


@register_dataset("mnist")
def mnist(
    root: Path | None,
    *,
    val_fraction: float,
    seed: int,
    augment: bool,
    pad_to: int | None = 32,
    download: bool = False,
) -> DataBundle:
    """MNIST handwritten digits (60k train / 10k test, 1x28x28, 10 classes).

    Options:
        pad_to: zero-pad the 28x28 images to this size (default 32, so
            CIFAR-style networks apply); None keeps 28x28.
        download: fetch missing files from the official mirror into ``root``
            (default ``~/.cache/iaprune/mnist``) and verify their md5.

    Augmentation is a random crop with 4-pixel zero padding; no flips.
    """
    return _load(
        MNIST,
        root,
        val_fraction=val_fraction,
        seed=seed,
        augment=augment,
        pad_to=pad_to,
        download=download,
    )


@register_dataset("fashion-mnist")
def fashion_mnist(
    root: Path | None,
    *,
    val_fraction: float,
    seed: int,
    augment: bool,
    pad_to: int | None = 32,
    download: bool = False,
) -> DataBundle:
    """Fashion-MNIST (60k train / 10k test, 1x28x28, 10 classes).

    With ``root=None`` Debian's ``dataset-fashion-mnist`` package location
    (``/usr/share/datasets/fashion-mnist``) is among the places searched.

    Options:
        pad_to: zero-pad the 28x28 images to this size (default 32); None keeps 28x28.
        download: fetch missing files from the official mirror into ``root``
            (default ``~/.cache/iaprune/fashion-mnist``) and verify their md5.

    Augmentation is a random crop with 4-pixel zero padding plus horizontal flips.
    """
    return _load(
        FASHION_MNIST,
        root,
        val_fraction=val_fraction,
        seed=seed,
        augment=augment,
        pad_to=pad_to,
        download=download,
    )
