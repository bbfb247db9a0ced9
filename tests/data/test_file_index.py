"""The cached file listing of an image folder (``RUN_DIR/data_index.json.gz``)."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from iaprune.data import create_dataset, file_index
from iaprune.data.file_index import FileIndex, scan_folder
from iaprune.data.imagefolder import IMAGE_EXTENSIONS
from tests.data.test_data_imagefolder import make_folder


def _scan_order(directory: Path) -> list[tuple[Path, int]]:
    """What the listing replaced: sorted ``Path.rglob`` per sorted class folder."""
    classes = sorted(p.name for p in directory.iterdir() if p.is_dir())
    out = []
    for label, c in enumerate(classes):
        files = sorted(
            p
            for p in (directory / c).rglob("*")
            if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        )
        out += [(p, label) for p in files]
    return out


def test_listing_matches_sorted_rglob_with_nested_folders_and_links(tmp_path: Path) -> None:
    make_folder(tmp_path)
    train = tmp_path / "train"
    nested = train / "cat" / "a"
    nested.mkdir()
    (nested / "b.png").write_bytes(b"x")
    (train / "cat" / "a.png").write_bytes(b"x")  # "a/b.png" sorts before "a.png"
    (train / "cat" / ".hidden.jpg").write_bytes(b"x")
    (train / "dog" / "link.png").symlink_to(train / "cat" / "a.png")
    (train / "dog" / "linked_dir").symlink_to(nested, target_is_directory=True)  # not entered
    listing = scan_folder(train, IMAGE_EXTENSIONS)
    assert listing.samples() == _scan_order(train)
    assert listing.classes == ["bird", "cat", "dog"]


def _counting_scans(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    real = file_index.scan_folder

    def counted(directory: Path, *args: object, **kw: object) -> object:
        calls.append(directory)
        return real(directory, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(file_index, "scan_folder", counted)
    return calls


def _bundle(root: Path, cache: Path):  # type: ignore[no-untyped-def]
    return create_dataset(
        "imagefolder", root=root, val_fraction=0.25, image_size=16, index_file=cache
    )


def test_a_current_cache_is_reused_and_a_changed_folder_rescanned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, cache = tmp_path / "data", tmp_path / "run" / "data_index.json.gz"
    make_folder(root)
    cache.parent.mkdir()
    scans = _counting_scans(monkeypatch)
    first = _bundle(root, cache)
    assert len(scans) == 2 and first.file_index is not None and first.file_index.changed
    cache.write_bytes(first.file_index.to_bytes())

    again = _bundle(root, cache)
    assert len(scans) == 2  # both splits read from the cache
    assert again.file_index is not None and not again.file_index.changed
    assert again.train.samples == first.train.samples
    assert again.val.indices.tolist() == first.val.indices.tolist()
    assert again.test.samples == first.test.samples

    new = root / "train" / "cat" / "new.png"
    new.write_bytes((root / "train" / "cat" / "0.png").read_bytes())
    os.utime(new.parent, ns=(0, new.parent.stat().st_mtime_ns + 10**9))  # coarse clocks
    changed = _bundle(root, cache)
    assert scans[2:] == [root / "train"]  # only the changed split
    assert new in [p for p, _ in changed.train.samples + changed.val.samples]


@pytest.mark.parametrize(
    "bad",
    [
        b"not gzip",
        gzip.compress(b"[1, 2]"),
        "escape",
        "absolute",
        "other-root",
        "version",
    ],
)
def test_a_bad_or_foreign_cache_is_ignored_and_the_folders_scanned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: object
) -> None:
    root, cache = tmp_path / "data", tmp_path / "data_index.json.gz"
    make_folder(root)
    good = _bundle(root, tmp_path / "none.json.gz").file_index
    assert good is not None
    data = json.loads(gzip.decompress(good.to_bytes()))
    run = data["splits"]["train"]["files"][0]  # [label, "path\0path..."]
    if bad == "escape":
        run[1] += "\0../../etc/passwd"
    elif bad == "absolute":
        run[1] = "/etc/passwd\0" + run[1]
    elif bad == "other-root":
        data["root"] = str(tmp_path / "elsewhere")
    elif bad == "version":
        data["format_version"] = 99
    payload = bad if isinstance(bad, bytes) else gzip.compress(json.dumps(data).encode())
    cache.write_bytes(payload)
    scans = _counting_scans(monkeypatch)
    bundle = _bundle(root, cache)
    assert len(scans) == 2
    assert all(str(p).startswith(str(root)) for p, _ in bundle.train.samples)
    assert (
        bundle.train.samples
        == create_dataset("imagefolder", root=root, val_fraction=0.25, image_size=16).train.samples
    )


def test_checked_flag_survives_a_round_trip_and_a_rescan_clears_it(tmp_path: Path) -> None:
    root = tmp_path / "data"
    make_folder(root)
    index = FileIndex.load(root, None)
    index.listing("train", IMAGE_EXTENSIONS)
    index.mark_checked()
    cache = tmp_path / "i.json.gz"
    cache.write_bytes(index.to_bytes())
    back = FileIndex.load(root, cache)
    assert back.checked and not back.changed
    (root / "train" / "dog" / "x.png").write_bytes(b"x")
    os.utime(root / "train" / "dog", ns=(0, (root / "train" / "dog").stat().st_mtime_ns + 10**9))
    back.listing("train", IMAGE_EXTENSIONS)
    assert not back.checked and back.changed


def test_a_run_writes_the_listing_and_a_resume_neither_scans_nor_rechecks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from iaprune import RunConfig, SearchConfig, Session
    from iaprune.data.imagefolder import ImageFolderDataset
    from iaprune.rundir import release_locks

    root, run = tmp_path / "data", tmp_path / "run"
    make_folder(root)
    config = RunConfig(
        model="test_vgg",
        width_mult=1.0,
        dataset="imagefolder",
        data_root=str(root),
        image_size=16,
        search=SearchConfig(round_to=1),
    )
    checks: list[int] = []
    real_check = ImageFolderDataset.check_files
    monkeypatch.setattr(
        ImageFolderDataset, "check_files", lambda self: checks.append(1) or real_check(self)
    )
    Session.create(run, config)
    release_locks()
    assert (run / file_index.INDEX_FILE).is_file() and len(checks) == 3  # train, val, test
    scans = _counting_scans(monkeypatch)
    Session.create(run, config, resume=True)
    release_locks()
    assert scans == [] and len(checks) == 3


@pytest.mark.parametrize(
    ("paths", "ok"),
    [
        ("a.jpg", True),
        ("a/b.jpg\0c.jpg", True),
        ("..x.jpg\0x..jpg", True),
        ("/etc/passwd", False),
        ("a.jpg\0/etc/passwd", False),
        ("a.jpg\0\0b.jpg", False),
        ("a.jpg\0", False),
        ("..", False),
        ("a/../../b", False),
        ("a\0./b", False),
        ("a\\b", False),
        ("", False),
    ],
)
def test_paths_of_a_cached_listing_must_stay_inside_their_folder(paths: str, ok: bool) -> None:
    if ok:
        assert file_index._inside(paths) == paths
    else:
        with pytest.raises(ValueError):
            file_index._inside(paths)
