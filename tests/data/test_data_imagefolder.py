"""ImageNet-style folders with tiny generated PNG/JPEG files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from iaprune.data import create_dataset, make_loaders
from iaprune.errors import IAPruneError


def make_folder(root: Path) -> None:
    rng = np.random.default_rng(0)
    sizes = [(20, 30), (40, 24), (25, 25), (33, 50)]
    for split, n in (("train", 4), ("val", 2)):
        for ci, cls in enumerate(["dog", "cat", "bird"]):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                w, h = sizes[i % len(sizes)]
                arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                arr[..., 0] = 80 * ci  # class-dependent red channel
                if i % 2 == 0:
                    Image.fromarray(arr).save(d / f"{i}.png")
                elif cls == "bird":
                    Image.fromarray(arr[..., 1]).save(d / f"{i}.JPG")  # greyscale JPEG
                else:
                    Image.fromarray(arr).save(d / f"{i}.jpeg", quality=90)
    (root / "train" / "dog" / "notes.txt").write_text("not an image")


def test_imagefolder_bundle(tmp_path: Path) -> None:
    make_folder(tmp_path)
    b = create_dataset("imagefolder", root=tmp_path, val_fraction=0.25, image_size=16)
    assert (b.num_classes, b.in_channels, b.input_size) == (3, 3, (16, 16))
    assert (len(b.train), len(b.val), len(b.test)) == (9, 3, 6)
    assert len(b.train_eval) == 9
    assert sorted(b.val.targets.tolist()) == [0, 1, 2]  # classes sorted: bird, cat, dog
    assert b.train.samples[0][0].parent.name == "bird"
    for ds in (b.train, b.val, b.test, b.train_eval):
        for i in range(len(ds)):
            x, y = ds[i]
            assert x.shape == (3, 16, 16) and x.dtype == torch.float32
            assert y.dtype == torch.int64
    assert torch.equal(b.test[1][0], b.test[1][0])
    torch.manual_seed(3)
    a = [b.train[0][0] for _ in range(8)]
    torch.manual_seed(3)
    assert all(torch.equal(u, b.train[0][0]) for u in a)
    assert any(not torch.equal(a[0], u) for u in a[1:])
    x, y = next(iter(make_loaders(b, 4)["test"]))
    assert x.shape == (4, 3, 16, 16) and y.tolist() == [0, 0, 1, 1]


def test_imagefolder_default_resize(tmp_path: Path) -> None:
    make_folder(tmp_path)
    b = create_dataset("imagefolder", root=tmp_path, augment=False)
    assert b.input_size == (224, 224)
    assert b.train[0][0].shape == (3, 224, 224)
    assert b.train.transform.resize == 256


def test_imagefolder_errors(tmp_path: Path) -> None:
    with pytest.raises(IAPruneError, match="needs root"):
        create_dataset("imagefolder")
    with pytest.raises(IAPruneError, match="does not exist"):
        create_dataset("imagefolder", root=tmp_path / "absent")
    with pytest.raises(IAPruneError, match="no train/"):
        create_dataset("imagefolder", root=tmp_path)
    (tmp_path / "train" / "a").mkdir(parents=True)
    (tmp_path / "val" / "a").mkdir(parents=True)
    with pytest.raises(IAPruneError, match="no images"):
        create_dataset("imagefolder", root=tmp_path)


def test_imagefolder_bad_options_and_classes(tmp_path: Path) -> None:
    make_folder(tmp_path)
    with pytest.raises(IAPruneError, match="resize"):
        create_dataset("imagefolder", root=tmp_path, image_size=32, resize=16)
    (tmp_path / "val" / "zebra").mkdir()
    with pytest.raises(IAPruneError, match="zebra"):
        create_dataset("imagefolder", root=tmp_path)


def test_imagefolder_corrupt_image(tmp_path: Path) -> None:
    make_folder(tmp_path)
    (tmp_path / "val" / "cat" / "0.png").write_bytes(b"garbage")
    b = create_dataset("imagefolder", root=tmp_path, image_size=8)
    with pytest.raises(IAPruneError, match="cannot decode .*0.png"):
        [b.test[i] for i in range(len(b.test))]


def test_imagefolder_with_one_class_is_refused(tmp_path: Path) -> None:
    make_folder(tmp_path)
    for split in ("train", "val"):
        for cls in ("cat", "bird"):
            shutil.rmtree(tmp_path / split / cls)
    with pytest.raises(IAPruneError, match="1 class"):
        create_dataset("imagefolder", root=tmp_path, val_fraction=0.5, image_size=16)


def test_imagefolder_class_without_training_images_is_refused(tmp_path: Path) -> None:
    make_folder(tmp_path)
    for image in (tmp_path / "train" / "cat").iterdir():
        image.unlink()
    (tmp_path / "train" / "cat" / "readme.txt").write_text("no images here")
    with pytest.raises(IAPruneError, match="'cat'.*no images"):
        create_dataset("imagefolder", root=tmp_path, image_size=16)
