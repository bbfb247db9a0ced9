#!/bin/bash
# new default (torch-pruning global warm start): vgg16 iaprune rows (jobs 1 while cpu4's
# resnet56 25 % seed 2 runs), then resnet56 50 % iaprune in .bench/cpu4 with 2 jobs
cd "$(dirname "$0")/../../.." && . .venv/bin/activate  # the repository root
python benchmarks/fashion_mnist.py --out .bench/cpu5 --models vgg16 --budgets 0.25,0.5 \
  --methods iaprune --seeds 0,1,2 --finetune-epochs 1 --val-batches 16 --jobs 1
while pgrep -f "fashion_mnist.py --out .bench/cpu4" > /dev/null; do sleep 10; done
python benchmarks/fashion_mnist.py --out .bench/cpu4 --models resnet56 --budgets 0.5 \
  --methods iaprune --seeds 0,1,2 --finetune-epochs 1 --val-batches 16 --jobs 2
