import sys, json, torch
sys.path.insert(0, "benchmarks")
torch.set_num_threads(1)
import torch_pruning as tp
from fashion_mnist import tp_prune
from iaprune.session import Session
from iaprune.config import RunConfig
from iaprune.pruning.spec import PruningSpec
from iaprune.pruning.surgery import apply_spec
from iaprune.train import finetune
from iaprune.train import distributed

budget = float(sys.argv[1]); variant = sys.argv[2]; ft = int(sys.argv[3])
cfg = RunConfig.from_dict(json.load(open(f".bench/cpu4/runs/resnet56_0.5_tp-global_s0/config.json" if budget==0.5 else ".bench/cpu2/runs/resnet56_0.25_tp-global_s0/config.json")))
s = Session.create(f"/tmp/gi/run2_{budget}_{variant}_{ft}", cfg, overwrite=True)
base = s.baseline().eval()
pruner = s.pruner(base)
ex = s.example_input
tpm = tp_prune(base, ex, budget, False)
mods = dict(base.named_modules()); tmods = dict(tpm.named_modules())
graph = tp.DependencyGraph().build_dependency(base, ex)
gimp = tp.importance.GroupMagnitudeImportance(p=1)
keep, ind = {}, {}
for g in pruner.groups:
    k = tmods[g.name].out_channels; keep[g.name] = k
    if variant == "tp":
        orig = mods[g.norms[0]].running_mean; new = tmods[g.norms[0]].running_mean
        ind[g.name] = sorted(int((orig - v).abs().argmin()) for v in new)
    elif variant == "gi":
        grp = graph.get_pruning_group(mods[g.name], tp.prune_conv_out_channels, list(range(g.channels)))
        ind[g.name] = sorted(gimp(grp).topk(k).indices.tolist())
    else:
        ind[g.name] = sorted(g.top_indices(pruner.scores[g.name], k))
spec = PruningSpec(keep=keep, original=pruner.original, kept_indices=ind)
pruned = apply_spec(base, ex, spec)
torch.manual_seed(ft)
finetune(pruned, distributed.train_loader(s.loaders["train"], s.dist, seed=ft), s.loaders["val"], cfg.finetune)
print("RESULT", budget, variant, ft, s.test(pruned)["top1"], flush=True)
