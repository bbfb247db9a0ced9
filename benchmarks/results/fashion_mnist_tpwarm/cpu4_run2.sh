#!/bin/bash
# new default: resnet56 50 % iaprune (1 job while .bench/cpu5 runs vgg16 on the other core)
cd "$(dirname "$0")/../../.." && . .venv/bin/activate  # the repository root
OMP_NUM_THREADS=1 python benchmarks/fashion_mnist.py --out .bench/cpu4 --models resnet56 --budgets 0.5 \
  --methods iaprune --seeds 0,1,2 --finetune-epochs 1 --val-batches 16 --jobs 1
