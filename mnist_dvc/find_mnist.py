"""Where tests, benchmarks and the grade command read MNIST from (not the pipeline: its fetch stage
reads $MNIST_LOCAL_DIR or downloads): the same search everywhere, downloading once into a user
cache."""

import os
from pathlib import Path

from mnist_dvc import paths
from mnist_dvc.data import read_split
from mnist_dvc.digits import Digits, load_digits
from mnist_dvc.download import LOCAL_DIR_ENV, MIRRORS, fetch, local_dir_from_env
from mnist_dvc.errors import MnistError
from mnist_dvc.mnist import IDX_FILES, IDX_PREFIXES


def first_complete_dir(candidates) -> Path | None:
    """The first of these folders that holds all four MNIST files (None entries are skipped)."""
    for candidate in filter(None, candidates):
        if all((Path(candidate) / name).is_file() for name in IDX_FILES):
            return Path(candidate)
    return None


def user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mnist-dvc" / "mnist"


def find_or_download(project_root: Path, mirrors=MIRRORS) -> Path:
    """The folder to read MNIST from: $MNIST_LOCAL_DIR, data/raw, the user cache; else the
    project's own download (mirrors, MD5) into the user cache, which later runs reuse."""
    explicit = local_dir_from_env()
    if explicit and first_complete_dir([explicit]) is None:
        raise MnistError(f"{LOCAL_DIR_ENV}={explicit} does not hold the four MNIST .gz files: "
                         f"fix the folder or unset {LOCAL_DIR_ENV}")
    cache = user_cache_dir()
    found = first_complete_dir([explicit, project_root / "data/raw", cache])
    if found is not None:
        return found
    try:
        fetch(cache, mirrors=mirrors)
    except MnistError as exc:
        raise MnistError(f"no MNIST files here and the download failed ({exc}): set "
                         f"{LOCAL_DIR_ENV} to a folder holding the four MNIST .gz files") from None
    return cache


def test_set(project_root: Path) -> tuple[Digits, str]:
    """The MNIST test set and where it came from: the split stage's data/prepared/test.pt where
    there is one (the images the evaluate stage scores), else the raw test files found above."""
    prepared = project_root / paths.prepared("test")
    if prepared.is_file():
        return load_digits(prepared), str(prepared)
    folder = find_or_download(project_root)
    return read_split(folder, IDX_PREFIXES["test"]), str(folder)
