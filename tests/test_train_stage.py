"""The train stage in-process on a tiny prepared dataset: each split is used in its own role."""

import json

import pytest
import torch
from repo_helpers import TINY, write_params

from mnist_dvc import digits, inference, metrics_files, paths, training
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


def _prepare(tmp_path, monkeypatch, mnist_train, valid_script, epochs):
    """A tiny prepared dataset (valid 300 images, test 200) and params in tmp_path, and the
    stage's valid evaluations scripted: valid_script[i] is epoch i + 1's valid accuracy (an
    exception in it is raised there)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    parts = {"train": (0, 200), "valid": (200, 500), "test": (500, 700)}
    for split, (a, b) in parts.items():
        digits.save_digits(mnist_train.take(torch.arange(a, b)), paths.prepared(split))
    write_params(tmp_path, {**TINY, "train.epochs": epochs, "train.patience": epochs,
                            "train.augment": False, "train.batch_size": 50})
    seen = []

    def scripted(model, part, group):
        if len(part) != 300:
            return 1.0, 0.5  # test: a curve only
        seen.append(1)
        outcome = valid_script[len(seen) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return 1.0 - outcome, outcome

    monkeypatch.setattr(training, "_evaluate", scripted)


def test_live_record_after_a_run_whose_best_epoch_is_not_the_last(mnist_train, tmp_path,
                                                                  monkeypatch):
    """Valid accuracy scripted 0.6, 0.9, 0.7 over 3 epochs: best at epoch 2 of 3. Bug caught: the
    live train.json written with the epochs run as the best epoch (or the reverse), which a
    one-epoch run cannot tell apart; a history row missing or repeated."""
    _prepare(tmp_path, monkeypatch, mnist_train, [0.6, 0.9, 0.7], epochs=3)
    train_stage.main()
    metrics = json.loads(paths.TRAIN_METRICS.read_text())
    assert (metrics["best_epoch"], metrics["epochs_run"], metrics["best_valid_acc"]) == (2, 3, 0.9)
    history = metrics_files.parse_csv(paths.HISTORY.read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert [row["valid_acc"] for row in history] == [0.6, 0.9, 0.7]


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt(), SystemExit(1)],
                         ids=["ctrl-c", "system-exit"])
def test_an_interrupted_run_leaves_the_previous_live_metrics(mnist_train, tmp_path, monkeypatch,
                                                             interrupt):
    """Ctrl-C (or a SystemExit) in epoch 2, after epoch 1's live metrics were written: the stage
    stops with it and history.csv and train.json are the previous run's again. Bug caught: the
    restore written for ordinary exceptions only (`except Exception` lets these two through and
    leaves epoch 1 of the interrupted run as the results)."""
    _prepare(tmp_path, monkeypatch, mnist_train, [0.6, interrupt], epochs=3)
    paths.METRICS.mkdir()
    paths.HISTORY.write_text("previous history\n")
    paths.TRAIN_METRICS.write_text("previous metrics\n")
    with pytest.raises(type(interrupt)):
        train_stage.main()
    assert paths.HISTORY.read_text() == "previous history\n"
    assert paths.TRAIN_METRICS.read_text() == "previous metrics\n"
