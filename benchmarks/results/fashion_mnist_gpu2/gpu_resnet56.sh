#!/usr/bin/env bash
# Rest of the same lease: resnet56 at 25 % MACs, 5 fine-tuning epochs, the closest methods only.
# Run from the repository root on the device, carrying .whl, .data and .bench/baseline-resnet56.*.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src IAPRUNE_NO_PROGRESS=1 PYTHONUNBUFFERED=1
W=/tmp/fm; mkdir -p $W/baseline-resnet56
cp .bench/baseline-resnet56.pt $W/baseline-resnet56/baseline.pt; cp .bench/baseline-resnet56.json $W/baseline-resnet56/baseline.json
sync_out() { cp $W/rows.jsonl $W/fashion_mnist_env.json $W/fashion_mnist_results.md $W/fashion_mnist_runs.csv $W/log.txt $OUT/ 2>/dev/null; }
(while sleep 10; do sync_out; done) &
nvidia-smi --query-gpu=name,memory.used --format=csv; python3 -c 'import torch, scipy; print(torch.__version__, scipy.__version__)'
timeout ${T:-470} python3 benchmarks/fashion_mnist.py --device cuda --out $W --data-root .data/fashion-mnist \
  --models resnet56 --budgets 0.25 --methods iaprune,tpe,random,tp-global,uniform \
  --seeds 0,1,2 --baseline-epochs 30 --finetune-epochs 5 --jobs ${JOBS:-14} > $W/log.txt 2>&1
echo "rc=$?"; tail -5 $W/log.txt
sync_out
