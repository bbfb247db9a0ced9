"""MNIST / Fashion-MNIST IDX readers, downloads (offline, via file:// URLs) and Debian's package."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from iaprune.data import create_dataset, idx
from iaprune.data.idx import IDX_FILES, download_and_verify, md5_file, read_idx
from iaprune.errors import IAPruneError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


def idx_bytes(arr: np.ndarray) -> bytes:
    """Encode a uint8 array in the IDX format (magic 0x0000080N, big-endian dims)."""
    head = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def write_idx(path: Path, arr: np.ndarray, gz: bool) -> Path:
    data = idx_bytes(arr)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def make_idx_dir(
    root: Path, gz: bool, n_train: int = 60, n_test: int = 20, seed: int = 0
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {
        IDX_FILES[0]: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        IDX_FILES[1]: (np.arange(n_train) % 10).astype(np.uint8),
        IDX_FILES[2]: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        IDX_FILES[3]: (np.arange(n_test) % 10).astype(np.uint8),
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        write_idx(root / name, arr, gz)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path: Path, gz: bool) -> None:
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    p = write_idx(tmp_path / "x-idx3-ubyte", arr, gz)
    out = read_idx(p, idx.IMAGES_MAGIC)
    assert out.dtype == np.uint8 and np.array_equal(out, arr)
    with pytest.raises(IAPruneError, match="magic"):
        read_idx(p, idx.LABELS_MAGIC)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_bundle(tmp_path: Path, gz: bool, name: str) -> None:
    arrays = make_idx_dir(tmp_path, gz)
    b = create_dataset(name, root=tmp_path, val_fraction=0.2)
    assert (b.num_classes, b.in_channels, b.input_size) == (10, 1, (32, 32))
    assert (len(b.train), len(b.val), len(b.test)) == (48, 12, 20)
    x, y = b.test[0]
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    spec = idx.MNIST if name == "mnist" else idx.FASHION_MNIST
    expected = (torch.from_numpy(arrays[IDX_FILES[2]][0]).float() / 255 - spec.mean) / spec.std
    assert torch.allclose(x[0, 2:30, 2:30], expected, atol=1e-5)
    assert torch.allclose(x[0, 0], torch.full((32,), -spec.mean / spec.std))
    assert int(y) == int(arrays[IDX_FILES[3]][0])
    assert b.train[0][0].shape == (1, 32, 32)
    # stratified validation split: 60 balanced samples, 12 held out -> 1 or 2 per class
    counts = np.bincount(b.val.targets, minlength=10)
    assert counts.sum() == 12 and counts.min() >= 1


def test_idx_pad_to_none_keeps_28(tmp_path: Path) -> None:
    make_idx_dir(tmp_path, gz=True)
    b = create_dataset("fashion-mnist", root=tmp_path, pad_to=None)
    assert b.input_size == (28, 28)
    assert b.train[0][0].shape == (1, 28, 28)
    with pytest.raises(IAPruneError, match="pad_to"):
        create_dataset("fashion-mnist", root=tmp_path, pad_to=20)


def test_idx_torchvision_raw_layout(tmp_path: Path) -> None:
    make_idx_dir(tmp_path / "FashionMNIST" / "raw", gz=False)
    assert len(create_dataset("fashion-mnist", root=tmp_path).test) == 20


@pytest.mark.parametrize("gz", [False, True])
def test_idx_truncated_file(tmp_path: Path, gz: bool) -> None:
    make_idx_dir(tmp_path, gz=False)
    p = tmp_path / IDX_FILES[0]
    data = p.read_bytes()[:-100]
    if gz:
        p.unlink()
        full = gzip.compress(data)
        (tmp_path / (IDX_FILES[0] + ".gz")).write_bytes(full)
    else:
        p.write_bytes(data)
    with pytest.raises(IAPruneError, match="truncated"):
        create_dataset("mnist", root=tmp_path)


def test_idx_truncated_gzip_stream(tmp_path: Path) -> None:
    make_idx_dir(tmp_path, gz=True)
    p = tmp_path / (IDX_FILES[2] + ".gz")
    p.write_bytes(p.read_bytes()[:-40])
    with pytest.raises(IAPruneError, match=IDX_FILES[2]):
        create_dataset("mnist", root=tmp_path)


def test_idx_corrupt_and_inconsistent(tmp_path: Path) -> None:
    make_idx_dir(tmp_path, gz=False)
    (tmp_path / IDX_FILES[1]).write_bytes(b"not an idx file at all")
    with pytest.raises(IAPruneError, match="not an IDX file"):
        create_dataset("mnist", root=tmp_path)
    write_idx(tmp_path / IDX_FILES[1], np.zeros(59, np.uint8), gz=False)
    with pytest.raises(IAPruneError, match="60 images but .* 59 labels"):
        create_dataset("mnist", root=tmp_path)
    write_idx(tmp_path / IDX_FILES[1], np.full(60, 12, np.uint8), gz=False)
    with pytest.raises(IAPruneError, match="labels outside"):
        create_dataset("mnist", root=tmp_path)


def test_idx_missing_dir_and_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(IAPruneError) as info:
        create_dataset("fashion-mnist", root=missing)
    msg = str(info.value)
    assert str(missing) in msg and "apt-get install dataset-fashion-mnist" in msg
    assert "\n" not in msg
    with pytest.raises(IAPruneError, match="does not contain"):
        create_dataset("mnist", root=tmp_path)


def test_md5_and_download_via_file_url(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"hello idx")
    good = hashlib.md5(b"hello idx").hexdigest()
    assert md5_file(src) == good
    dest = tmp_path / "out" / "copy.bin"
    assert download_and_verify(src.as_uri(), dest, good) == dest
    assert dest.read_bytes() == b"hello idx"
    bad = tmp_path / "bad.bin"
    with pytest.raises(IAPruneError, match="checksum mismatch"):
        download_and_verify(src.as_uri(), bad, "0" * 32)
    assert not bad.exists() and not list(tmp_path.glob("bad.bin*"))
    with pytest.raises(IAPruneError, match="download of .* failed"):
        download_and_verify((tmp_path / "absent.bin").as_uri(), tmp_path / "x.bin", good)


def test_download_option_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = tmp_path / "mirror"
    make_idx_dir(mirror, gz=True)
    md5s = tuple(md5_file(mirror / (f + ".gz")) for f in IDX_FILES)
    spec = dataclasses.replace(idx.MNIST, base_url=mirror.as_uri() + "/", md5=md5s)
    monkeypatch.setattr(idx, "MNIST", spec)
    root = tmp_path / "dl"
    b = create_dataset("mnist", root=root, download=True)
    assert len(b.test) == 20
    assert sorted(p.name for p in root.iterdir()) == sorted(f + ".gz" for f in IDX_FILES)
    # wrong checksum -> error, nothing left behind
    monkeypatch.setattr(idx, "MNIST", dataclasses.replace(spec, md5=("0" * 32,) * 4))
    with pytest.raises(IAPruneError, match="checksum mismatch"):
        create_dataset("mnist", root=tmp_path / "dl2", download=True)
    assert list((tmp_path / "dl2").iterdir()) == []
    # unreachable mirror -> error
    monkeypatch.setattr(idx, "MNIST", dataclasses.replace(spec, base_url="file:///nonexistent/"))
    with pytest.raises(IAPruneError, match="download of"):
        create_dataset("mnist", root=tmp_path / "dl3", download=True)


@pytest.mark.skipif(
    not (DEBIAN_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian package dataset-fashion-mnist not installed",
)
def test_debian_fashion_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # isolate from copies in the user's cache / cwd so the Debian location is what is found
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("IAPRUNE_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    b = create_dataset("fashion-mnist")
    elapsed = time.perf_counter() - start
    assert elapsed < 10
    assert (len(b.train), len(b.val), len(b.test)) == (54000, 6000, 10000)
    assert (b.num_classes, b.in_channels, b.input_size) == (10, 1, (32, 32))
    assert np.bincount(b.val.targets).tolist() == [600] * 10
    x, y = b.test[0]
    assert x.shape == (1, 32, 32) and int(y) == 9  # the first test image is an ankle boot
    assert idx.dpkg_dirs("dataset-fashion-mnist", IDX_FILES[0] + ".gz") in ([], [DEBIAN_DIR])
