import json

import pytest
import torch

from mnist_dvc import metrics_files
from mnist_dvc.errors import MnistError
from mnist_dvc.results import DigitMetrics, TrainMetrics


def test_confusion_matrix_counts_true_by_predicted():
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    predicted = torch.tensor([0, 1, 1, 2, 2, 0])
    counts = metrics_files.confusion_matrix(labels, predicted)
    assert counts.shape == (10, 10)
    assert counts[0, 0] == 1 and counts[0, 1] == 1 and counts[2, 0] == 1 and counts[2, 2] == 2
    assert counts.sum() == 6


def test_per_class_precision_recall_f1_and_macro():
    labels = torch.tensor([0, 0, 1, 1])
    predicted = torch.tensor([0, 1, 1, 1])
    rows = metrics_files.per_class(metrics_files.confusion_matrix(labels, predicted))
    assert rows[0] == DigitMetrics(digit=0, precision=1.0, recall=0.5, f1=pytest.approx(2 / 3), support=2)
    assert rows[1].precision == pytest.approx(2 / 3) and rows[1].recall == 1.0
    assert rows[5] == DigitMetrics(digit=5, precision=0.0, recall=0.0, f1=0.0, support=0)
    macro = metrics_files.macro(rows)
    assert macro["macro_recall"] == pytest.approx(0.15)


def test_json_and_csv_round_trip(tmp_path):
    metrics_files.write_json(tmp_path / "m.json", {"acc": 0.123456789, "epoch": 3})
    assert json.loads((tmp_path / "m.json").read_text()) == {"acc": 0.123457, "epoch": 3}
    rows = [{"epoch": 1, "loss": 0.5, "lr": 1e-05}, {"epoch": 2, "loss": 0.25, "lr": 2e-05}]
    metrics_files.write_csv(tmp_path / "h.csv", rows)
    assert metrics_files.read_csv(tmp_path / "h.csv") == rows


def test_precision_and_recall_from_a_known_confusion_matrix():
    # Bug caught: precision and recall swapped in per_class (column vs row sums of counts[true,
    # predicted]), which the symmetric-looking cases above could let through.
    counts = torch.zeros(10, 10, dtype=torch.long)
    counts[3, 3], counts[3, 8] = 6, 4   # ten true 3s: six found, four called 8
    counts[8, 8] = 5                    # five true 8s, all found
    rows = metrics_files.per_class(counts)
    assert (rows[3].precision, rows[3].recall, rows[3].support) == (1.0, 0.6, 10)
    assert rows[8].precision == pytest.approx(5 / 9) and rows[8].recall == 1.0
    assert rows[8].support == 5
    assert rows[3].f1 == pytest.approx(2 * 0.6 / 1.6)


def test_f1_is_the_harmonic_mean_whatever_precision_and_recall_are():
    # Bugs caught (mutation testing): F1 wrong where precision is not 1 (2 / p * r / (p + r)
    # agrees with 2 p r / (p + r) at p = 1, the only case checked above), or 0 where precision
    # equals recall (a test on p - r instead of p + r).
    counts = torch.zeros(10, 10, dtype=torch.long)
    counts[1, 1], counts[1, 2], counts[2, 1] = 3, 1, 1  # digit 1: p = r = 3/4
    counts[2, 2], counts[4, 2] = 2, 2                   # digit 2: p = 2/5, r = 2/3
    rows = metrics_files.per_class(counts)
    assert rows[1].f1 == pytest.approx(0.75)
    assert rows[2].f1 == pytest.approx(2 * (2 / 5) * (2 / 3) / (2 / 5 + 2 / 3))


def test_files_are_written_as_dvc_and_git_show_them(tmp_path):
    # Bugs caught (mutation testing): CSV rows ending in \r\n (csv's default: every line of
    # history.csv changed in git on the next run), and a missing file read as a traceback
    # instead of the one-line error naming it.
    metrics_files.write_csv(tmp_path / "h.csv", [{"epoch": 1, "loss": 0.5}])
    assert (tmp_path / "h.csv").read_bytes() == b"epoch,loss\n1,0.5\n"
    metrics_files.write_json(tmp_path / "m.json", {"acc": 0.5})
    assert metrics_files.read_json(tmp_path / "m.json") == {"acc": 0.5}
    for read, name in ((metrics_files.read_csv, "none.csv"), (metrics_files.read_json, "none.json")):
        with pytest.raises(MnistError, match=r"none\.(csv|json) is missing: run the stage that "
                                             r"writes it \(dvc repro\)"):
            read(tmp_path / name)


def test_a_record_survives_its_file_and_a_file_without_a_field_is_refused(tmp_path):
    """A record written as DVC's metrics JSON reads back equal (to the file's six decimals); a
    file that lacks a field is one line naming the file and the field. Bugs caught: a field
    written under another name (it would read back as missing), a missing field read as None or a
    KeyError traceback."""
    record = TrainMetrics(best_valid_acc=0.99, best_valid_loss=0.0412345678, best_epoch=3, epochs_run=7)
    metrics_files.write_record(tmp_path / "train.json", record)
    assert json.loads((tmp_path / "train.json").read_text())["best_epoch"] == 3
    back = metrics_files.read_record(tmp_path / "train.json", TrainMetrics)
    assert back == TrainMetrics(0.99, 0.041235, 3, 7)
    metrics_files.write_json(tmp_path / "old.json", {"best_valid_acc": 0.9, "best_valid_loss": 0.1,
                                                     "best_epoch": 2})
    with pytest.raises(MnistError, match=r"^\S*old\.json lacks epochs_run: it is not from this "
                                         r"project's stages; rerun dvc repro$"):
        metrics_files.read_record(tmp_path / "old.json", TrainMetrics)
