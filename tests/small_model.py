"""A small model trained for real, for the tests that need one (hand-in, grade, predict, serve, the
page, the split and model tests): trained once per session (conftest.py's `small_model`), copied
into each test's project."""

import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from repo_helpers import mark_project

from mnist_dvc import paths
from mnist_dvc.device import FP32
from mnist_dvc.digits import Digits, save_digits
from mnist_dvc.params import parse_params, with_overrides
from mnist_dvc.training import Run, Splits, fit


def train_small_model(default_raw: dict, train: Digits, valid: Digits, test: Digits) -> dict:
    """Best-on-valid MyConvNet weights after one fp32 epoch on `train` (batch 64, constant lr 2e-3,
    no augmentation) with the default label smoothing 0.1, so that the raw softmax is clearly
    less sure than the argmax is right: what the hand-in's sharpening is for."""
    params = parse_params(with_overrides(default_raw, {
        "train.epochs": 1, "train.batch_size": 64, "train.precision": "fp32",
        "scheduler": "constant", "train.lr": 0.002, "train.augment": False}))
    assert params.train.label_smoothing == 0.1
    return fit(params, Splits(train, valid, test), Run(torch.device("cpu"), FP32, progress=False)).best_state


@dataclass(frozen=True)
class SmallModel:
    """The session's small model (train_small_model on the first TRAIN_IMAGES training digits)
    and the digits around it. Read-only: a test that writes copies what it needs first."""

    weights: Path  # its state_dict, as the train stage writes models/model.pt
    valid: Digits  # the next 1,000 training digits: valid for its epoch and the hand-in's factor
    test: Digits  # the first 2,000 test digits


TRAIN_IMAGES = 6000  # the model: test accuracy about 0.95, expected graded score about 0.79
VALID_IMAGES = 1000
TEST_IMAGES = 2000


def small_project(root: Path, model: SmallModel, valid: Digits | None = None,
                  test: Digits | None = None) -> Path:
    """A project folder (dvc.yaml, params.yaml) as train and split leave it: a copy of the small
    model as models/model.pt, and data/prepared/{valid,test}.pt where given."""
    mark_project(root)
    (root / paths.MODEL).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model.weights, root / paths.MODEL)
    for split, digits in (("valid", valid), ("test", test)):
        if digits is not None:
            save_digits(digits, root / paths.prepared(split))
    return root
