from pathlib import Path

import pytest
import yaml

from mnist_dvc import data, find_mnist
from mnist_dvc.errors import MnistError
from mnist_dvc.params import parse_params, with_overrides

ROOT = Path(__file__).resolve().parents[1]


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


@pytest.fixture
def make_params(default_raw):
    """Params from the project's params.yaml with dotted overrides: make_params(**{"train.lr": 1})."""

    def make(**overrides):
        return parse_params(with_overrides(default_raw, overrides))

    return make
