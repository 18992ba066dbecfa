"""Where each stage reads and writes, relative to the project root (dvc.yaml lists the same)."""

from pathlib import Path

PARAMS = Path("params.yaml")
DVC_YAML = Path("dvc.yaml")  # the stages and every output they declare
DVC_LOCK = Path("dvc.lock")
RAW = Path("data/raw")
PREPARED = Path("data/prepared")
MODEL = Path("models/model.pt")
# Not a DVC output: DVC would delete it before rerunning train, and it must survive a kill.
CHECKPOINT = Path("checkpoints/train.pt")
METRICS = Path("metrics")
TRAIN_METRICS = METRICS / "train.json"
TIMING = METRICS / "timing.json"
HISTORY = METRICS / "history.csv"
TEST_METRICS = METRICS / "test.json"
CLASSES = METRICS / "classes.csv"
PREDICTIONS = METRICS / "predictions.csv"
CALIBRATION = METRICS / "calibration.csv"
FIGURES = Path("figures")
CURVES = FIGURES / "curves.png"
CONFUSION = FIGURES / "confusion.png"
MISCLASSIFIED = FIGURES / "misclassified.png"
RELIABILITY = FIGURES / "reliability.png"
REPORTS = Path("reports")
RUN_REPORT = REPORTS / "run.md"


def prepared(split: str) -> Path:
    return PREPARED / f"{split}.pt"
