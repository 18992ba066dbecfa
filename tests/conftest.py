import os
from pathlib import Path

import pytest
import torch
import yaml
from repo_helpers import env_with, make_repo, run
from small_model import TEST_IMAGES, TRAIN_IMAGES, VALID_IMAGES, SmallModel, train_small_model

from mnist_dvc import data, find_mnist
from mnist_dvc.atomic import torch_save
from mnist_dvc.errors import MnistError
from mnist_dvc.params import parse_params, with_overrides

ROOT = Path(__file__).resolve().parents[1]

# Under `make test` (pytest-xdist, a worker per core) each worker's torch gets its share of the
# cores, not all of them: two workers of two threads on two cores ran the fast tier slower than
# one process did (docs/testing.md, "Where the time goes").
if workers := int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0")):
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def pytest_collection_modifyitems(items):
    """The end-to-end files first: `--dist loadfile` hands files to the workers in this order, and
    the slowest of them (a minute or more each) handed out last ran alone while the other worker
    sat idle."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST files, found or downloaded the way the project does (find_mnist.find_or_download)."""
    try:
        return find_mnist.find_or_download(ROOT)
    except MnistError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def mnist_train(mnist_dir):
    return data.read_split(mnist_dir, "train")


@pytest.fixture(scope="session")
def mnist_test(mnist_dir):
    return data.read_split(mnist_dir, "t10k")


@pytest.fixture(scope="session")
def default_raw() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture(scope="session")
def small_model(tmp_path_factory, mnist_train, mnist_test, default_raw) -> SmallModel:
    """The one small trained model of the session (tests/small_model.py): trained once, on the
    first TRAIN_IMAGES training digits, for every test that needs a model that has learnt; its
    weights file is read-only (small_project copies it into a project)."""
    train = mnist_train.take(torch.arange(TRAIN_IMAGES))
    valid = mnist_train.take(torch.arange(TRAIN_IMAGES, TRAIN_IMAGES + VALID_IMAGES))
    test = mnist_test.take(torch.arange(TEST_IMAGES))
    weights = tmp_path_factory.mktemp("small_model") / "model.pt"
    torch_save(train_small_model(default_raw, train, valid, test), weights)
    weights.chmod(0o444)
    return SmallModel(weights, valid, test)


@pytest.fixture(scope="session")
def tiny_baseline(tmp_path_factory, mnist_dir) -> Path:
    """A repo (make_repo: TINY) after one `dvc repro`, its results committed as the baseline:
    built once for the e2e tests that start from it. Never changed: each works on a copy
    (repo_helpers.copy_repo), which starts up to date."""
    path = make_repo(tmp_path_factory.mktemp("tiny_baseline") / "repo")
    run(path, "dvc", "repro", env=env_with(mnist_dir))
    run(path, "git", "add", "-A")
    run(path, "git", "commit", "-qm", "baseline")
    return path


@pytest.fixture
def make_params(default_raw):
    """Params from the project's params.yaml with dotted overrides: make_params(**{"train.lr": 1})."""

    def make(**overrides):
        return parse_params(with_overrides(default_raw, overrides))

    return make
