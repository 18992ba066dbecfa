#!/usr/bin/env bash
# Wall time of a queued sweep with 1 worker (2 torch threads) vs 2 workers (1 thread each).
#   bash bench/queue_workers.sh [EPOCHS] [TRAIN_LIMIT]      (run from the project root, venv active)
# Works in a throwaway copy of the project; the sweep is 4 experiments (adam/nadam × constant/steplr).
set -euo pipefail
epochs=${1:-2}; limit=${2:-10000}
work=$(mktemp -d)
cp -r stages mnist_dvc dvc.yaml params.yaml .dvcignore .gitignore "$work"
mkdir -p "$work/.dvc" && cp .dvc/config "$work/.dvc/"
cd "$work"
git init -q && git config user.email bench@example.com && git config user.name bench
sed -i "s/^  train_limit: .*/  train_limit: $limit/; s/^  epochs: .*/  epochs: $epochs/" params.yaml
git add -A && git commit -qm base
dvc repro -q fetch split >/dev/null
git add -A && git commit -qm data
sweep() { dvc exp run --queue -S optimizer=adam,nadam -S scheduler=constant,steplr >/dev/null; }
sweep
start=$(date +%s.%N); MNIST_THREADS=2 dvc exp run --run-all -j 1 >/dev/null; end=$(date +%s.%N)
one=$(echo "$end - $start" | bc)
dvc exp remove -A -q; dvc queue remove --all -q 2>/dev/null || true
rm -rf .dvc/cache/runs  # else the run-cache would replay the first sweep
sweep
start=$(date +%s.%N); MNIST_THREADS=1 dvc exp run --run-all -j 2 >/dev/null; end=$(date +%s.%N)
two=$(echo "$end - $start" | bc)
printf 'queued sweep of 4 experiments (%s epochs, %s train images)\n' "$epochs" "$limit"
printf '  -j 1, MNIST_THREADS=2: %6.1f s\n  -j 2, MNIST_THREADS=1: %6.1f s\n' "$one" "$two"
rm -rf "$work"
