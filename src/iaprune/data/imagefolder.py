"""ImageNet-style image folders decoded lazily with Pillow.

Layout::

    root/train/<class>/*.jpg|png|...   training split (our validation part is carved from it)
    root/val/<class>/*                 used as the TEST split (``root/test`` also accepted)

Classes are the sorted sub-directory names of ``root/train``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from iaprune.data._registry import DataBundle, register_dataset
from iaprune.data.file_index import FileIndex, scan_folder
from iaprune.data.split import split_indices
from iaprune.data.transforms import Normalize
from iaprune.errors import IAPruneError, one_line

__all__ = ["IMAGE_EXTENSIONS", "ImageFolderDataset", "PilTransform", "scan_image_folder"]

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp", ".gif"}
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

PilToTensor = Callable[[Image.Image], Tensor]

UNREADABLE = (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError)
"""What Pillow raises for a file it cannot read (DecompressionBombError: too many pixels)."""


class PilTransform:
    """Resize the shorter side to ``resize``, crop ``image_size`` square, to normalised tensor.

    With ``train`` the crop position is random (torch RNG) and images are
    flipped left-right with probability 0.5 when ``flip``; otherwise the crop
    is centred.
    """

    def __init__(
        self,
        *,
        image_size: int,
        resize: int,
        train: bool,
        flip: bool = True,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        self.image_size = image_size
        self.resize = resize
        self.train = train
        self.flip = flip
        self.normalize = Normalize(mean, std)

    def __call__(self, img: Image.Image) -> Tensor:
        w, h = img.size
        scale = self.resize / min(w, h)
        nw, nh = max(self.image_size, round(w * scale)), max(self.image_size, round(h * scale))
        if (nw, nh) != (w, h):
            img = img.resize((nw, nh), Image.Resampling.BILINEAR)
        s = self.image_size
        if self.train:
            left = int(torch.randint(0, nw - s + 1, (1,)))
            top = int(torch.randint(0, nh - s + 1, (1,)))
        else:
            left, top = (nw - s) // 2, (nh - s) // 2
        img = img.crop((left, top, left + s, top + s))
        if self.train and self.flip and float(torch.rand(())) < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        arr = np.asarray(img, dtype=np.uint8)
        x = torch.from_numpy(arr.copy()).permute(2, 0, 1).to(torch.float32).div_(255.0)
        return self.normalize(x)


def scan_image_folder(
    directory: Path, classes: Sequence[str] | None = None, *, index: FileIndex | None = None
) -> tuple[list[tuple[Path, int]], list[str]]:
    """List ``(path, label)`` for every image under ``directory/<class>/``.

    Args:
        directory: a split directory with one sub-directory per class.
        classes: the class names (label order); None takes the sorted
            sub-directory names. Sub-directories not in ``classes`` are an error.
        index: the data root's cached listings (``directory`` is one of its splits):
            reused while current, else ``directory`` is scanned and the index updated.

    Raises:
        IAPruneError: if the directory is missing, has no classes or no images,
            or has a class unknown to ``classes``.
    """
    if not directory.is_dir():
        raise IAPruneError(f"imagefolder: directory {directory} does not exist")
    if not any(e.is_dir() for e in os.scandir(directory)):
        raise IAPruneError(f"imagefolder: {directory} has no class sub-directories")
    if index is not None and directory.parent.resolve() == index.root:
        listing = index.listing(directory.name, IMAGE_EXTENSIONS, classes)
    else:
        listing = scan_folder(directory, IMAGE_EXTENSIONS, classes)
    if not listing.files:
        raise IAPruneError(
            f"imagefolder: no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) under {directory}"
        )
    return listing.samples(), listing.classes


class ImageFolderDataset(Dataset[tuple[Tensor, Tensor]]):
    """Lazily decoded images ``samples[indices[i]]`` with a PIL-to-tensor transform."""

    def __init__(
        self,
        samples: Sequence[tuple[Path, int]],
        transform: PilToTensor,
        indices: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.indices = np.arange(len(self.samples)) if indices is None else np.asarray(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        path, label = self.samples[int(self.indices[i])]
        try:
            with Image.open(path) as im:
                if im.format == "JPEG":
                    size = getattr(self.transform, "resize", None)
                    if size:
                        im.draft("RGB", (size, size))
                img = im.convert("RGB")
        except UNREADABLE as exc:
            raise IAPruneError(f"imagefolder: cannot decode {path}: {one_line(exc)}") from None
        return self.transform(img), torch.tensor(label, dtype=torch.int64)

    def check_files(self) -> None:
        """Open every image of this view far enough to read its header (format and size).

        Finds files that are not images, empty or cut before their header, and images
        too large to decode (Pillow's decompression-bomb limit), without decoding them.
        """
        for i in self.indices:
            path = self.samples[int(i)][0]
            try:
                with Image.open(path):  # parses the header (format, size), decodes nothing
                    pass
            except UNREADABLE as exc:
                raise IAPruneError(f"imagefolder: cannot read {path}: {one_line(exc)}") from None

    @property
    def targets(self) -> np.ndarray:
        """Labels of the samples in this view, in order."""
        return np.array([self.samples[int(j)][1] for j in self.indices], dtype=np.int64)


def _check_size(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise IAPruneError(f"imagefolder: {name} must be an integer >= 1, got {value!r}")
    return value


def _check_classes(
    directory: Path, samples: Sequence[tuple[Path, int]], classes: list[str]
) -> None:
    """Refuse a training split with one class, or with a class that has no image."""
    if len(classes) < 2:
        raise IAPruneError(
            f"imagefolder: {directory} has 1 class ({classes[0]!r}); a classifier needs at "
            "least 2 (with one, every prediction is right)"
        )
    counts = np.bincount([label for _, label in samples], minlength=len(classes))
    empty = [c for c, n in zip(classes, counts, strict=True) if n == 0]
    if empty:
        raise IAPruneError(
            f"imagefolder: class {empty[0]!r} in {directory} has no images "
            f"({len(empty)} such class(es)); add images or remove the folder"
        )


@register_dataset("imagefolder")
def imagefolder(
    root: Path | None,
    *,
    val_fraction: float,
    seed: int,
    augment: bool,
    image_size: int = 224,
    resize: int | None = None,
    index_file: Path | None = None,
) -> DataBundle:
    """An ImageNet-style folder: ``root/train/<class>/*`` and ``root/val/<class>/*``.

    Our validation part is a seeded stratified split of ``root/train``;
    ``root/val`` (or ``root/test``) is the test split. Images are decoded
    lazily with Pillow and converted to RGB.

    Options:
        image_size: side of the square crop fed to the model (default 224).
        resize: shorter side after resizing, before cropping (default
            ``round(image_size * 256 / 224)``, i.e. 256 for 224).
        index_file: a cached listing of the split folders
            (:mod:`iaprune.data.file_index`), read when current; the bundle's
            ``file_index`` holds the listing to write back.

    Evaluation: resize + centre crop. Training augmentation: resize + random
    crop + horizontal flip.
    """
    if root is None:
        raise IAPruneError(
            "imagefolder needs root=DIR containing train/<class>/* and val/<class>/* images"
        )
    if not root.is_dir():
        raise IAPruneError(f"imagefolder: directory {root} does not exist")
    image_size = _check_size("image_size", image_size)
    resize = round(image_size * 256 / 224) if resize is None else _check_size("resize", resize)
    if resize < image_size:
        raise IAPruneError(f"imagefolder: resize ({resize}) must be >= image_size ({image_size})")
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise IAPruneError(f"imagefolder: {root} has no train/ directory")
    test_dir = next((root / d for d in ("val", "test") if (root / d).is_dir()), None)
    if test_dir is None:
        raise IAPruneError(f"imagefolder: {root} has no val/ (or test/) directory")
    index = FileIndex.load(root, index_file)
    train_samples, classes = scan_image_folder(train_dir, index=index)
    _check_classes(train_dir, train_samples, classes)
    test_samples, _ = scan_image_folder(test_dir, classes, index=index)
    labels = np.array([lab for _, lab in train_samples], dtype=np.int64)
    keep, val = split_indices(labels, val_fraction, seed)
    eval_tf = PilTransform(image_size=image_size, resize=resize, train=False)
    train_tf = PilTransform(image_size=image_size, resize=resize, train=augment)
    return DataBundle(
        name="imagefolder",
        train=ImageFolderDataset(train_samples, train_tf, keep),
        val=ImageFolderDataset(train_samples, eval_tf, val),
        test=ImageFolderDataset(test_samples, eval_tf),
        num_classes=len(classes),
        in_channels=3,
        input_size=(image_size, image_size),
        train_eval=ImageFolderDataset(train_samples, eval_tf, keep),
        file_index=index,
    )
