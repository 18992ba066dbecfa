#!/usr/bin/env bash
# Queue the study's experiments (docs/study.md) as DVC experiments, seeds 0-2 each, most
# informative first:
#   bash bench/queue_study.sh core        # the baseline's seeds 1-2 (seed 0 is the committed run) + 4 cells
#   bash bench/queue_study.sh errata      # the seed's lr 3e-4 + StepLR, no smoothing: adam/sgdm x logits/softmax
#   bash bench/queue_study.sh rest        # the other 5 cells of the grid
#   bash bench/queue_study.sh long        # StepLR vs warm-up + cosine at 24 epochs (about 6x a default run)
# Then `nice -n 19 dvc queue start -j 1`, and as runs finish: python -m commands.compare, commit
# reports/runs.csv, reports/histories.csv and reports/comparison.md.
# Run from the project root with the venv active, after `dvc repro` (the queue reuses its data).
set -euo pipefail
q() { dvc exp run --queue "$@" >/dev/null; echo "queued: $*"; }
seeds="-S seed=0,1,2"

case "${1:-}" in
core)
  q -S seed=1,2                                           # the baseline: adam + warmup
  q $seeds -S optimizer=sgdm -S train.lr=0.05             # SGD+momentum at its own lr
  q $seeds -S scheduler=steplr                            # adam + StepLR
  q $seeds -S optimizer=nadam                             # nadam + warmup
  q $seeds -S scheduler=constant                          # adam + constant
  ;;
errata)
  # Adam vs SGD+momentum at the seed's lr and schedule, with and without the seed's double softmax.
  q $seeds -S optimizer=adam,sgdm -S model.head=logits,softmax -S train.lr=0.0003 \
    -S scheduler=steplr -S train.label_smoothing=0
  ;;
rest)
  q $seeds -S optimizer=sgdm                              # SGD+momentum at Adam's lr
  q $seeds -S optimizer=nadam -S scheduler=steplr,constant
  q $seeds -S optimizer=sgdm -S scheduler=steplr,constant
  ;;
long)
  # The seed's "StepLR is best" where it could win: a budget long enough for StepLR to decay.
  q $seeds -S scheduler=steplr,warmup -S train.epochs=24 -S train.patience=24
  ;;
*)
  echo "usage: bash bench/queue_study.sh core|errata|rest|long" >&2
  exit 2
  ;;
esac
