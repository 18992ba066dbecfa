"""What the figures are drawn from: the data handed to matplotlib, read back from each Figure as
it is saved, checked against the files the stages read. PNG bytes would pass with wrong data."""

import sys

import numpy as np
import pytest
import torch
from repo_helpers import write_params

from mnist_dvc import calibration, compare, figures, metrics_files, paths
from mnist_dvc.cli import run_command, run_stage
from mnist_dvc.digits import Digits, save_digits
from mnist_dvc.params import as_dict, flatten, load_params
from mnist_dvc.results import EvaluateMetrics

# Three epochs where every split and metric has its own values: a column fed in for another shows.
HISTORY = [
    {"epoch": e, "lr": 0.001, "train_loss": 0.5 / e, "train_acc": 0.80 + e / 100,
     "valid_loss": 0.4 / e, "valid_acc": 0.85 + e / 100, "test_loss": 0.45 / e,
     "test_acc": 0.83 + e / 100} for e in (1, 2, 3)]


@pytest.fixture
def saved(monkeypatch):
    """Every figure the code saves, by file name, instead of a PNG."""
    figs = {}

    def capture(fig, path):
        figs[paths.Path(path).name] = fig

    monkeypatch.setattr(figures, "save", capture)
    return figs


def lines_by_label(ax) -> dict:
    return {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}


def test_plot_stage_draws_the_history_and_the_predictions(tmp_path, monkeypatch, saved):
    """Bugs caught: a curve fed another split's or metric's column (test accuracy drawn from
    valid), the best-epoch marker from the last epoch, the confusion heatmap from transposed or
    other counts; the reliability diagram with confidence and accuracy swapped, the hand-in drawn
    from the raw model's columns, empty bins drawn as points at (0, 0), counts drawn over the
    wrong bins, or ECE labels from the wrong key; the misclassified grid showing right digits, true
    and predicted swapped in a title, or a title over another digit."""
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, {})
    metrics_files.write_csv(paths.HISTORY, HISTORY)
    metrics_files.write_json(paths.TRAIN_METRICS, {"best_epoch": 2, "best_valid_acc": 0.87,
                                                   "best_valid_loss": 0.2, "epochs_run": 3})
    actual, predicted = [0, 1, 1, 2, 2, 2], [0, 1, 2, 2, 2, 0]
    metrics_files.write_csv(paths.PREDICTIONS, [{"actual": a, "predicted": p}
                                                for a, p in zip(actual, predicted, strict=True)])
    images = torch.arange(1, 7, dtype=torch.uint8).mul(40)[:, None, None].expand(6, 28, 28)
    save_digits(Digits(images.contiguous(), torch.tensor(actual)), paths.prepared("test"))
    raw_bins, handin_bins = reliability_bins()
    metrics_files.write_record(paths.TEST_METRICS, EvaluateMetrics(
        test_acc=0.5, test_acc_graded=0.4, handin_test_acc_graded=0.45, handin_factor=3.0,
        test_loss=1.2, test_ece=0.25, handin_test_loss=1.1, handin_test_ece=0.03125,
        macro_precision=0.5, macro_recall=0.5, macro_f1=0.5))
    metrics_files.write_csv(paths.CALIBRATION, calibration.csv_rows(raw_bins, handin_bins))
    monkeypatch.setattr(sys, "argv", ["stages.plot"])
    from stages import plot

    run_stage(plot.main)

    loss_ax, acc_ax = saved["curves.png"].axes
    for ax, metric in ((loss_ax, "loss"), (acc_ax, "acc")):
        drawn = lines_by_label(ax)
        for split in ("train", "valid", "test"):
            assert drawn[split] == pytest.approx([r[f"{split}_{metric}"] for r in HISTORY], abs=1e-6), split
        marker = next(line for line in ax.get_lines() if line.get_label() == "best (epoch 2)")
        assert list(marker.get_xdata()) == [2, 2]
    heat = saved["confusion.png"].axes[0].get_images()[0].get_array()
    expected = metrics_files.confusion_matrix(torch.tensor(actual), torch.tensor(predicted))
    assert np.allclose(np.asarray(heat), expected.log1p().numpy())
    assert expected[2, 0] == 1 and expected[0, 2] == 0  # rows are the true digit

    # The wrong ones only (test images 2 and 5, each one grey level), in order, each titled
    # true→predicted above its own digit.
    grid = saved["misclassified.png"].axes[0]
    sheet = np.asarray(grid.get_images()[0].get_array())
    assert sheet.shape == (40, 320) and sorted(np.unique(sheet)) == [0, 120, 240]
    assert (sheet[12:, 2:30] == 120).all() and (sheet[12:, 34:62] == 240).all()
    assert [(t.get_text(), t.get_position()) for t in grid.texts] == [("1→2", (16, 10)),
                                                                       ("2→0", (48, 10))]

    diagram, counts = saved["reliability.png"].axes
    drawn = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
             for line in diagram.get_lines()}
    assert drawn.pop("perfectly calibrated") == ([0, 1], [0, 1])
    assert list(drawn) == ["raw model (ECE 0.2500)", "hand-in, last layer x3 (ECE 0.0312)"]
    bars = counts.patches
    for (x, y), bins, heights in zip(drawn.values(), (raw_bins, handin_bins),
                                     (bars[:calibration.BINS], bars[calibration.BINS:]), strict=True):
        shown = [b for b in bins if b.count]
        assert x == pytest.approx([b.confidence for b in shown], abs=1e-6)
        assert y == pytest.approx([b.accuracy for b in shown], abs=1e-6)
        assert [bar.get_height() for bar in heights] == [b.count for b in bins]
        assert all(b.low <= bar.get_x() and bar.get_x() + bar.get_width() <= b.high + 1e-9
                   for b, bar in zip(bins, heights, strict=True))  # each count over its own bin


def reliability_bins():
    """Raw model: 40 images at top probability ~0.73 (bin 10), 30 of them right; hand-in: the same
    images at ~0.99 (bin 14), and two right images at ~0.35 (bin 5). Values where confidence and
    accuracy differ, and bins that differ between the two models."""
    logits = torch.zeros(42, 10, dtype=torch.float64)
    logits[:40, 0] = 3.2  # e^3.2 / (e^3.2 + 9) = 0.73
    logits[40:, 0] = 1.6  # 0.35
    labels = torch.tensor([0] * 30 + [1] * 10 + [0, 0])
    raw = calibration.reliability_bins(logits[:40], labels[:40])
    return raw, calibration.reliability_bins(logits * torch.tensor([2.0] * 40 + [1.0] * 2)[:, None], labels)


def run(seed, cell, acc, valid_acc, rev):
    return {"experiment": rev, "rev": rev, "seed": seed, "optimizer": cell, "scheduler": "warmup",
            "test_acc": acc, "test_acc_graded": acc - 0.05, "handin_test_acc_graded": acc,
            "handin_factor": 4.0, "test_loss": 0.1, "best_valid_acc": valid_acc,
            "best_epoch": 3.0, "epochs_run": 3.0, "train_seconds": 10.0, "hardware": "CPU",
            "precision": "fp32"}


def test_compare_draws_cell_means_of_the_right_metric(tmp_path, monkeypatch, saved):
    """Bugs caught: the test-accuracy figure fed best_valid_acc (or one seed, not the cell's mean),
    the valid curves drawn from the test column."""
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, {})
    defaults = flatten(as_dict(load_params()))
    keys = list(defaults)
    runs = [run(0, "adam", 0.990, 0.970, "a0"), run(1, "adam", 0.994, 0.972, "a1"),
            run(0, "nadam", 0.980, 0.960, "n0")]
    runs = [{**defaults, **r} for r in runs]
    compare.write_runs(tmp_path / "in/runs.csv", runs, keys)
    shift = {"a1": 0.001}  # a1's valid accuracy is 0.001 above a0's at every epoch
    histories = [{"rev": r["rev"], **h, "valid_acc": h["valid_acc"] + shift.get(r["rev"], 0)}
                 for r in runs for h in HISTORY]
    metrics_files.write_csv(tmp_path / "in/histories.csv", histories)
    monkeypatch.setattr(sys, "argv", ["commands.compare", "--from", "in/runs.csv", "--out", "out"])
    from commands import compare as compare_command

    run_command(compare_command.main, compare_command.INTERRUPTED)

    errors = saved["test_errors.png"].axes[0]
    means = {tick.get_text(): None for tick in errors.get_yticklabels()}
    marks = [line for line in errors.get_lines() if line.get_marker() == "|"]
    for tick, mark in zip(errors.get_yticklabels(), marks, strict=True):
        means[tick.get_text()] = mark.get_xdata()[0]
    adam = next(v for label, v in means.items() if label.startswith("adam"))
    nadam = next(v for label, v in means.items() if label.startswith("nadam"))
    assert adam == pytest.approx(100 * (1 - 0.992)) and nadam == pytest.approx(100 * (1 - 0.98))
    panels = {ax.get_title(): ax for ax in saved["curves.png"].axes if ax.get_title()}
    adam_panel = next(ax for title, ax in panels.items() if title.startswith("adam"))
    blue = [list(line.get_ydata()) for line in adam_panel.get_lines() if line.get_color() == "blue"]
    assert sorted(blue) == sorted([[100 * (1 - h["valid_acc"] - shift) for h in HISTORY]
                                   for shift in (0, 0.001)])
