import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from file_order import longest_files_first, recorded
from repo_helpers import env_with, make_repo, run
from small_model import TEST_IMAGES, TRAIN_IMAGES, VALID_IMAGES, SmallModel, train_small_model

from mnist_dvc import data, find_mnist
from mnist_dvc.atomic import torch_save
from mnist_dvc.errors import MnistError
from mnist_dvc.params import parse_params, with_overrides

ROOT = Path(__file__).resolve().parents[1]

# Under `make test` (pytest-xdist, a worker per core) each worker's torch gets its share of the
# cores, not all of them: two workers of two threads on two cores ran the fast tier slower than
# one process did (docs/testing.md, "Where the time goes"). So does every stage or command a test
# starts (MNIST_THREADS, inherited through DVC): it runs beside the other workers too. Run in one
# process, the tests start them with torch's default, whatever the shell has set.
if workers := int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0")):
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    os.environ["MNIST_THREADS"] = str(torch.get_num_threads())
else:
    os.environ.pop("MNIST_THREADS", None)


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected: the lengths of what will run
def pytest_collection_modifyitems(items):
    """The longest files first (tests/file_order.py): `--dist loadfile --no-loadscope-reorder`
    hands them to the workers in this order."""
    longest_files_first(items, recorded())


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """The folder `name`, filled by `build(folder)` once for the whole test run. A session fixture
    is otherwise built once per pytest-xdist worker: here the first worker to ask builds it while
    holding a lock, and the others wait for it and use the same folder (read-only to them)."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's folder, above each worker's own
    folder, done = shared / name, shared / f"{name}.built"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or its worker dies
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # what a worker that failed half-way left
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


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
    """The one small trained model of the session (tests/small_model.py): trained once for all
    workers (built_once), on the first TRAIN_IMAGES training digits, for every test that needs a
    model that has learnt; its weights file is read-only (small_project copies it into a project)."""
    train = mnist_train.take(torch.arange(TRAIN_IMAGES))
    valid = mnist_train.take(torch.arange(TRAIN_IMAGES, TRAIN_IMAGES + VALID_IMAGES))
    test = mnist_test.take(torch.arange(TEST_IMAGES))

    def build(folder: Path):
        torch_save(train_small_model(default_raw, train, valid, test), folder / "model.pt")
        (folder / "model.pt").chmod(0o444)

    return SmallModel(built_once(tmp_path_factory, "small_model", build) / "model.pt", valid, test)


@pytest.fixture(scope="session")
def tiny_baseline(tmp_path_factory, mnist_dir) -> Path:
    """A repo (make_repo: TINY) after one `dvc repro`, its results committed as the baseline:
    built once for all workers (built_once) for the e2e tests that start from it. Never changed:
    each works on a copy (repo_helpers.copy_repo), which starts up to date."""

    def build(folder: Path):
        path = make_repo(folder / "repo")
        run(path, "dvc", "repro", env=env_with(mnist_dir))
        run(path, "git", "add", "-A")
        run(path, "git", "commit", "-qm", "baseline")

    return built_once(tmp_path_factory, "tiny_baseline", build) / "repo"


@pytest.fixture
def make_params(default_raw):
    """Params from the project's params.yaml with dotted overrides: make_params(**{"train.lr": 1})."""

    def make(**overrides):
        return parse_params(with_overrides(default_raw, overrides))

    return make
