"""The raw data: the four MNIST IDX files downloaded from public mirrors or copied from a local
folder, MD5-verified; or the starter files (the four .pth tensor files of the course's starter
code) copied from a local folder, checked."""

import hashlib
import os
import shutil
import urllib.request
from pathlib import Path

from mnist_dvc.atomic import atomic_dir
from mnist_dvc.errors import MnistError
from mnist_dvc.mnist import IDX_FILES, STARTER_FILES, STARTER_NAMES, source_kind

# Tried in order; the first is torchvision's primary mirror.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
LOCAL_DIR_ENV = "MNIST_LOCAL_DIR"
MAX_DOWNLOAD_BYTES = 16 * 2**20


def md5_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def _verify_md5(path: Path, name: str, origin: str) -> None:
    actual = md5_of(path)
    if actual != IDX_FILES[name]:
        raise MnistError(f"{origin} has MD5 {actual}, expected {IDX_FILES[name]}: the file is corrupt "
                         f"or not the MNIST {name}; replace it with the genuine file")


def _copy_local(local_dir: Path, name: str, dest: Path) -> None:
    source = local_dir / name
    if not source.is_file():
        raise MnistError(f"{source} is missing: put the four MNIST .gz files in {local_dir}, "
                         f"or unset {LOCAL_DIR_ENV} to download them")
    shutil.copyfile(source, dest)
    _verify_md5(dest, name, str(source))


def _download(mirrors, name: str, dest: Path, timeout: float) -> None:
    errors = []
    for mirror in mirrors:
        url = mirror + name
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                body = response.read(MAX_DOWNLOAD_BYTES + 1)
            if len(body) > MAX_DOWNLOAD_BYTES:
                raise OSError("response too large")
            dest.write_bytes(body)
            _verify_md5(dest, name, url)
            return
        except (OSError, ValueError, MnistError) as exc:  # URLError and timeouts are OSErrors
            errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
    raise MnistError(f"could not download {name} from any mirror ({'; '.join(errors)}): check the "
                     f"network, or set {LOCAL_DIR_ENV} to a folder holding the four MNIST .gz files")


def fetch(dest: str | Path, local_dir: str | Path | None = None, mirrors=MIRRORS,
          timeout: float = 30.0) -> str:
    """Fill `dest` with four checked files, from `local_dir` if given, else from the mirrors.

    `local_dir` holds either the four MNIST IDX .gz files (MD5-verified) or the starter code's four
    .pth tensor files (each loaded safely and checked, as the split stage reads them). Returns
    which: "idx" or "starter". The folder appears whole or not at all.
    """
    if local_dir is not None:
        local_dir = Path(local_dir)
        if not local_dir.is_dir():
            raise MnistError(f"{LOCAL_DIR_ENV}={local_dir} is not a folder: point it at the folder "
                             "holding the four MNIST .gz files (or the starter code's four .pth "
                             "files), or unset it to download them")
        if source_kind(local_dir) == "starter":
            # Imported here: reading .pth tensors needs torch, fetching the IDX files does not.
            from mnist_dvc.starter_files import read_starter_set

            for which in STARTER_FILES:  # every bad file fails here, named by its own path
                read_starter_set(local_dir, which)
            with atomic_dir(dest) as tmp:
                for name in STARTER_NAMES:
                    shutil.copyfile(local_dir / name, tmp / name)
            return "starter"
    with atomic_dir(dest) as tmp:
        for name in IDX_FILES:
            if local_dir is not None:
                _copy_local(local_dir, name, tmp / name)
            else:
                _download(mirrors, name, tmp / name, timeout)
    return "idx"


def local_dir_from_env() -> str | None:
    return os.environ.get(LOCAL_DIR_ENV) or None
