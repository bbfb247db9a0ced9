"""Every registered dataset passes :class:`iaprune.testing.datasets.DatasetSuite`.

The files are written in each dataset's real format by the writers of the per-dataset
tests in this folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_data_cifar import make_cifar10, make_cifar100
from test_data_idx import make_idx_dir
from test_data_imagefolder import make_folder

from iaprune.testing.datasets import DatasetSuite


class TestDatasetContract(DatasetSuite):
    """digits, synthetic, cifar10, cifar100, mnist, fashion-mnist, imagefolder."""

    def make_root(self, name: str, tmp_path: Path) -> tuple[Path | None, dict[str, Any]]:
        tmp_path.mkdir(parents=True, exist_ok=True)
        if name == "cifar10":
            return make_cifar10(tmp_path), {}
        if name == "cifar100":
            return make_cifar100(tmp_path), {}
        if name in ("mnist", "fashion-mnist"):
            make_idx_dir(tmp_path, gz=True)
            return tmp_path, {}
        if name == "imagefolder":
            make_folder(tmp_path)
            return tmp_path, {"image_size": 16}
        return super().make_root(name, tmp_path)
