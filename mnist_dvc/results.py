"""What a run produces, by name: the one home of every metric key and history column.

The train and evaluate stages write metrics/*.json and *.csv from these records (metrics_files.py
does the writing and reading); the plot and report stages, compare and the study read them back
into them. Adding a metric is a field here, the line that computes it, and its test (dvc.yaml's
plots name columns: tests/test_results.py checks they are fields here).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mnist_dvc.errors import MnistError


@dataclass(frozen=True)
class Epoch:
    """One row of metrics/history.csv. Losses are plain cross-entropy whatever the training loss
    (label smoothing, softmax head), so train, valid and test compare; test is monitoring only."""

    epoch: int
    lr: float  # at the epoch's first step
    train_loss: float
    train_acc: float
    valid_loss: float
    valid_acc: float
    test_loss: float
    test_acc: float


@dataclass(frozen=True)
class TrainMetrics:
    """metrics/train.json: the epoch selected on valid, and how many epochs ran (early stopping)."""

    best_valid_acc: float
    best_valid_loss: float
    best_epoch: int
    epochs_run: int


@dataclass(frozen=True)
class EvaluateMetrics:
    """metrics/test.json, from the best-on-valid model in fp32."""

    test_acc: float  # argmax
    test_acc_graded: float  # the course's sampling grader's expected score: mean p(true label)
    handin_test_acc_graded: float  # the same for the hand-in (last layer x handin_factor)
    handin_factor: float
    test_loss: float  # cross-entropy of the raw model: its negative log-likelihood
    test_ece: float  # expected calibration error, 15 confidence bins
    handin_test_loss: float
    handin_test_ece: float
    macro_precision: float
    macro_recall: float
    macro_f1: float


@dataclass(frozen=True)
class DigitMetrics:
    """One row of metrics/classes.csv: one digit's test precision, recall, F1 (0 where undefined)
    and support (its number of test images)."""

    digit: int
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Prediction:
    """One row of metrics/predictions.csv: a test image's true digit and the argmax's."""

    actual: int
    predicted: int


@dataclass(frozen=True)
class Timing:
    """metrics/timing.json: the training loop's wall time and where, when and from what it ran.
    Files from before a field existed lack it: None (the report says "not recorded")."""

    train_seconds: float
    seconds_per_epoch: float
    processes: int | None = None
    device: str | None = None
    hardware: str | None = None
    precision: str | None = None
    precision_reason: str | None = None
    processor: str | None = None
    torch: str | None = None
    threads: int | None = None
    date_utc: str | None = None
    git_commit: str | None = None


def names(record_type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(record_type))


@dataclass(frozen=True)
class RunSummary:
    """What reports/runs.csv keeps of a run beside its params and code: fields of the three
    records above, under their names there (parsed from the three files together)."""

    test_acc: float
    test_acc_graded: float
    handin_test_acc_graded: float
    handin_factor: float
    test_loss: float
    best_valid_acc: float
    best_epoch: int
    epochs_run: int
    train_seconds: float
    hardware: str | None = None
    precision: str | None = None
    date_utc: str | None = None


HISTORY_COLUMNS = names(Epoch)
RUN_CONTEXT = ("hardware", "precision", "date_utc")  # where and when it ran: text, not numbers
RUN_METRICS = tuple(name for name in names(RunSummary) if name not in RUN_CONTEXT)


# Keys older stages wrote, by their name now: runs of older code (the study's pinned commit,
# your older experiments) still read. "graded" is the grader's expected score; "sampled" now
# means only a literal run of the course's loop.
FORMER_NAMES = {"test_acc_sampled": "test_acc_graded",
                "handin_test_acc_sampled": "handin_test_acc_graded"}


def current_names(values: dict) -> dict:
    """`values` with keys older stages wrote under their name now."""
    return {FORMER_NAMES.get(k, k): v for k, v in values.items()}


def parse(record_type, values: dict, origin: str):
    """`values` (a metrics file's keys) as a `record_type`; former names read as their name now,
    keys it does not know (from older versions of the stages) are ignored; a required one
    missing is one MnistError."""
    values = current_names(values)
    fields = dataclasses.fields(record_type)
    missing = [f.name for f in fields if f.name not in values and f.default is dataclasses.MISSING]
    if missing:
        raise MnistError(f"{origin} lacks {missing[0]}: it is not from this project's stages; "
                         "rerun dvc repro")
    return record_type(**{f.name: values[f.name] for f in fields if f.name in values})
