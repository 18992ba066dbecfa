"""Where each stage reads and writes, relative to the project root (dvc.yaml lists the same), and
which project the user commands work on."""

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


# A folder holding both is a project (the clone, or a copy of it such as a test's or a worktree).
MARKERS = (DVC_YAML, PARAMS)
# The clone this code runs from: `pip install -e .` (make's set-up) runs it from the clone itself.
CODE_ROOT = Path(__file__).resolve().parents[1]


def is_project(folder: Path) -> bool:
    return all((folder / marker).is_file() for marker in MARKERS)


def project_root(cwd: Path | None = None) -> Path:
    """The project the user commands read the model and data of: the nearest folder at or above
    the current one that is a project (`.` in its root, as DVC runs the stages), else the clone the
    code runs from, so `mnist-dvc` works from any folder."""
    cwd = (cwd or Path.cwd()).resolve()
    for folder in (cwd, *cwd.parents):
        if is_project(folder):
            return Path(".") if folder == cwd else folder
    return CODE_ROOT


TYPED_MISSING = "check the path"  # the fix for a missing file the user named (not the project's own)


def model_choice(given: Path | None, root: Path) -> tuple[Path, str]:
    """The model file a command reads (--model, else the project's) and the fix if it is missing:
    the project's own comes from `dvc repro train`; a path someone typed may be mistyped."""
    if given is None:
        return root / MODEL, f"run the train stage first (dvc repro train in {root.resolve()})"
    return given, TYPED_MISSING
