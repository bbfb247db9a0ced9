#!/bin/bash
# seeded, one thread per process: resnet56 50 % deterministic methods, then resnet56 25 %
# TPE / random / EagleEye (3 seeds) and tp-isomorphic, all with the new global warm start
cd "$(dirname "$0")/../../.." && . .venv/bin/activate  # the repository root
export OMP_NUM_THREADS=1
python benchmarks/fashion_mnist.py --out .bench/cpu4 --models resnet56 --budgets 0.5 \
  --methods uniform,tp-global,tp-isomorphic --seeds 0 --finetune-epochs 1 --val-batches 16 --jobs 2
python benchmarks/fashion_mnist.py --out .bench/cpu4 --models resnet56 --budgets 0.25 \
  --methods tpe,random,eagleeye,tp-isomorphic --seeds 0,1,2 --finetune-epochs 1 --val-batches 16 --jobs 2
