"""Budget-aware search space: exact width costs, projection onto the budget, warm starts."""

from __future__ import annotations

import random
from dataclasses import dataclass

import optuna
import pytest
import torch
from torch import nn

from iaprune.config import ObjectiveConfig, SearchConfig
from iaprune.cost import count_macs, count_params
from iaprune.models import create_model, list_models
from iaprune.pruning import Pruner
from iaprune.search import (
    AllocationSpace,
    CandidateEvaluator,
    SearchSpace,
    WarmStart,
    heuristics,
    make_space,
    run_search,
    warm_starts,
)
from iaprune.search.heuristics import (
    global_magnitude_allocation,
    scale_onto_budget,
    torch_pruning_allocation,
)
from iaprune.search.projection import BudgetProjection, cluster_groups, global_allocation
from iaprune.search.widthcost import WidthCost
from tests.conftest import UserCNN
from tests.pruning.nets import build
from tests.search.evaluators import tiny_evaluator
from tests.search.test_latency_projection import stand_in_table


def _shape(name: str) -> tuple[int, int, int]:
    return (3, 64, 64) if "imagenet" in name else (3, 32, 32)


LAYER_NETS = ["grouped2", "grouped4", "depthwise", "concat", "inverted_residual"]


def _model(name: str) -> nn.Module:
    if name == "user":
        torch.manual_seed(0)
        return UserCNN()
    if name in LAYER_NETS:
        return build(name, 3, seed=0)
    width = 0.125 if "imagenet" in name else 0.25
    return create_model(name, num_classes=10, width_mult=width)


MODELS = [*list_models(), "user", *LAYER_NETS]

_PRUNERS: dict[str, Pruner] = {}


def _pruner(name: str) -> Pruner:
    """``name``'s Pruner, built once for this module (every test here only reads it)."""
    if name not in _PRUNERS:
        _PRUNERS[name] = Pruner(_model(name), torch.randn(1, *_shape(name)))
    return _PRUNERS[name]


@pytest.fixture(scope="module", params=MODELS)
def zoo(request: pytest.FixtureRequest) -> tuple[str, Pruner, WidthCost]:
    name = request.param
    pruner = _pruner(name)
    return name, pruner, WidthCost(pruner, _shape(name))


def test_width_cost_is_exact_for_random_widths(zoo) -> None:
    name, pruner, cost = zoo
    rng = random.Random(7)
    for _ in range(3):
        keep = {g.name: rng.choice(g.allowed_keeps()) for g in pruner.groups}
        pruned = pruner.prune(keep)
        got = cost.costs(keep)
        assert got["macs"] == count_macs(pruned, _shape(name))
        assert got["params"] == count_params(pruned)


@pytest.mark.parametrize("budget", [0.25, 0.5])
def test_projection_meets_and_uses_the_budget(zoo, budget: float) -> None:
    _name, pruner, cost = zoo
    space = SearchSpace.from_groups(pruner.groups, min_ratio=0.05, round_to=2)
    projection = BudgetProjection(space, cost, {"macs": budget})
    rng = random.Random(budget)
    reachable = projection.feasible(space.smallest())
    for _ in range(10):
        alloc = {g.name: rng.uniform(0.2, 1.0) for g in pruner.groups}
        keep = projection.project(alloc)
        if not reachable:  # the tiny test models cannot reach 25 %: smallest widths
            assert keep == space.smallest()
            continue
        assert cost.ratios(keep)["macs"] <= budget
        steps = []
        for g in space.groups:
            assert space.lower(g) <= keep[g.name] <= g.channels
            grown = {**keep, g.name: min(g.channels, keep[g.name] + space.step(g))}
            steps.append(cost.ratios(grown)["macs"] - cost.ratios(keep)["macs"])
        # the budget is used up to the rounding granularity: less than one step of slack
        assert budget - cost.ratios(keep)["macs"] <= max(steps) + 1e-9


@pytest.mark.parametrize("budget", [0.3, 0.5])
def test_projection_onto_a_predicted_latency_meets_and_uses_the_budget(zoo, budget) -> None:
    _name, pruner, cost = zoo
    space = SearchSpace.from_groups(pruner.groups, min_ratio=0.05, round_to=2)
    predictors = stand_in_table(pruner)
    latency = predictors["latency"]
    projection = BudgetProjection(space, cost, {"latency": budget}, predictors)
    reachable = projection.feasible(space.smallest())
    rng = random.Random(budget)
    for _ in range(10):
        keep = projection.project({g.name: rng.uniform(0.2, 1.0) for g in pruner.groups})
        if not reachable:  # a tiny test model cannot get below the stand-in's fixed part
            assert keep == space.smallest()
            continue
        assert latency(keep) <= budget
        steps = []
        for g in space.groups:
            assert space.lower(g) <= keep[g.name] <= g.channels
            grown = {**keep, g.name: min(g.channels, keep[g.name] + space.step(g))}
            steps.append(latency(grown) - latency(keep))
        # on the budget up to the rounding granularity: less than one step of slack
        assert budget - latency(keep) <= max(steps) + 1e-9


def test_an_absolute_latency_budget_is_projected_too(zoo) -> None:
    _name, pruner, cost = zoo
    space = SearchSpace.from_groups(pruner.groups, round_to=1)
    predictors = stand_in_table(pruner, seed=3)
    bound = 0.4 * predictors["latency_ms"]({})
    projection = BudgetProjection(space, cost, {"latency_ms": bound, "macs": 0.9}, predictors)
    keep = projection.project({g.name: 1.0 for g in pruner.groups})
    if not projection.feasible(space.smallest()):
        assert keep == space.smallest()
        return
    assert predictors["latency_ms"](keep) <= bound
    assert cost.ratios(keep)["macs"] <= 0.9


def test_uniform_allocation_keeps_the_same_share_everywhere(zoo) -> None:
    _name, pruner, cost = zoo
    space = SearchSpace.from_groups(pruner.groups, round_to=1)
    projection = BudgetProjection(space, cost, {"params": 0.5})
    keep = projection.project({g.name: 1.0 for g in pruner.groups})
    big = [g for g in pruner.groups if g.channels >= 8]
    if len(big) < 2:
        pytest.skip("no two groups of 8+ channels at this width")
    shares = [keep[g.name] / g.channels for g in big]
    granularity = max(space.step(g) / g.channels for g in big)
    assert max(shares) - min(shares) <= 0.1 + granularity


def test_global_allocation_meets_the_budget(zoo) -> None:
    _name, pruner, cost = zoo
    space = SearchSpace.from_groups(pruner.groups)
    projection = BudgetProjection(space, cost, {"macs": 0.4})
    keep = global_allocation(pruner.scores, projection)
    if not projection.feasible(space.smallest()):
        assert keep == space.smallest()
        return
    assert projection.feasible(keep)
    assert cost.ratios(keep)["macs"] > 0.2  # a threshold: coarse on the tiny test models


def _allowed(space: SearchSpace, keep: dict[str, int]) -> bool:
    return all(
        space.lower(g) <= keep[g.name] <= g.channels
        and (keep[g.name] % space.step(g) == 0 or keep[g.name] == g.channels)
        for g in space.groups
    )


@dataclass
class _WarmStart:
    """torch-pruning's global warm start at half the MACs of a zoo model, stepped once."""

    pruner: Pruner
    space: SearchSpace
    projection: BudgetProjection
    chosen: dict[str, int]  # what global_magnitude_allocation returned
    calls: list  # (args, kwargs, result) of each torch_pruning_allocation call it made
    stepped: list[dict[str, int]]  # each step torch_pruning_allocation scaled onto the budget
    params: tuple[int, int]  # the model's parameters before and after


@pytest.fixture(scope="module")
def warm_start(zoo) -> _WarmStart:
    """One global_magnitude_allocation per zoo model, shared by the two tests below.

    torch-pruning's stepping is most of this file's time: pass-through spies record the
    torch_pruning_allocation call the warm start makes and the first step on the budget
    that call hands to scale_onto_budget, instead of stepping again in each test.
    """
    _name, pruner, cost = zoo
    space = SearchSpace.from_groups(pruner.groups, round_to=2)
    projection = BudgetProjection(space, cost, {"macs": 0.5})
    calls: list = []
    stepped: list[dict[str, int]] = []

    def allocation(*args: object, **kwargs: object) -> dict[str, int] | None:
        calls.append((args, kwargs, torch_pruning_allocation(*args, **kwargs)))
        return calls[-1][2]

    def scaled(keep: dict[str, int], proj: BudgetProjection) -> dict[str, int]:
        stepped.append(dict(keep))
        return scale_onto_budget(keep, proj)

    params = count_params(pruner.model)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(heuristics, "torch_pruning_allocation", allocation)
        patch.setattr(heuristics, "scale_onto_budget", scaled)
        chosen = global_magnitude_allocation(pruner, projection)
    return _WarmStart(
        pruner, space, projection, chosen, calls, stepped, (params, count_params(pruner.model))
    )


def test_torch_pruning_allocation_is_a_point_of_the_space_on_the_budget(warm_start) -> None:
    w = warm_start
    ((args, kwargs, keep),) = w.calls  # torch_pruning_allocation ran once, with defaults
    assert args == (w.pruner, w.projection) and kwargs == {}
    if not w.projection.feasible(w.space.smallest()):  # tiny test models: budget out of reach
        assert keep is None
        assert w.chosen == global_allocation(w.pruner.scores, w.projection)
        return
    assert keep is not None  # torch-pruning steps every layer type we accept
    assert w.chosen == keep
    assert w.projection.feasible(keep)
    assert _allowed(w.space, keep)
    assert w.params[1] == w.params[0]  # torch-pruning pruned a copy


def test_torch_pruning_allocation_is_scaled_onto_the_budget(warm_start) -> None:
    w = warm_start
    space, projection = w.space, w.projection
    ((_, _, result),) = w.calls
    if result is None:  # tiny test models: budget out of reach
        assert not projection.feasible(space.smallest())
        return
    (stepped,) = w.stepped  # the first step on the budget, as torch-pruning left it
    keep = scale_onto_budget(stepped, projection)
    assert keep == result  # what the default onto_budget=True returned
    assert projection.feasible(keep)
    assert _allowed(space, keep)
    assert all(keep[n] >= stepped[n] for n in stepped)  # shares scaled up, none cut
    room = {  # groups that could still take one more step within the budget
        g.name
        for g in space.groups
        if keep[g.name] < g.channels
        and projection.feasible({**keep, g.name: keep[g.name] + space.step(g)})
    }
    full = projection.feasible({g.name: g.channels for g in space.groups})
    assert full or len(room) < len(space.groups)  # the projection spent the slack


def test_torch_pruning_allocation_fills_the_resnet56_budget(monkeypatch) -> None:
    torch.manual_seed(0)
    pruner = Pruner(_model("resnet56"), torch.randn(1, 3, 32, 32))
    cost = WidthCost(pruner, (3, 32, 32))
    space = SearchSpace.from_groups(pruner.groups, round_to=2)
    projection = BudgetProjection(space, cost, {"macs": 0.25})
    steps = []  # the first step on the budget, as the default call hands it to the scaling
    monkeypatch.setattr(
        heuristics,
        "scale_onto_budget",
        lambda keep, proj: steps.append(dict(keep)) or scale_onto_budget(keep, proj),
    )
    keep = torch_pruning_allocation(pruner, projection)  # steps torch-pruning once
    (stepped,) = steps
    assert keep is not None
    assert cost.ratios(stepped)["macs"] < 0.2  # seed 0: the first step on the budget overshoots
    assert 0.245 <= cost.ratios(keep)["macs"] <= 0.25


def test_torch_pruning_allocation_removes_weak_filters_first() -> None:
    torch.manual_seed(0)
    model = create_model("vgg16", num_classes=10, width_mult=0.25).eval()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    weak = convs[6]  # a 64-filter conv of the third stage
    half = weak.out_channels // 2
    with torch.no_grad():
        weak.weight[:half] *= 1e-3
    pruner = Pruner(model, torch.randn(1, 3, 32, 32))
    space = SearchSpace.from_groups(pruner.groups, round_to=2)
    projection = BudgetProjection(space, WidthCost(pruner, (3, 32, 32)), {"macs": 0.8})
    keep = torch_pruning_allocation(pruner, projection)
    assert keep is not None
    name = next(n for n, m in model.named_modules() if m is weak)
    assert keep[name] <= weak.out_channels - half  # its weak half went before anything else
    assert space.uniform(0.8)[name] > weak.out_channels - half


def test_global_warm_start_falls_back_when_torch_pruning_fails(monkeypatch, caplog) -> None:
    pruner = Pruner(_model("vgg11"), torch.randn(1, 3, 32, 32))
    space = SearchSpace.from_groups(pruner.groups)
    projection = BudgetProjection(space, WidthCost(pruner, (3, 32, 32)), {"macs": 0.5})

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("unsupported layer")

    monkeypatch.setattr(heuristics.tp.pruner, "MetaPruner", broken)
    with caplog.at_level("WARNING"):
        keep = global_magnitude_allocation(pruner, projection)
    one_shot = global_allocation(pruner.scores, projection)
    assert keep == scale_onto_budget(one_shot, projection)  # also scaled onto the budget
    assert projection.feasible(keep)
    assert all(keep[n] >= one_shot[n] for n in one_shot)
    assert "unsupported layer" in caplog.text


def test_scaling_grows_step_by_step_where_the_grown_projection_misses_the_budget(
    monkeypatch,
) -> None:
    pruner = Pruner(_model("vgg11"), torch.randn(1, 3, 32, 32))
    space = SearchSpace.from_groups(pruner.groups, round_to=2)
    projection = BudgetProjection(space, WidthCost(pruner, (3, 32, 32)), {"macs": 0.5})
    keep = space.uniform(0.3)
    assert projection.feasible(keep)
    first, *rest = space.groups
    # a projection that cuts one group and widens the others: grown to it, keep misses
    shares = {first.name: space.min_ratio, **{g.name: 1.0 for g in rest}}
    target = {g.name: space.count(g, shares[g.name]) for g in space.groups}
    monkeypatch.setattr(projection, "project", lambda alloc: target)
    assert not projection.feasible({n: max(keep[n], target[n]) for n in keep})
    scaled = scale_onto_budget(keep, projection)
    assert projection.feasible(scaled)
    assert _allowed(space, scaled)
    assert all(scaled[n] >= keep[n] for n in keep)  # nothing cut
    assert scaled[first.name] == keep[first.name]  # above its share: not grown
    for g in rest:  # every group below its share took steps until the budget stopped it
        grown = {**scaled, g.name: scaled[g.name] + space.step(g)}
        assert scaled[g.name] == g.channels or not projection.feasible(grown)
    assert projection.cost.ratios(scaled)["macs"] > projection.cost.ratios(keep)["macs"]


def test_stage_clusters_tie_groups_of_one_stage() -> None:
    for name, expected in [("vgg16", 5), ("resnet56", 6)]:
        pruner = _pruner(name)  # the zoo's
        space = SearchSpace.from_groups(pruner.groups)
        cost = WidthCost(pruner, (3, 32, 32))  # probes every group: built once
        clusters = cluster_groups(space, cost, "stage")
        assert len(clusters) == expected
        assert sorted(n for names in clusters.values() for n in names) == sorted(
            g.name for g in pruner.groups
        )
        assert len(cluster_groups(space, cost, "none")) == len(pruner.groups)


WARM_PAIR = ("uniform", "global")


def _search(tmp_path, name: str, **kw):
    evaluator = tiny_evaluator(finetune_steps=2)
    cfg = SearchConfig(objective=ObjectiveConfig(max_macs=0.5), **kw)
    space = make_space(evaluator.pruner, (1, 8, 8), cfg)
    assert isinstance(space, AllocationSpace)
    starts = warm_starts(evaluator.pruner, space)
    storage = f"sqlite:///{tmp_path / name}.db"
    return run_search(evaluator, space, cfg, storage=storage, warm_starts=starts), storage, cfg


def test_warm_starts_come_first_and_every_trial_is_on_the_budget(tmp_path) -> None:
    result, storage, cfg = _search(tmp_path, "a", sampler="gp", trials=8, seed=1)
    study = optuna.load_study(study_name=cfg.study_name, storage=storage)
    names = [t.user_attrs.get("warm_start") for t in study.trials]
    warm = sum(n is not None for n in names)
    assert names[0] == "uniform" and warm >= 2
    assert None not in names[:warm] and names[warm:] == [None] * (8 - warm)
    assert all(h["ratios"]["macs"] <= 0.5 for h in result.history)
    assert min(h["ratios"]["macs"] for h in result.history) > 0.35
    assert result.selection["chosen"] == result.best_trial


def test_budget_search_is_reproducible_and_resumable(tmp_path) -> None:
    first, _, _ = _search(tmp_path, "a", sampler="gp", trials=6, seed=2)
    second, storage, cfg = _search(tmp_path, "b", sampler="gp", trials=6, seed=2)
    assert [h["keep"] for h in first.history] == [h["keep"] for h in second.history]
    assert first.spec.keep == second.spec.keep
    evaluator = tiny_evaluator(finetune_steps=2)
    more = SearchConfig(objective=ObjectiveConfig(max_macs=0.5), sampler="gp", trials=8, seed=2)
    space = make_space(evaluator.pruner, (1, 8, 8), more)
    resumed = run_search(evaluator, space, more, storage=storage, resume=True)
    assert resumed.trials == 8
    assert [h["keep"] for h in resumed.history[:6]] == [h["keep"] for h in second.history]


def test_weighted_objective_falls_back_to_the_free_space() -> None:
    evaluator = tiny_evaluator(finetune_steps=2)
    cfg = SearchConfig(objective=ObjectiveConfig(kind="weighted", w_macs=0.5))
    assert isinstance(make_space(evaluator.pruner, (1, 8, 8), cfg), SearchSpace)


class _NoisyEvaluator:
    """Wraps a real evaluator; scores are a fixed function of the kept widths plus noise."""

    def __init__(self, inner: CandidateEvaluator, uniform: dict, bonus: float, noise: float):
        self.inner, self.uniform, self.bonus, self.noise = inner, uniform, bonus, noise
        self.pruner = inner.pruner

    def costs(self, keep):
        return self.inner.costs(keep)

    def __call__(self, keep, *, seed=None):
        real = self.inner(keep)
        uniform = dict(keep) == self.uniform
        first = seed is None or seed == 0
        acc = 0.5 if uniform else 0.5 + self.bonus
        acc += self.noise if first else -self.noise
        return type(real)(acc, real.cost, real.ratios)


@pytest.mark.parametrize(
    ("bonus", "noise", "keeps_heuristic"), [(0.01, 0.02, True), (0.05, 0.0, False)]
)
def test_final_choice_keeps_the_warm_start_unless_beaten_by_more_than_the_noise(
    tmp_path, bonus: float, noise: float, keeps_heuristic: bool
) -> None:
    inner = tiny_evaluator(finetune_steps=2)
    cfg = SearchConfig(objective=ObjectiveConfig(max_macs=0.5), sampler="random", trials=5)
    space = make_space(inner.pruner, (1, 8, 8), cfg)
    assert isinstance(space, AllocationSpace)
    evaluator = _NoisyEvaluator(inner, space.keep_for(space.uniform_params()), bonus, noise)
    result = run_search(
        evaluator,  # type: ignore[arg-type]
        space,
        cfg,
        storage=f"sqlite:///{tmp_path / 's'}.db",
        warm_starts={"uniform": WarmStart(space.uniform_params(), evaluator.uniform)},
    )
    chosen = result.selection["scores"][str(result.best_trial)]
    assert (chosen["warm_start"] == "uniform") == keeps_heuristic
    assert result.selection["noise"] == pytest.approx(2 * noise)


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_resume_never_repeats_the_warm_starts(
    tmp_path, backend: str, request: pytest.FixtureRequest
) -> None:
    evaluator = tiny_evaluator()
    objective = ObjectiveConfig(max_macs=0.5)
    name = f"warm-{backend}-{tmp_path.name}"  # one database serves the whole session
    settings = {"objective": objective, "sampler": "random", "seed": 0, "rescore": 0}
    first = SearchConfig(trials=2, study_name=name, **settings)
    space = make_space(evaluator.pruner, (1, 8, 8), first)
    assert isinstance(space, AllocationSpace)
    starts = {n: s for n, s in warm_starts(evaluator.pruner, space).items() if n in WARM_PAIR}
    assert len(starts) == 2
    if backend == "sqlite":
        storage = f"sqlite:///{tmp_path / 'warm'}.db"
    else:
        storage = request.getfixturevalue("postgres_url")
    run_search(evaluator, space, first, storage=storage, warm_starts=starts)
    calls = []

    def again() -> dict[str, WarmStart]:
        calls.append(1)
        return starts

    more = SearchConfig(trials=4, study_name=name, **settings)
    resumed = run_search(evaluator, space, more, storage=storage, resume=True, warm_starts=again)
    assert resumed.trials == 4
    study = optuna.load_study(study_name=more.study_name, storage=storage)
    names = [t.user_attrs.get("warm_start") for t in study.trials]
    assert sorted(n for n in names if n) == sorted(starts) and not calls
