#!/usr/bin/env bash
# One GPU lease (15 min of device time): vgg16 at 50 % and 25 % MACs with 5 fine-tuning epochs,
# every method, seeds 0-2, today's default search, on the committed GPU-trained baseline.
# Run from the repository root on the device, carrying .whl, .data and .bench/baseline-vgg16.*.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src IAPRUNE_NO_PROGRESS=1 PYTHONUNBUFFERED=1
W=/tmp/fm; mkdir -p $W/baseline-vgg16
cp .bench/baseline-vgg16.pt $W/baseline-vgg16/baseline.pt; cp .bench/baseline-vgg16.json $W/baseline-vgg16/baseline.json
sync_out() { cp $W/rows.jsonl $W/fashion_mnist_env.json $W/fashion_mnist_results.md $W/fashion_mnist_runs.csv $W/log.txt $OUT/ 2>/dev/null; }
(while sleep 10; do sync_out; done) &
nvidia-smi --query-gpu=name,memory.used --format=csv; python3 -c 'import torch, scipy; print(torch.__version__, scipy.__version__)'
timeout ${T:-470} python3 benchmarks/fashion_mnist.py --device cuda --out $W --data-root .data/fashion-mnist \
  --models vgg16 --budgets 0.5,0.25 --methods iaprune,tpe,random,eagleeye,uniform,tp-global,tp-isomorphic \
  --seeds 0,1,2 --baseline-epochs 30 --finetune-epochs 5 --jobs ${JOBS:-14} > $W/log.txt 2>&1
echo "rc=$?"; tail -5 $W/log.txt
sync_out
