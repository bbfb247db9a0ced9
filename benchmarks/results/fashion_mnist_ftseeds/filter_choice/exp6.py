"""iaprune's chosen allocation (its seed-0 search) with another importance's kept filters, ft seed from argv."""
import sys, json, torch
torch.set_num_threads(1)
from iaprune.session import Session
from iaprune.config import RunConfig
from iaprune.pruning import Pruner
from iaprune.pruning.surgery import apply_spec
from iaprune.cost import count_macs
from iaprune.train import finetune

budget, imp, ft, mdl, bench = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
run = f".bench/{bench}/runs/{mdl}_{budget}_iaprune_s0"
cfg = RunConfig.from_dict(json.load(open(f"{run}/config.json")))
keep = json.load(open(f"{run}/search.json"))["spec"]["keep"]
s = Session.create(f"/tmp/gi/run6_{mdl}_{budget}_{imp}_{ft}", cfg, overwrite=True)
base = s.baseline().eval()
pr = Pruner(base, s.example_input, importance=imp)
spec = pr.spec(keep)
print("keep", sorted(keep.items()), flush=True)
model = apply_spec(base, s.example_input, spec)
shape = tuple(s.example_input.shape[1:])
torch.manual_seed(ft)
finetune(model, s.train_loader(ft), s.loaders["val"], cfg.finetune)
print("RESULT", budget, imp, ft, round(count_macs(model, shape) / count_macs(base, shape), 4), s.test(model)["top1"], flush=True)
