"""tp-global with round_to=2 (the granularity the other methods use on resnet56), ft seed from argv."""
import sys, json, copy, torch
sys.path.insert(0, "benchmarks")
torch.set_num_threads(1)
import torch_pruning as tp
from torch import nn
from iaprune.session import Session
from iaprune.config import RunConfig
from iaprune.cost import count_macs
from iaprune.train import finetune

budget = float(sys.argv[1]); ft = int(sys.argv[2]); rt = int(sys.argv[3])
cfg = RunConfig.from_dict(json.load(open(".bench/cpu4/runs/resnet56_0.5_tp-global_s0/config.json")))
s = Session.create(f"/tmp/gi/run3_{budget}_{ft}_{rt}", cfg, overwrite=True)
base = s.baseline().eval()
model = copy.deepcopy(base).eval()
ex = s.example_input
last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
pruner = tp.pruner.MetaPruner(model, ex, importance=tp.importance.MagnitudeImportance(p=1),
    global_pruning=True, pruning_ratio=0.95, max_pruning_ratio=0.95, iterative_steps=200,
    ignored_layers=[last], round_to=rt)
shape = tuple(ex.shape[1:]); b = count_macs(model, shape)
for _ in range(200):
    if count_macs(model, shape) / b <= budget: break
    pruner.step()
macs = count_macs(model, shape) / b
torch.manual_seed(ft)
finetune(model, s.train_loader(ft), s.loaders["val"], cfg.finetune)
print("RESULT", budget, ft, rt, round(macs, 4), s.test(model)["top1"], flush=True)
