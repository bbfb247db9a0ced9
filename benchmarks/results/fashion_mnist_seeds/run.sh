#!/bin/bash
# Two more seeds (3 and 4) for EVERY method on the CPU protocol of fashion_mnist_fill (same
# baselines, 1 fine-tuning epoch, 16 validation batches per trial, today's default search),
# decided before any of them ran: the 3-seed means of the close settings differ by less than
# one standard deviation, so 5 seeds and paired differences (every method fine-tunes with the
# same seed) say more. vgg16 first, then resnet56 at 25 % (where iaprune lost) before 50 %; rows resume.
cd "$(dirname "$0")/../../.." && . .venv/bin/activate  # the repository root
export OMP_NUM_THREADS=1
OUT=.bench/cpu11   # baseline-vgg16/ and baseline-resnet56/ copied from .bench/cpu10
COMMON="--finetune-epochs 1 --val-batches 16 --jobs 2 --seeds 3,4"
ALL=iaprune,tpe,random,eagleeye,uniform,tp-global,tp-isomorphic
python benchmarks/fashion_mnist.py --out $OUT --models vgg16 --budgets 0.5,0.25 --methods $ALL $COMMON
python benchmarks/fashion_mnist.py --out $OUT --models resnet56 --budgets 0.25,0.5 --methods $ALL $COMMON
