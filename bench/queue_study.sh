#!/usr/bin/env bash
# Queue the study's experiments (docs/study.md), most informative first, as DVC experiments:
#   bash bench/queue_study.sh errata      # the seed's errata: double softmax, the seed's recipe
#   bash bench/queue_study.sh core        # 5 cells x seeds 0-2 (the baseline's seed 0 is HEAD)
#   bash bench/queue_study.sh rest        # the other 5 cells of the grid x seeds 0-2
# Then `dvc queue start -j 1`, and when runs finish: python -m commands.compare, commit
# reports/runs.csv, reports/histories.csv and reports/comparison.md.
# Run from the project root with the venv active, after `dvc repro` (the queue reuses its data).
set -euo pipefail
q() { dvc exp run --queue "$@" >/dev/null; echo "queued: $*"; }

case "${1:-}" in
errata)
  # Adam vs SGD+momentum at the seed's lr, with and without the seed's double softmax.
  q -S optimizer=adam,sgdm -S model.head=logits,softmax -S train.lr=0.0003 -S scheduler=steplr \
    -S train.label_smoothing=0
  # The seed's own recipe, 4 of its 64 epochs: batch 16, its head, no smoothing, no augmentation.
  q -n seed-recipe-4ep -S optimizer=adam -S train.lr=0.0003 -S scheduler=steplr \
    -S steplr.step_size=2 -S steplr.gamma=0.9 -S train.batch_size=16 -S model.head=softmax \
    -S train.label_smoothing=0 -S train.augment=false -S train.epochs=4
  ;;
core)
  q -S seed=1,2                                           # the baseline: adam + warmup
  q -S seed=0,1,2 -S optimizer=sgdm -S train.lr=0.05      # SGD+momentum at its own lr
  q -S seed=0,1,2 -S scheduler=steplr                     # adam + StepLR
  q -S seed=0,1,2 -S optimizer=nadam                      # nadam + warmup
  q -S seed=0,1,2 -S scheduler=constant                   # adam + constant
  ;;
rest)
  q -S seed=0,1,2 -S optimizer=sgdm                       # SGD+momentum at Adam's lr
  q -S seed=0,1,2 -S optimizer=nadam -S scheduler=steplr,constant
  q -S seed=0,1,2 -S optimizer=sgdm -S scheduler=steplr,constant
  ;;
*)
  echo "usage: bash bench/queue_study.sh errata|core|rest" >&2
  exit 2
  ;;
esac
