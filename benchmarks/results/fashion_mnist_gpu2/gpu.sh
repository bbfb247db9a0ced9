#!/usr/bin/env bash
# One GPU lease (15 min of device time): the Fashion-MNIST benchmark with 5 fine-tuning epochs,
# today's default search, seeds 0-2, on a committed GPU-trained baseline. Run from the repository
# root on the device, carrying .whl, .data and .bench/baseline-$MODEL.*. As run (2026-11-27):
#   T=470 JOBS=14 bash gpu.sh                      # vgg16, 50 % and 25 % MACs, every method
#   T=390 JOBS=15 MODEL=resnet56 BUDGETS=0.25 METHODS=iaprune,tpe,random,tp-global,uniform bash gpu.sh
# (the second on the same warm machine, so /tmp/fm still held the vgg16 rows)
set -u
MODEL=${MODEL:-vgg16}
BUDGETS=${BUDGETS:-0.5,0.25}
METHODS=${METHODS:-iaprune,tpe,random,eagleeye,uniform,tp-global,tp-isomorphic}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src IAPRUNE_NO_PROGRESS=1 PYTHONUNBUFFERED=1
W=/tmp/fm; mkdir -p $W/baseline-$MODEL
cp .bench/baseline-$MODEL.pt $W/baseline-$MODEL/baseline.pt; cp .bench/baseline-$MODEL.json $W/baseline-$MODEL/baseline.json
sync_out() { cp $W/rows.jsonl $W/fashion_mnist_env.json $W/fashion_mnist_results.md $W/fashion_mnist_runs.csv $W/log.txt $OUT/ 2>/dev/null; }
(while sleep 10; do sync_out; done) &
nvidia-smi --query-gpu=name,memory.used --format=csv; python3 -c 'import torch, scipy; print(torch.__version__, scipy.__version__)'
timeout ${T:-470} python3 benchmarks/fashion_mnist.py --device cuda --out $W --data-root .data/fashion-mnist \
  --models $MODEL --budgets $BUDGETS --methods $METHODS \
  --seeds 0,1,2 --baseline-epochs 30 --finetune-epochs 5 --jobs ${JOBS:-14} > $W/log.txt 2>&1
echo "rc=$?"; tail -5 $W/log.txt
sync_out
