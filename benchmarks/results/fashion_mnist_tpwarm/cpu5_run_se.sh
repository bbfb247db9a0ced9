#!/bin/bash
# vgg16 50 % seed 2 rerun with the sampling-error floor (worktree /work/wt, commit f57ecbb)
cd "$(dirname "$0")/../../.." && . .venv/bin/activate  # the repository root
export OMP_NUM_THREADS=1 PYTHONPATH=/work/wt/src
python benchmarks/fashion_mnist.py --out .bench/cpu5 --models vgg16 --budgets 0.5 \
  --methods iaprune --seeds 2 --finetune-epochs 1 --val-batches 16 --jobs 1
