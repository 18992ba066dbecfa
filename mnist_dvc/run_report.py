"""The run report: one Markdown page per run (what differs from the defaults, the results, the
machine, the per-class table, the figures), written by the report stage to reports/run.md."""

import os
from pathlib import Path

from mnist_dvc import paths
from mnist_dvc.errors import MnistError
from mnist_dvc.params import Params, as_dict, flatten, same_value
from mnist_dvc.results import DigitMetrics, EvaluateMetrics, Timing, TrainMetrics

RELIABILITY_CAPTION = "Reliability diagram of the raw model and the hand-in (test set)"
# Why the course's graded score differs from the argmax accuracy, beside the reliability diagram.
WHY_TWO_ACCURACIES = (
    "Each dot is a bin of test images with about the same top softmax probability, placed at that "
    "probability and the bin's accuracy: on the diagonal a model is exactly as sure as it is right, "
    "and the ECE is the dots' distance from it, weighted by the bars below. The course's grader "
    "scores the mean probability of the true label, so a model whose dots sit above the diagonal "
    "(right more often than sure, as label smoothing trains it) loses to the draw what its argmax "
    "keeps; the hand-in's last-layer factor (temperature scaling) moves its dots toward the diagonal "
    "and its graded score up toward the argmax accuracy.")
# The plot stage's figures, linked from the report with their captions.
FIGURES = {
    paths.CURVES.name: "Per-epoch loss and accuracy (test is monitoring only)",
    paths.CONFUSION.name: "Test confusion matrix",
    paths.MISCLASSIFIED.name: "Misclassified test digits, true→predicted",
    paths.RELIABILITY.name: RELIABILITY_CAPTION,
}
NOT_RECORDED = "not recorded"


def changed_params(params: Params, defaults: dict) -> list[tuple[str, object, object]]:
    """(key, this run's value, default) for every param that differs from `defaults` (params.yaml
    as committed, nested), in params.yaml order; the default is None where it has no such key."""
    known = flatten(defaults)
    return [(key, value, known.get(key)) for key, value in flatten(as_dict(params)).items()
            if key not in known or not same_value(value, known[key])]


def show(value) -> str:
    """A param value as params.yaml would spell it."""
    if value is None:
        return "(not in the committed params.yaml)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _machine(timing: Timing) -> tuple[str, str]:
    """The precision and machine lines, from the fields machine_record writes to timing.json."""
    get = lambda value: NOT_RECORDED if value is None else value  # noqa: E731  (older files lack them)
    precision = get(timing.precision)
    if timing.precision_reason is not None:
        precision += f" ({timing.precision_reason})"
    machine = (f"{get(timing.device)}: {get(timing.hardware)}; processor {get(timing.processor)}; "
               f"torch {get(timing.torch)}, {get(timing.threads)} threads")
    return precision, machine


def _when(timing: Timing) -> str:
    if timing.date_utc is None:  # timing.json from before the date and commit were recorded
        return "date and commit not recorded"
    return f"{timing.date_utc} UTC at commit {timing.git_commit or NOT_RECORDED}"


DATA_SOURCES = {"idx": "the four MNIST IDX files (MD5-checked)",
                "starter": "the starter code's four .pth tensor files (checked)"}


def render(params: Params, defaults: dict | None, train: TrainMetrics, test: EvaluateMetrics,
           timing: Timing, classes: list[DigitMetrics], figure_links: dict[str, str],
           data_source: str) -> str:
    """The report's Markdown. `defaults`: params.yaml as committed (None outside git); `train`,
    `test`, `timing`: metrics/train.json, test.json, timing.json; `classes`: the rows of
    metrics/classes.csv; `figure_links`: caption -> link; `data_source`: "idx" or "starter" (what
    data/raw holds)."""
    precision, machine = _machine(timing)
    lines = [
        "# Run report",
        "",
        "The latest `dvc repro` or `dvc exp run` in this workspace, written by the `report` stage "
        "from params.yaml and metrics/. Do not edit: the next run rewrites it.",
        "",
        "## Result",
        "",
        "| | |",
        "|---|---|",
        f"| test accuracy | **{test.test_acc:.4f}** (loss {test.test_loss:.4f}, "
        f"macro F1 {test.macro_f1:.4f}) |",
        f"| graded the course's way | {test.test_acc_graded:.4f} (expected score when a "
        "label is sampled from the softmax, as the course's grader does) |",
        f"| the hand-in, graded | {test.handin_test_acc_graded:.4f} (last layer "
        f"x{test.handin_factor:g}: `python -m commands.handin ID NAME`) |",
        f"| calibration | ECE {test.test_ece:.4f} raw, {test.handin_test_ece:.4f} hand-in; "
        f"NLL (the loss) {test.test_loss:.4f} raw, {test.handin_test_loss:.4f} hand-in "
        "(15 confidence bins; see below) |",
        f"| best epoch | {train.best_epoch} of {train.epochs_run} run "
        f"(valid accuracy {train.best_valid_acc:.4f}, loss {train.best_valid_loss:.4f}) |",
        f"| training time | {timing.train_seconds:.0f} s "
        f"({timing.seconds_per_epoch:.1f} s per epoch, per-epoch evaluation included) |",
        f"| precision | {precision} |",
        f"| machine | {machine} |",
        f"| trained | {_when(timing)}, from {DATA_SOURCES[data_source]} |",
        "",
        "## Params that differ from the committed params.yaml",
        "",
    ]
    changed = changed_params(params, defaults) if defaults is not None else []
    if defaults is None:
        lines.append("Not known: this is not a git checkout, so there is no committed params.yaml "
                     "to compare with (params.yaml holds this run's params).")
    elif changed:
        lines += ["| param | this run | committed |", "|---|---|---|"]
        lines += [f"| `{key}` | {show(value)} | {show(default)} |" for key, value, default in changed]
    else:
        lines.append("None: this run used params.yaml as committed.")
    lines += ["", "## Per-class test metrics", "",
              "| digit | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for row in classes:
        lines.append(f"| {row.digit} | {row.precision:.4f} | {row.recall:.4f} | {row.f1:.4f} | "
                     f"{row.support} |")
    figure_links = dict(figure_links)
    reliability = figure_links.pop(RELIABILITY_CAPTION, None)
    if reliability:
        lines += ["", "## Why two accuracies", "", WHY_TWO_ACCURACIES, "",
                  f"![{RELIABILITY_CAPTION}]({reliability})"]
    lines += ["", "## Figures", ""]
    for caption, link in figure_links.items():
        lines += [f"![{caption}]({link})", ""]
    return "\n".join(lines)


def figure_links(figures_dir: Path, report: Path = paths.RUN_REPORT) -> dict[str, str]:
    """Caption -> link relative to the report, for each figure; a missing figure is an error."""
    links = {}
    for name, caption in FIGURES.items():
        figure = figures_dir / name
        if not figure.is_file():
            raise MnistError(f"{figure} is missing: run the plot stage first (dvc repro plot)")
        links[caption] = Path(os.path.relpath(figure, report.parent)).as_posix()
    return links
