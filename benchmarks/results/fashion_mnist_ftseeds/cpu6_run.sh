#!/bin/bash
# Every method, every seed; the seed drives the search and the fine-tune (benchmarks/fashion_mnist.py).
# Searches finished in the fashion_mnist_tpwarm run (.bench/cpu4: resnet56, .bench/cpu5: vgg16) are
# reused from their run directories; only their fine-tune runs again with the row's seed.
cd "$(dirname "$0")/../../.." && . .venv/bin/activate  # the repository root
export OMP_NUM_THREADS=1
COMMON="--finetune-epochs 1 --val-batches 16 --jobs 2"
python benchmarks/fashion_mnist.py --out .bench/cpu4 --models resnet56 --budgets 0.5 \
  --methods iaprune,uniform,tp-global,tp-isomorphic $COMMON
python benchmarks/fashion_mnist.py --out .bench/cpu4 --models resnet56 --budgets 0.25 \
  --methods iaprune,uniform,tp-global,tp-isomorphic,tpe,random,eagleeye $COMMON
python benchmarks/fashion_mnist.py --out .bench/cpu5 --models vgg16 --budgets 0.5 \
  --methods iaprune,eagleeye,uniform,tp-global,tp-isomorphic $COMMON
python benchmarks/fashion_mnist.py --out .bench/cpu5 --models vgg16 --budgets 0.25 \
  --methods iaprune,uniform,tp-global,tp-isomorphic,eagleeye $COMMON
