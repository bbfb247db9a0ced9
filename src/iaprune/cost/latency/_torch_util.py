"""Helpers shared by the PyTorch-based latency backends (devices, inputs, threads)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from iaprune.devices import resolve_device

__all__ = ["INPUT_SEED", "random_input", "resolve_device", "torch_threads"]

INPUT_SEED = 0
"""Seed of the generator that draws the random timing input (the global RNG is untouched)."""


def random_input(
    batch_size: int,
    shape: Sequence[int],
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    seed: int = INPUT_SEED,
) -> torch.Tensor:
    """``torch.randn((batch_size, *shape))`` from a private generator seeded with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((batch_size, *shape), generator=gen, dtype=dtype).to(device)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Fix ``torch.set_num_threads(threads)`` inside the block and restore it after.

    ``None`` leaves the setting alone. Yields the intra-op thread count in effect.
    """
    previous = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        yield torch.get_num_threads()
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)
