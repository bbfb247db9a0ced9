#!/bin/bash
# after .bench/cpu4/run3.sh: vgg16 50 % seeded deterministic methods and EagleEye, one thread each
cd "$(dirname "$0")/../../.." && . .venv/bin/activate  # the repository root
export OMP_NUM_THREADS=1
# (started at once instead of waiting for cpu4/run3.sh)
python benchmarks/fashion_mnist.py --out .bench/cpu5 --models vgg16 --budgets 0.5 \
  --methods uniform,tp-global,tp-isomorphic,eagleeye --seeds 0,1,2 --finetune-epochs 1 --val-batches 16 --jobs 2
