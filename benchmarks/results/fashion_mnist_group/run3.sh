#!/bin/bash
# After run2.sh: TPE and random on vgg16 at 25 % (new cells; group_l1, the new default), seeds 0-2.
cd "$(dirname "$0")/../../.." && . .venv/bin/activate  # the repository root
export OMP_NUM_THREADS=1
while pgrep -f "cpu8/run2.sh" > /dev/null; do sleep 20; done
python benchmarks/fashion_mnist.py --out .bench/cpu8 --models vgg16 --budgets 0.25 \
  --methods tpe,random --finetune-epochs 1 --val-batches 16 --jobs 2
