"""The study's page and figures, from the rows of reports/runs.csv that count for the plan."""

from pathlib import Path

from mnist_dvc import compare, figures, study_plan
from mnist_dvc.atomic import write_text
from mnist_dvc.params import flatten


def write(plan: study_plan.Plan, runs: list[dict], histories: list[dict], defaults: dict,
          out: Path) -> None:
    """reports/comparison.md and the study's figures, from the counted rows only."""
    counted = list(study_plan.counted(plan, runs, defaults).values())
    flat = flatten(defaults)
    keys = list(flat)
    page = compare.study_markdown(counted, keys, flat) if counted else "No run counts yet.\n"
    write_text(out / "comparison.md", "# The study\n\n" + page)
    if counted:
        curves = compare.cell_curves(counted, histories, keys, flat)
        figures.band_overlay(curves, "valid_acc", "valid accuracy", out / "valid_accuracy.png")
        figures.band_overlay(curves, "valid_loss", "valid loss", out / "valid_loss.png")
        figures.interval_bars(compare.cell_intervals(counted, keys, flat, "test_acc"),
                              "test accuracy (argmax)", out / "test_accuracy.png")
