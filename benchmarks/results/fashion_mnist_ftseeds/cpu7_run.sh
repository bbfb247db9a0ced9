#!/bin/bash
# Rows missing from the first table: TPE and random on vgg16 at 50 %, EagleEye on resnet56 at 50 %
# (the current code: searches draw their batches from Session.batches' seeded generators).
cd "$(dirname "$0")/../../.." && . .venv/bin/activate  # the repository root
export OMP_NUM_THREADS=1
COMMON="--finetune-epochs 1 --val-batches 16 --jobs 2"
python benchmarks/fashion_mnist.py --out .bench/cpu5 --models vgg16 --budgets 0.5 \
  --methods tpe,random $COMMON
python benchmarks/fashion_mnist.py --out .bench/cpu4 --models resnet56 --budgets 0.5 \
  --methods eagleeye $COMMON
