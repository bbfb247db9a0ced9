"""iaprune's chosen resnet56 allocation with kept filters chosen iteratively (re-scored group L1), ft seed argv."""
import sys, json, copy, torch
torch.set_num_threads(1)
import torch_pruning as tp
from iaprune.session import Session
from iaprune.config import RunConfig
from iaprune.pruning import Pruner, PruningSpec
from iaprune.pruning.surgery import apply_spec
from iaprune.pruning.groups import build_graph
from iaprune.cost import count_macs
from iaprune.train import finetune

budget, steps, ft = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
run = f".bench/cpu4/runs/resnet56_{budget}_iaprune_s0"
cfg = RunConfig.from_dict(json.load(open(f"{run}/config.json")))
keep = json.load(open(f"{run}/search.json"))["spec"]["keep"]
s = Session.create(f"/tmp/gi/run5_{budget}_{steps}_{ft}", cfg, overwrite=True)
base = s.baseline().eval()
pr = Pruner(base, s.example_input)
model = copy.deepcopy(base).eval()
graph = build_graph(model, s.example_input)
mods = dict(model.named_modules())
imp = tp.importance.GroupMagnitudeImportance(p=1, normalizer=None)
alive = {g.name: list(range(g.channels)) for g in pr.groups}
for step in range(1, steps + 1):
    plan = {}
    for g in pr.groups:   # score every group on the model of the previous step, as torch-pruning does
        target = round(g.channels - (g.channels - keep[g.name]) * step / steps)
        n = len(alive[g.name]) - target
        if n > 0:
            grp = graph.get_pruning_group(mods[g.name], tp.prune_conv_out_channels, list(range(len(alive[g.name]))))
            plan[g.name] = sorted(imp(grp).argsort()[:n].tolist())
    for name, remove in plan.items():
        graph.get_pruning_group(mods[name], tp.prune_conv_out_channels, remove).prune()
        gone = set(remove)
        alive[name] = [a for i, a in enumerate(alive[name]) if i not in gone]
assert all(len(alive[g]) == keep[g] for g in keep)
oneshot = pr.spec(keep).kept_indices
print("differs from l1 in", sum(alive[g] != oneshot[g] for g in keep), "groups", flush=True)
spec = PruningSpec(keep=keep, original=pr.original, kept_indices=alive)
m = apply_spec(base, s.example_input, spec)
shape = tuple(s.example_input.shape[1:])
torch.manual_seed(ft)
finetune(m, s.train_loader(ft), s.loaders["val"], cfg.finetune)
print("RESULT", budget, steps, ft, round(count_macs(m, shape) / count_macs(base, shape), 4), s.test(m)["top1"], flush=True)
