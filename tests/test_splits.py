"""Which data each choice and each reported number comes from (issue 26, class 1).

The docs promise: the hand-in's sharpening factor and the best epoch are chosen on valid, and every
number in metrics/test.json is measured on test (the factor in it being the one chosen on valid).
Each test changes only the other split and requires the choice or number to stay, then changes the
promised split and requires it to move.
"""

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from repo_helpers import mark_project
from small_model import TRAIN_IMAGES, VALID_IMAGES

from commands import handin as handin_stage
from mnist_dvc import handin, paths, training
from mnist_dvc.atomic import torch_save
from mnist_dvc.cli import run_stage
from mnist_dvc.device import FP32
from mnist_dvc.digits import Digits, save_digits
from mnist_dvc.inference import logits_of
from mnist_dvc.model import MyConvNet
from stages import evaluate as evaluate_stage

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
# Keys of metrics/test.json chosen on valid; every other key is a number measured on test.
CHOSEN_ON_VALID = {"handin_factor"}


def scrambled(digits: Digits) -> Digits:
    """The same images, every label moved to the next digit: any accuracy-like number moves."""
    return Digits(digits.images, (digits.labels + 1) % 10)


@pytest.fixture(scope="module")
def model_and_splits(small_model, mnist_train):
    """The session's small model, trained one epoch with the default label smoothing (so its
    sharpening factor is above 1), and disjoint valid, other-valid and test sets."""
    valid = small_model.valid
    test = small_model.test.take(torch.arange(1000))
    model = MyConvNet()
    model.load_state_dict(torch.load(small_model.weights, weights_only=True))
    model.eval()
    # Other valid images with the same factor, as the "only valid changed" case needs: the first
    # such block of 1,000 (which one depends on the CPU's float rounding), else valid reversed.
    factor = handin.choose_factor(logits_of(model, valid), valid.labels)
    after = TRAIN_IMAGES + VALID_IMAGES  # training digits neither trained on nor in valid
    blocks = (mnist_train.take(torch.arange(a, a + 1000)) for a in range(after, after + 6000, 1000))
    same = [b for b in blocks if handin.choose_factor(logits_of(model, b), b.labels) == factor]
    other_valid = same[0] if same else valid.take(torch.arange(len(valid) - 1, -1, -1))
    return model, valid, other_valid, test


def graded(model, valid: Digits, test: Digits) -> dict:
    return handin.grade((logits_of(model, valid), valid.labels), (logits_of(model, test), test.labels))


@pytest.mark.slow
def test_handin_factor_is_chosen_on_valid_only(model_and_splits):
    """Bug caught: the factor chosen on test (choose_factor(*test) in grade), or on both splits."""
    model, valid, _, test = model_and_splits
    base = graded(model, valid, test)
    assert base["factor"] > 1, "the case needs a factor above 1 (label smoothing)"
    assert graded(model, valid, scrambled(test))["factor"] == base["factor"]
    assert graded(model, scrambled(valid), test)["factor"] != base["factor"]


def _project(root, model, valid: Digits, test: Digits):
    """A project folder as split and train leave it: params.yaml, models/model.pt, valid and test."""
    if root.exists():
        shutil.rmtree(root)
    mark_project(root)  # dvc.yaml and params.yaml: the commands read this project, not the clone
    torch_save(model.state_dict(), root / paths.MODEL)
    save_digits(valid, root / paths.prepared("valid"))
    save_digits(test, root / paths.prepared("test"))
    return root


def _evaluate(monkeypatch, root) -> dict:
    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, "argv", ["stages.evaluate"])
    run_stage(evaluate_stage.main)
    return json.loads((root / paths.TEST_METRICS).read_text())


def _handin_factor(monkeypatch, capsys, root) -> float:
    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, "argv", ["commands.handin", "21000000", "zhangsan"])
    capsys.readouterr()
    run_stage(handin_stage.main)
    out = capsys.readouterr().out
    return float(out.split(" sharpened x", 1)[1].split(",", 1)[0])


@pytest.mark.slow
def test_every_test_json_number_comes_from_test_and_the_factor_from_valid(
        model_and_splits, tmp_path, monkeypatch, capsys):
    """The evaluate stage and the hand-in command on the same model with one split changed at a
    time. Iterates over whatever keys metrics/test.json holds: a key added later is held to the
    same rule (measured on test) unless it is listed in CHOSEN_ON_VALID.

    Bugs caught: a graded metric (or the loss, the macro F1, ...) computed on valid but reported as
    test; the factor in test.json or in the hand-in chosen on test; evaluate and the hand-in
    choosing the factor from different data."""
    model, valid, other_valid, test = model_and_splits
    base = _evaluate(monkeypatch, _project(tmp_path / "base", model, valid, test))
    assert set(base) >= CHOSEN_ON_VALID and len(base) > len(CHOSEN_ON_VALID)
    measured = sorted(set(base) - CHOSEN_ON_VALID)
    assert _handin_factor(monkeypatch, capsys, tmp_path / "base") == base["handin_factor"]

    # Test changed (other images, other count, every label wrong): every measured number moves,
    # the factor stays.
    other_test = scrambled(test.take(torch.arange(700)))
    changed = _evaluate(monkeypatch, _project(tmp_path / "test", model, valid, other_test))
    assert set(changed) == set(base)
    assert {k: changed[k] for k in CHOSEN_ON_VALID} == {k: base[k] for k in CHOSEN_ON_VALID}
    stayed = [k for k in measured if changed[k] == base[k]]
    assert not stayed, f"these did not move when only test changed: {stayed}"
    assert _handin_factor(monkeypatch, capsys, tmp_path / "test") == base["handin_factor"]

    # Valid changed for other images of the same kind (the factor happens to stay): nothing moves.
    same_kind = _evaluate(monkeypatch, _project(tmp_path / "valid", model, other_valid, test))
    assert same_kind["handin_factor"] == base["handin_factor"], "the case needs the same factor"
    moved = [k for k in measured if same_kind[k] != base[k]]
    assert not moved, f"these moved when only valid changed: {moved}"
    assert other_valid.labels.tolist() != valid.labels.tolist()

    # Valid made wrong on every label: the factor moves, in test.json and in the hand-in alike.
    wrong = _evaluate(monkeypatch, _project(tmp_path / "wrong", model, scrambled(valid), test))
    assert wrong["handin_factor"] != base["handin_factor"]
    assert _handin_factor(monkeypatch, capsys, tmp_path / "wrong") == wrong["handin_factor"]
    assert all(wrong[k] == base[k] for k in measured if not k.startswith("handin_"))


@pytest.mark.slow
def test_best_epoch_is_chosen_on_valid_only(make_params, mnist_train, monkeypatch):
    """Valid and test accuracy scripted per epoch (the model still trains for real): valid peaks
    at epoch 2, test at epoch 6 (or 1). Changing only test must keep epoch 2; changing valid to
    peak at epoch 4 must move it there. Bug caught: the best epoch (or best_valid_acc) taken from
    test accuracy or test loss, or from both splits."""
    train = mnist_train.take(torch.arange(128))
    valid, test = mnist_train.take(torch.arange(128, 228)), mnist_train.take(torch.arange(228, 278))
    params = make_params(**{"train.epochs": 6, "train.patience": 6, "train.batch_size": 64,
                            "train.precision": "fp32", "train.augment": False,
                            "scheduler": "constant"})

    def best(valid_curve, test_curve):
        seen = {len(valid): 0, len(test): 0}
        curves = {len(valid): valid_curve, len(test): test_curve}

        def scripted(model, digits, group):
            accuracy = curves[len(digits)][seen[len(digits)]]
            seen[len(digits)] += 1
            return 1.0 - accuracy, accuracy  # loss falls as accuracy rises, on both splits

        monkeypatch.setattr(training, "_evaluate", scripted)
        result = training.fit(params, training.Splits(train, valid, test),
                              training.Run(CPU, FP32, progress=False))
        assert seen == {len(valid): 6, len(test): 6}
        return result.best_epoch, result.best_valid_acc

    valid_a = [0.5, 0.9, 0.6, 0.7, 0.8, 0.6]
    valid_b = [0.5, 0.6, 0.7, 0.95, 0.8, 0.6]
    test_x = [0.5, 0.6, 0.7, 0.8, 0.9, 0.99]
    test_y = [0.99, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert best(valid_a, test_x) == (2, 0.9)
    assert best(valid_a, test_y) == (2, 0.9)
    assert best(valid_b, test_x) == (4, 0.95)
