"""ImageNet-style data on this machine: listing time of a large folder, loader throughput.

1. **Listing** a synthetic ``train/`` of ``--classes`` x ``--files`` empty ``.JPEG`` files
   (ImageNet's layout; 1,000 x 100 = 100k files by default, each a 8x8 JPEG), three ways, each timed
   ``--repeats`` times (warm file-system cache; the minimum is reported):

   * ``rglob``: sorted ``Path.rglob`` per class folder with a ``stat`` per file, which is
     how iaprune listed image folders before the cached listing;
   * ``scan``: :func:`iaprune.data.file_index.scan_folder` (``os.scandir``, no ``stat``
     per file), what a run does when it has no current listing;
   * ``cached``: reading ``RUN_DIR/data_index.json.gz`` and checking every folder's time
     (:class:`iaprune.data.file_index.FileIndex`), what a resume, a ``finetune``, a
     worker or a torchrun rank does;

   and the header check of every file before a run starts (``check_files``), which a
   resume with a current, checked listing skips.

2. **Loader throughput**: ``--images`` JPEG files of 500x375 pixels (ImageNet's typical
   size) in 8 classes, read through ``imagefolder`` at 224 px with training augmentation
   (resize 256, random crop, flip), batch 64, for each ``--data-workers`` value: images
   per second over the second of two passes (the first starts the workers).

Results: ``OUT/data_loading_results.md``, ``OUT/data_loading.json``. Takes about two
minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import log, machine_info
from PIL import Image

from iaprune.data import create_dataset, make_loaders
from iaprune.data.file_index import FileIndex, scan_folder
from iaprune.data.imagefolder import IMAGE_EXTENSIONS, ImageFolderDataset
from iaprune.reports import Table, markdown_table


def make_tree(root: Path, classes: int, files: int) -> None:
    """``root/train/nXXXXXXXX/*.JPEG``: the same tiny 8x8 JPEG in every file."""
    import io

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (90, 120, 30)).save(buf, format="JPEG")
    data = buf.getvalue()
    for c in range(classes):
        folder = root / "train" / f"n{c:08d}"
        folder.mkdir(parents=True)
        for i in range(files):
            (folder / f"n{c:08d}_{i}.JPEG").write_bytes(data)


def rglob_listing(directory: Path) -> int:
    """The listing iaprune did before: sorted rglob per class, ``is_file`` per file."""
    count = 0
    for c in sorted(p for p in directory.iterdir() if p.is_dir()):
        files = sorted(
            p for p in c.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        )
        count += len(files)
    return count


def _best(fn: Any, repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def listing(a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Seconds to list the synthetic tree three ways."""
    root = tmp / "scan"
    t0 = time.perf_counter()
    make_tree(root, a.classes, a.files)
    log(f"made {a.classes * a.files} files in {time.perf_counter() - t0:.1f} s")
    train = root / "train"
    old, n_old = _best(lambda: rglob_listing(train), a.repeats)
    new, found = _best(lambda: scan_folder(train, IMAGE_EXTENSIONS), a.repeats)
    index = FileIndex(root.resolve(), splits={"train": found})
    cache = tmp / "data_index.json.gz"
    cache.write_bytes(index.to_bytes())

    def cached() -> int:
        loaded = FileIndex.load(root, cache)
        listed = loaded.listing("train", IMAGE_EXTENSIONS)
        assert not loaded.changed
        return len(listed.files)

    hit, n_hit = _best(cached, a.repeats)
    assert n_old == len(found.files) == n_hit == a.classes * a.files
    dataset = ImageFolderDataset(found.samples(), lambda img: img)
    check, _ = _best(dataset.check_files, 1)
    shutil.rmtree(root)
    return {
        "files": n_hit,
        "rglob_s": old,
        "scan_s": new,
        "cached_s": hit,
        "header_check_s": check,
        "cache_bytes": cache.stat().st_size,
    }


def make_images(root: Path, n: int) -> None:
    """``n`` random 500x375 JPEGs (quality 90) in 8 classes of train/ and 8 test images."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)
    for split, count in (("train", n), ("val", 8)):
        for i in range(count):
            folder = root / split / f"c{i % 8}"
            folder.mkdir(parents=True, exist_ok=True)
            img = np.roll(base, 7 * i, axis=1)
            Image.fromarray(img).save(folder / f"{i}.JPEG", quality=90)


def throughput(a: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    """Training images per second through the imagefolder loader per worker count."""
    root = tmp / "images"
    make_images(root, a.images)
    bundle = create_dataset("imagefolder", root=root, val_fraction=0.1, image_size=224)
    rows = []
    for workers in (int(w) for w in a.data_workers.split(",")):
        loader = make_loaders(bundle, 64, num_workers=workers)["train"]
        rate = 0.0
        for _ in range(2):  # the second pass: workers already started
            t0, n = time.perf_counter(), 0
            for x, _y in loader:
                n += len(x)
            rate = n / (time.perf_counter() - t0)
        log(f"data workers {workers}: {rate:.0f} images/s")
        rows.append({"data_workers": workers, "images_per_s": rate, "images": n})
        del loader
    return rows


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "data_loading")
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--files", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--images", type=int, default=640)
    p.add_argument("--data-workers", default="0,1,2")
    p.add_argument("--threads", type=int, default=None, help="torch threads of the main process")
    return p.parse_args(argv)


def write(a: argparse.Namespace, scan: dict[str, Any], rates: list[dict[str, Any]]) -> None:
    a.out.mkdir(parents=True, exist_ok=True)
    env = machine_info("cpu") | {"loadavg_end": " / ".join(f"{v:.2f}" for v in os.getloadavg())}
    (a.out / "data_loading.json").write_text(
        json.dumps(
            {"listing": scan, "loader": rates, "env": env, "args": vars(a)}, indent=2, default=str
        )
    )
    listing_table = Table(
        ("files", "rglob + stat (before) s", "scandir scan s", "cached listing s")
        + ("header check s", "cache size"),
        [
            (
                f"{scan['files']:,}",
                f"{scan['rglob_s']:.2f}",
                f"{scan['scan_s']:.2f}",
                f"{scan['cached_s']:.2f}",
                f"{scan['header_check_s']:.1f}",
                f"{scan['cache_bytes'] / 1e6:.1f} MB",
            )
        ],
        align=("r",) * 6,
    )
    loader_table = Table(
        ("data workers", "images/s (224 px, augmented)"),
        [(str(r["data_workers"]), f"{r['images_per_s']:.0f}") for r in rates],
        align=("r", "r"),
    )
    text = markdown_table(listing_table) + "\n\n" + markdown_table(loader_table) + "\n"
    (a.out / "data_loading_results.md").write_text(text)
    print(text)


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory(prefix="iaprune-data-") as tmp:
        scan = listing(a, Path(tmp))
        rates = throughput(a, Path(tmp))
    write(a, scan, rates)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
