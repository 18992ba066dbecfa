#!/usr/bin/env bash
# The GPU check (issue 4), run on a CUDA machine with torch installed:
#   MNIST_LOCAL_DIR=/path/to/mnist OUT=/tmp/out bash bench/gpu_check.sh
# Throughput vs the starter code's loop, time-to-99% from cold processes, and the default train stage.
set -euo pipefail
export PYTHONUNBUFFERED=1 OUT="${OUT:-bench/results}"
mkdir -p "$OUT"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
python3 -m bench.throughput --images 32768 --repeats 3 --json "$OUT/gpu_throughput.json"
python3 -m bench.time_to_accuracy --seeds 0 1 2 --json "$OUT/gpu_time_to_accuracy.json"
work=$(mktemp -d)
cp -r stages mnist_dvc params.yaml "$work"
cd "$work"
for stage in fetch split train evaluate; do python3 -m "stages.$stage"; done
cat metrics/train.json metrics/timing.json metrics/test.json
cp metrics/train.json "$OUT/gpu_train.json"; cp metrics/timing.json "$OUT/gpu_timing.json"; cp metrics/test.json "$OUT/gpu_test.json"
# Determinism on the GPU: train again with the same params and compare the outputs byte for byte.
cp metrics/history.csv first_history.csv
python3 -m stages.train
if cmp -s first_history.csv metrics/history.csv; then echo "GPU rerun: history.csv byte-identical"
else echo "GPU rerun: history.csv differs"; diff first_history.csv metrics/history.csv || true; fi
