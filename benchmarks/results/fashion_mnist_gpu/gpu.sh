#!/usr/bin/env bash
# One GPU lease: the full Fashion-MNIST benchmark (5 fine-tuning epochs) on the committed baselines.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src IAPRUNE_NO_PROGRESS=1 PYTHONUNBUFFERED=1
W=/tmp/fm; mkdir -p $W
for m in vgg16 resnet56; do
  mkdir -p $W/baseline-$m; cp .bench/baseline-$m.pt $W/baseline-$m/baseline.pt; cp .bench/baseline-$m.json $W/baseline-$m/baseline.json
done
sync_out() { cp $W/rows.jsonl $W/fashion_mnist_env.json $W/fashion_mnist_results.md $W/fashion_mnist_runs.csv $W/log.txt $OUT/ 2>/dev/null; }
(while sleep 10; do sync_out; done) &
nvidia-smi --query-gpu=name,memory.used --format=csv
timeout ${T:-470} python3 benchmarks/fashion_mnist.py --device cuda --out $W --data-root .data/fashion-mnist \
  --baseline-epochs 30 --finetune-epochs 5 --jobs ${JOBS:-12} > $W/log.txt 2>&1
echo "rc=$?"; tail -5 $W/log.txt
sync_out
