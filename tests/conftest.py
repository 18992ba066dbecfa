from pathlib import Path

import pytest
import yaml

from mnist_dvc import data
from mnist_dvc.params import parse_params, with_overrides

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST files: $MNIST_LOCAL_DIR, ../shared/datasets/mnist, or data/raw."""
    found = data.first_complete_dir([data.local_dir_from_env(),
                                     ROOT.parent / "shared/datasets/mnist", ROOT / "data/raw"])
    if found is None:
        pytest.fail(f"no MNIST files found: set {data.LOCAL_DIR_ENV} to a folder with the four "
                    ".gz files (or run `dvc repro fetch` once to fill data/raw)")
    return found


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
