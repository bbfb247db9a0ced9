"""Tiny seeded fixtures shared by the test suite."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from sqlalchemy import event
from sqlalchemy.engine import Engine
from torch import nn

os.environ.setdefault("IAPRUNE_NO_PROGRESS", "1")


@event.listens_for(Engine, "connect")
def _sqlite_without_fsync(dbapi_connection: object, _record: object) -> None:
    """The test process's SQLite studies skip fsync (``PRAGMA synchronous=OFF``).

    Every Optuna commit fsynced the study file and its journal: on the 2-core test machine
    that was two thirds of the search tests' wall time (tests/search/test_choice.py:
    66 s -> 22 s). What the tests check is unchanged: a committed transaction is handed to
    the OS before the commit returns, so it survives the end or kill of any process (only
    an OS crash or a power cut could lose it); studies written by subprocesses (workers,
    killed runs) keep SQLite's defaults.
    """
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute("PRAGMA synchronous=OFF")


class UserCNN(nn.Module):
    """A user-defined CNN: bias convs without BN, a concat, a residual add, a depthwise conv."""

    def __init__(self, num_classes: int = 5, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, 8, 3, padding=1)
        self.branch_a = nn.Conv2d(8, 6, 3, padding=1)
        self.branch_b = nn.Conv2d(8, 4, 1)
        self.merge = nn.Conv2d(10, 8, 3, padding=1, bias=False)
        self.merge_bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.head = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.stem(x))
        cat = torch.cat([torch.relu(self.branch_a(s)), torch.relu(self.branch_b(s))], dim=1)
        y = torch.relu(self.merge_bn(self.merge(cat)) + s)
        y = torch.relu(self.dw(y))
        return self.head(y.mean((2, 3)))


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)
    return model.eval()


@pytest.fixture
def user_cnn() -> nn.Module:
    torch.manual_seed(0)
    return randomize_bn(UserCNN())


TINY_RUN_ARGS = [
    "--model",
    "test_vgg",
    "--width-mult",
    "1.0",
    "--baseline-epochs",
    "1",
    "--trials",
    "2",
    "--epochs",
    "1",
    "--repeats",
    "3",
    "--bn-batches",
    "2",
    "--round-to",
    "1",
    "--batch-size",
    "256",
    "--final-steps",
    "2",
    "--final-time",
    "0",
]
"""CLI arguments of the smallest full run (test_vgg on digits, seconds).

``--final-steps 2``: the finalists are still re-scored after a recovery with distillation
(the default path of the final choice), but with 2 steps instead of the default 100, which
took most of a tiny run's time; tests/search/test_choice.py tests the choice itself.
``--final-time 0``: no time limit on the finalists, so which are re-scored never depends on
the machine's speed (tests compare runs)."""


def tiny_args(**options: str | int | None) -> list[str]:
    """:data:`TINY_RUN_ARGS` with ``options`` changed: the one list of tiny CLI arguments.

    ``trials=4`` sets ``--trials 4``, ``batch_size=None`` drops ``--batch-size``, and an
    option the list lacks is appended. A function rather than a fixture: module-level
    argument lists feed ``pytest.mark.parametrize``.
    """
    pairs = dict(zip(TINY_RUN_ARGS[::2], TINY_RUN_ARGS[1::2], strict=True))
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is None:
            pairs.pop(flag, None)
        else:
            pairs[flag] = str(value)
    return [item for pair in pairs.items() for item in pair]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run directory; copy it (``received_run``) before changing anything."""
    from iaprune.cli.main import main

    run = tmp_path_factory.mktemp("tiny") / "run"
    assert main(["prune", "--run-dir", str(run), *TINY_RUN_ARGS]) == 0
    return run


@pytest.fixture
def received_run(tiny_run: Path, tmp_path: Path) -> Path:
    """A private copy of ``tiny_run`` (as if received from someone else)."""
    run = tmp_path / "received"
    shutil.copytree(tiny_run, run)
    return run


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a throwaway PostgreSQL database for this test session (skips without one)."""
    from tests import _postgres

    if _postgres.bindir() is None:
        pytest.skip(_postgres.MISSING)
    pytest.importorskip("psycopg", reason="psycopg missing: pip install -e '.[distributed]'")
    root = Path(tempfile.mkdtemp(prefix="iaprune-pg-"))
    url, data = _postgres.start(root)
    try:
        yield url
    finally:
        _postgres.stop(data)
        shutil.rmtree(root, ignore_errors=True)
