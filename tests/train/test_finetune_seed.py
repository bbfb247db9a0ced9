"""The fine-tune stage depends on the run seed and the spec only, not on earlier RNG use."""

from __future__ import annotations

from dataclasses import replace

import torch

from iaprune import FinetuneConfig, RunConfig, Session


def test_equal_specs_fine_tune_equally_whatever_ran_before(tmp_path) -> None:
    config = RunConfig(model="test_vgg", width_mult=1.0, baseline_epochs=1)
    config = replace(config, finetune=FinetuneConfig(epochs=1, batch_size=256))
    session = Session.create(tmp_path / "run", config)
    base = session.baseline()
    pruner = session.pruner(base)
    spec = pruner.spec({g.name: max(1, g.channels // 2) for g in pruner.groups})

    first, _ = session.prune_and_finetune(base, spec)
    torch.rand(12345)  # a search, say, that drew random numbers (or none, on resume)
    second, _ = session.prune_and_finetune(base, spec)
    a, b = first.state_dict(), second.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)

    other = Session(session.run, replace(config, seed=1))
    third, _ = other.prune_and_finetune(base, spec)  # another run seed: another fine-tune
    c = third.state_dict()
    assert not all(torch.equal(a[k], c[k]) for k in a)
