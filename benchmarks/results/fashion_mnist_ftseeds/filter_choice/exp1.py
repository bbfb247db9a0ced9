import sys, json, torch, copy
sys.path.insert(0, "benchmarks")
torch.set_num_threads(1)
import torch_pruning as tp
from fashion_mnist import tp_prune
from iaprune.session import Session
from iaprune.config import RunConfig
from iaprune.pruning.spec import PruningSpec

budget = float(sys.argv[1]); variant = sys.argv[2]
cfg = RunConfig.from_dict(json.load(open(f".bench/cpu4/runs/resnet56_{budget}_tp-global_s0/config.json" if budget==0.5 else ".bench/cpu2/runs/resnet56_0.25_tp-global_s0/config.json")))
s = Session.create(f"/tmp/gi/run_{budget}_{variant}", cfg, overwrite=True)
base = s.baseline().eval()
pruner = s.pruner(base)
ex = s.example_input
tpm = tp_prune(base, ex, budget, False)
mods = dict(base.named_modules()); tmods = dict(tpm.named_modules())
graph = tp.DependencyGraph().build_dependency(base, ex)
gimp = tp.importance.GroupMagnitudeImportance(p=1)
keep, idx_tp, idx_gi, idx_l1 = {}, {}, {}, {}
for g in pruner.groups:
    k = tmods[g.name].out_channels; keep[g.name] = k
    bn = g.norms[0]
    orig = mods[bn].running_mean; new = tmods[bn].running_mean
    idx_tp[g.name] = sorted(int((orig - v).abs().argmin()) for v in new)
    grp = graph.get_pruning_group(mods[g.name], tp.prune_conv_out_channels, list(range(g.channels)))
    sc = gimp(grp)
    idx_gi[g.name] = sorted(sc.topk(k).indices.tolist())
    idx_l1[g.name] = sorted(g.top_indices(pruner.scores[g.name], k))
    print(g.name, g.channels, k, "tp==gi", idx_tp[g.name]==idx_gi[g.name], "tp==l1", idx_tp[g.name]==idx_l1[g.name], flush=True)
ind = {"tp": idx_tp, "gi": idx_gi, "l1": idx_l1}[variant]
spec = PruningSpec(keep=keep, original=pruner.original, kept_indices=ind)
pruned, _ = s.prune_and_finetune(base, spec)
print("RESULT", budget, variant, s.test(pruned)["top1"], flush=True)
