#!/bin/bash
# After run.sh: EagleEye on resnet56 at 50 % (missing from the table; L1, as defined), then TPE and
# random on vgg16 at 50 % with the new default filter criterion (group_l1), seeds 0-2.
cd "$(dirname "$0")/../../.." && . .venv/bin/activate  # the repository root
export OMP_NUM_THREADS=1
while pgrep -f "out .bench/cpu8 --models vgg16,resnet56" > /dev/null; do sleep 20; done
COMMON="--finetune-epochs 1 --val-batches 16 --jobs 2"
python benchmarks/fashion_mnist.py --out .bench/cpu8 --models resnet56 --budgets 0.5 \
  --methods eagleeye $COMMON
python benchmarks/fashion_mnist.py --out .bench/cpu8 --models vgg16 --budgets 0.5 \
  --methods tpe,random $COMMON
