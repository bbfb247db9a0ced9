"""The dataset contract: :class:`DatasetSuite`.

Every dataset factory registered in :data:`iaprune.data.DATASETS` must, built through
:func:`iaprune.data.create_dataset` on a data folder from :meth:`DatasetSuite.make_root`:

* return a :class:`~iaprune.data.DataBundle` whose train, val, test and train_eval splits
  yield ``(float32 image of (in_channels, *input_size), int64 label in [0, num_classes))``;
* carve ``val`` out of the training data by ``val_fraction``: train and val together are
  as large as the training data, and ``train_eval`` is as large as ``train``;
* split the same way for the same seed, and differently for another seed;
* refuse an unknown option with :class:`~iaprune.errors.IAPruneError` (one line).

Datasets need files in their real format; :meth:`DatasetSuite.make_root` builds none and
skips those it cannot make (``digits`` and ``synthetic`` need no files). A project's test
subclass overrides it to write small files in each format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from iaprune.data import DataBundle, create_dataset, list_datasets
from iaprune.errors import IAPruneError

__all__ = ["DatasetSuite"]

NO_FILES = {"digits": {}, "synthetic": {"n_train": 40, "n_test": 10}}


def _size(split: Any) -> int:
    """A split's length (map-style datasets define ``__len__``; ``Dataset`` does not say so)."""
    return len(split)


def _labels(split: Any) -> list[int]:
    return [int(split[i][1]) for i in range(_size(split))]


class DatasetSuite:
    """Contract tests run once per registered dataset."""

    def make_root(self, name: str, tmp_path: Path) -> tuple[Path | None, dict[str, Any]]:
        """A data folder for ``name`` (or None) and the options to build it with."""
        if name in NO_FILES:
            return None, dict(NO_FILES[name])
        pytest.skip(f"the suite writes no {name} files; override make_root to test it")

    @pytest.fixture(params=list_datasets())
    def name(self, request: pytest.FixtureRequest) -> str:
        """Each registered dataset name."""
        return str(request.param)

    def _build(self, name: str, tmp_path: Path, seed: int = 0) -> DataBundle:
        root, options = self.make_root(name, tmp_path)
        return create_dataset(name, root=root, val_fraction=0.25, seed=seed, **options)

    def test_splits_yield_labelled_images(self, name: str, tmp_path: Path) -> None:
        bundle = self._build(name, tmp_path)
        shape = (bundle.in_channels, *bundle.input_size)
        for split in ("train", "val", "test", "train_eval"):
            data = getattr(bundle, split)
            assert _size(data) > 0, split
            for i in (0, _size(data) - 1):
                x, y = data[i]
                assert isinstance(x, torch.Tensor) and x.dtype == torch.float32, split
                assert tuple(x.shape) == shape, split
                label = int(y)
                assert 0 <= label < bundle.num_classes, split

    def test_validation_is_carved_from_training(self, name: str, tmp_path: Path) -> None:
        bundle = self._build(name, tmp_path)
        train, val = _size(bundle.train), _size(bundle.val)
        assert val == pytest.approx(0.25 * (train + val), abs=bundle.num_classes + 1)
        assert _size(bundle.train_eval) == train

    def test_split_follows_the_seed(self, name: str, tmp_path: Path) -> None:
        a = self._build(name, tmp_path / "a", seed=0)
        b = self._build(name, tmp_path / "b", seed=0)
        c = self._build(name, tmp_path / "c", seed=1)
        assert _labels(a.val) == _labels(b.val)
        first = torch.stack([a.val[i][0] for i in range(_size(a.val))])
        other = torch.stack([c.val[i][0] for i in range(_size(c.val))])
        assert not torch.equal(first, other)

    def test_unknown_option_is_one_line_error(self, name: str, tmp_path: Path) -> None:
        root, options = self.make_root(name, tmp_path)
        with pytest.raises(IAPruneError) as info:
            create_dataset(name, root=root, no_such_option=1, **options)
        assert "\n" not in str(info.value)
