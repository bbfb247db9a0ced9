#!/bin/bash
# restarted with one thread per process (two processes share the 2 cores)
cd "$(dirname "$0")/../../.." && . .venv/bin/activate  # the repository root
OMP_NUM_THREADS=1 python benchmarks/fashion_mnist.py --out .bench/cpu5 --models vgg16 --budgets 0.25,0.5 \
  --methods iaprune --seeds 0,1,2 --finetune-epochs 1 --val-batches 16 --jobs 1
