#!/bin/bash
# torch-pruning's own global allocation as the global warm start (src/iaprune/search/heuristics.py)
cd "$(dirname "$0")/../../.." && . .venv/bin/activate  # the repository root
python benchmarks/fashion_mnist.py --out .bench/cpu4 --models resnet56 --budgets 0.25 \
  --methods iaprune --seeds 0,1,2 --finetune-epochs 1 --val-batches 16 --jobs 2
