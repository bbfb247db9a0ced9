#!/bin/bash
# group_l1 becomes the default filter criterion: every iaprune row searched and fine-tuned again.
# Uniform and EagleEye stay on L1 (pinned in fashion_mnist.py); their rows and torch-pruning's are
# copied from fashion_mnist_ftseeds (same baselines, same protocol).
cd "$(dirname "$0")/../../.." && . .venv/bin/activate  # the repository root
export OMP_NUM_THREADS=1
COMMON="--finetune-epochs 1 --val-batches 16 --jobs 2"
python benchmarks/fashion_mnist.py --out .bench/cpu8 --models vgg16,resnet56 --budgets 0.5,0.25 \
  --methods iaprune $COMMON
