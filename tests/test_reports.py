import json

import pytest
import torch

from mnist_dvc import reports


def test_confusion_matrix_counts_true_by_predicted():
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    predicted = torch.tensor([0, 1, 1, 2, 2, 0])
    counts = reports.confusion_matrix(labels, predicted)
    assert counts.shape == (10, 10)
    assert counts[0, 0] == 1 and counts[0, 1] == 1 and counts[2, 0] == 1 and counts[2, 2] == 2
    assert counts.sum() == 6


def test_per_class_precision_recall_f1_and_macro():
    labels = torch.tensor([0, 0, 1, 1])
    predicted = torch.tensor([0, 1, 1, 1])
    rows = reports.per_class(reports.confusion_matrix(labels, predicted))
    assert rows[0] == {"digit": 0, "precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert rows[1]["precision"] == pytest.approx(2 / 3) and rows[1]["recall"] == 1.0
    assert rows[5] == {"digit": 5, "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    macro = reports.macro(rows)
    assert macro["macro_recall"] == pytest.approx(0.15)


def test_json_and_csv_round_trip(tmp_path):
    reports.write_json(tmp_path / "m.json", {"acc": 0.123456789, "epoch": 3})
    assert json.loads((tmp_path / "m.json").read_text()) == {"acc": 0.123457, "epoch": 3}
    rows = [{"epoch": 1, "loss": 0.5, "lr": 1e-05}, {"epoch": 2, "loss": 0.25, "lr": 2e-05}]
    reports.write_csv(tmp_path / "h.csv", rows)
    assert reports.read_csv(tmp_path / "h.csv") == rows
