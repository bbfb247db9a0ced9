"""The ImageNet recipe of docs/guide/scale-out.md, end to end, on a synthetic ImageFolder.

The same steps as the guide, scaled down: the data in ImageNet's layout (class folders
named like WordNet ids, ``.JPEG`` files, a flat ``val/`` sorted into class folders by the
guide's own shell loop and a ``LOC_val_solution.csv``), a checkpoint file, a search with 2
local workers on a real PostgreSQL server, a second ``iaprune search`` on the same storage
joining as another machine would, and the fine-tuning under ``torchrun`` on 2 processes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from PIL import Image

from iaprune.models import create_model

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "guide" / "scale-out.md"
pytestmark = [pytest.mark.postgres, pytest.mark.distributed]

CLASSES = ["n01440764", "n01443537", "n01484850", "n01491361"]


def _env() -> dict[str, str]:
    return os.environ | {
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
        "IAPRUNE_NO_PROGRESS": "1",
        "OMP_NUM_THREADS": "1",
    }


def _imagenet_like(root: Path) -> None:
    """train/<wnid>/<wnid>_<i>.JPEG, and a flat val/ with LOC_val_solution.csv."""
    rng = np.random.default_rng(0)
    (root / "val").mkdir(parents=True)
    lines = ["ImageId,PredictionString"]
    for c, wnid in enumerate(CLASSES):
        folder = root / "train" / wnid
        folder.mkdir(parents=True)
        for i in range(12):
            arr = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
            arr[..., c % 3] = 60 * c  # a class-dependent channel
            Image.fromarray(arr).save(folder / f"{wnid}_{i}.JPEG", quality=90)
        for i in range(3):
            name = f"ILSVRC2012_val_{c * 3 + i:08d}"
            arr = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
            arr[..., c % 3] = 60 * c
            Image.fromarray(arr).save(root / "val" / f"{name}.JPEG", quality=90)
            lines.append(f"{name},{wnid} 1 2 3 4 {wnid} 5 6 7 8")
    (root / "LOC_val_solution.csv").write_text("\n".join(lines) + "\n")


def _guide_block(marker: str) -> str:
    """The guide's bash block that contains ``marker``."""
    blocks = re.findall(r"```bash\n(.*?)```", GUIDE.read_text(), flags=re.S)
    return next(b for b in blocks if marker in b)


def _run(cmd: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{cmd}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def test_the_imagenet_recipe_runs_as_written_on_a_small_imagefolder(
    postgres_url: str, tmp_path: Path
) -> None:
    data = tmp_path / "IMAGENET"
    _imagenet_like(data)
    # Step 2 of the guide: its own loop sorts the flat val folder into class folders.
    sort = _guide_block("LOC_val_solution.csv").replace("IMAGENET", str(data))
    subprocess.run(["bash", "-euc", sort], cwd=tmp_path, check=True, timeout=60)
    assert sorted(p.name for p in (data / "val").iterdir()) == CLASSES
    assert all(len(list((data / "val" / c).glob("*.JPEG"))) == 3 for c in CLASSES)

    torch.manual_seed(0)  # the "torchvision checkpoint"
    weights = tmp_path / "weights.pth"
    model = create_model("test_vgg", num_classes=4, in_channels=3, width_mult=1.0)
    torch.save(model.state_dict(), weights)

    run = tmp_path / "runs" / "test-vgg-in"
    search = [sys.executable, "-m", "iaprune.cli.main", "search", "--model", "test_vgg"]
    search += ["--width-mult", "1.0", "--checkpoint", str(weights), "--dataset", "imagefolder"]
    search += ["--data-root", str(data), "--image-size", "16", "--val-fraction", "0.25"]
    search += ["--max-macs", "0.5", "--trials", "6", "--workers", "2", "--batch-size", "16"]
    search += ["--data-workers", "1", "--round-to", "1", "--bn-batches", "2"]
    search += ["--final-steps", "2", "--storage", postgres_url, "--run-dir", str(run)]
    _run(search, tmp_path)
    # another machine: the same command joins the study (and finds it complete)
    _run([*search[:-1], str(tmp_path / "runs" / "second-machine")], tmp_path)

    assert (run / "data_index.json.gz").is_file()
    config = json.loads((run / "config.json").read_text())
    storage = optuna.storages.RDBStorage(postgres_url)
    study = optuna.load_study(study_name=config["search"]["study_name"], storage=storage)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 6
    assert len({t.user_attrs.get("worker") for t in done}) >= 2  # the local workers shared it

    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    torchrun += ["--nproc-per-node", "2", "-m", "iaprune.cli.main", "finetune", str(run)]
    finished = _run([*torchrun, "--epochs", "1"], tmp_path)
    assert finished.stdout.count("top-1 accuracy") == 1  # rank 0 alone reports
    report = json.loads((run / "report.json").read_text())
    assert report["pruned"]["macs"] <= 0.5 * report["baseline"]["macs"] * 1.001
    assert 0.0 <= report["pruned"]["accuracy"] <= 1.0
