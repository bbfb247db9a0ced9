#!/bin/bash
# torch-pruning's warm start is now projected onto the budget (search/heuristics.py): every
# searching row (iaprune, tpe, random) is searched and fine-tuned again. Baselines and the rows
# of the non-searching methods (uniform, EagleEye, tp-global, tp-isomorphic) are copied from
# fashion_mnist_group (same baselines, same protocol). Order: iaprune first, resnet56 first.
cd "$(dirname "$0")/../../.." && . .venv/bin/activate  # the repository root
export OMP_NUM_THREADS=1
OUT=.bench/cpu10
COMMON="--finetune-epochs 1 --val-batches 16 --jobs 2"
python benchmarks/fashion_mnist.py --out $OUT --models resnet56 --budgets 0.5,0.25 --methods iaprune $COMMON
python benchmarks/fashion_mnist.py --out $OUT --models vgg16 --budgets 0.5,0.25 --methods iaprune $COMMON
python benchmarks/fashion_mnist.py --out $OUT --models resnet56 --budgets 0.5,0.25 --methods tpe,random $COMMON
# run in the next session (2026-11-27 09:05-09:30; TPE s0/s1 at 50 % resumed the searches the
# interrupted run had finished, so their rows record ~0 s of search time)
python benchmarks/fashion_mnist.py --out $OUT --models vgg16 --budgets 0.5,0.25 --methods tpe,random $COMMON
