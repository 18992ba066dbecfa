"""Documented presets: params overrides, each also runnable as `dvc exp run -S key=value ...`.

None sets train.precision: it stays `auto` (bf16 where native, fp32 elsewhere).
"""

# What `dvc repro` trains: params.yaml as committed.
DEFAULTS = {}

# Fastest honest way to >= 99% test accuracy on a laptop CPU, with or without bf16: one epoch over
# 34,200 training images (the first 36,000, 5% of them for validation), batch 96 (more steps per
# image than 128: fewer images at 128 missed 99% on some seed), warm-up + cosine, no augmentation
# (it costs time and, in one epoch, accuracy). Test is the full 10,000. What it reaches, per seed
# and machine: bench/measured/2026-12-06_xeon_fast_sweep/ and bench.time_to_accuracy's records.
FAST = {
    "train.epochs": 1, "train.batch_size": 96, "train.lr": 0.005,
    "scheduler": "warmup", "warmup.epochs": 0.2, "warmup.decay": "cosine",
    "train.label_smoothing": 0.1, "train.augment": False,
    "data.train_limit": 36000, "data.valid_fraction": 0.05,
}

# Best single model: random affine augmentation, 30 epochs of warm-up + cosine (more epochs help
# while augmentation keeps the training set from being learnt by heart; records: bench/measured/).
AUGMENTED = {
    "train.epochs": 30, "train.augment": True, "train.patience": 30,
    "train.label_smoothing": 0.1, "scheduler": "warmup", "warmup.epochs": 1,
    "warmup.decay": "cosine",
}


def as_exp_run(preset: dict) -> str:
    return "dvc exp run " + " ".join(f"-S {k}={v if not isinstance(v, bool) else str(v).lower()}"
                                     for k, v in preset.items())
