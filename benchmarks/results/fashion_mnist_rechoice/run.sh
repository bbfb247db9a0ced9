#!/bin/bash
# Every warm start scored twice in the final choice: re-derive the choice of the finished searches of
# fashion_mnist_group (.bench/cpu8), then fine-tune only the rows whose choice changed.
cd "$(dirname "$0")/../../.." && . .venv/bin/activate  # the repository root
export OMP_NUM_THREADS=1
git apply benchmarks/results/fashion_mnist_rechoice/two_scores_per_warm_start.diff  # reverted after this run
python benchmarks/results/fashion_mnist_rechoice/rechoice.py .bench/cpu8 .bench/cpu9 --jobs 2 \
  > .bench/cpu9/rechoice.jsonl
# rows.jsonl: fashion_mnist_group's rows, the changed ones marked to run again (finetune_seed None)
# (only resnet56_0.25_iaprune_s1 changed)
python benchmarks/fashion_mnist.py --out .bench/cpu9 --models resnet56 --budgets 0.25 \
  --methods iaprune --finetune-epochs 1 --val-batches 16 --jobs 2
