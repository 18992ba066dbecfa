"""The train stage in-process on a tiny prepared dataset: each split is used in its own role."""

import json

import pytest
import torch
from repo_helpers import TINY, write_params

from mnist_dvc import digits, inference, metrics_files, paths
from mnist_dvc.model import MyConvNet
from stages import train as train_stage


def test_selection_and_valid_metrics_come_from_the_valid_split(mnist_train, tmp_path,
                                                                monkeypatch):
    """history.csv's valid columns and train.json's best_valid_acc are the saved model's scores on
    data/prepared/valid.pt, its test columns those on test.pt. Catches the stage passing valid and
    test to `fit` swapped (selection and early stopping would then be on the test set).

    The two files cannot be mistaken for each other: test.pt's labels are shifted by one (digit d
    labelled d + 1), so the model scores near 0 on it and well above on valid.pt."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORLD_SIZE", raising=False)  # one process, whatever launched pytest
    train = mnist_train.take(torch.arange(400))
    valid = mnist_train.take(torch.arange(400, 700))
    held = mnist_train.take(torch.arange(700, 900))
    test = digits.Digits(held.images, (held.labels + 1) % 10)
    for split, part in (("train", train), ("valid", valid), ("test", test)):
        digits.save_digits(part, paths.prepared(split))
    # 25 steps at a constant lr: about 70% on valid.pt in a few seconds
    write_params(tmp_path, {**TINY, "train.augment": False, "train.batch_size": 16,
                            "scheduler": "constant", "train.lr": 0.0005})

    train_stage.main()

    net = MyConvNet()
    net.load_state_dict(torch.load(paths.MODEL, weights_only=True))
    valid_loss, valid_acc, _ = inference.evaluate(net.eval(), valid)
    test_loss, test_acc, _ = inference.evaluate(net, test)
    assert valid_acc > 0.5 and test_acc < 0.2  # the roles are told apart by far
    # The stage scored the model in channels-last memory layout: allow a near-tie to flip.
    acc, loss = pytest.approx(valid_acc, abs=2 / len(valid)), pytest.approx(valid_loss, rel=1e-3)
    [epoch] = metrics_files.parse_csv(paths.HISTORY.read_text())
    assert (epoch["valid_acc"], epoch["valid_loss"]) == (acc, loss)
    assert epoch["test_acc"] == pytest.approx(test_acc, abs=2 / len(test))
    assert epoch["test_loss"] == pytest.approx(test_loss, rel=1e-3)
    metrics = json.loads(paths.TRAIN_METRICS.read_text())
    assert (metrics["best_valid_acc"], metrics["best_valid_loss"]) == (acc, loss)
