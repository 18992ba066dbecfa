import hashlib
import http.server
import threading
from functools import partial
from pathlib import Path

import pytest
import torch

from mnist_dvc import download, find_mnist, mnist
from mnist_dvc.errors import MnistError


def test_fetch_from_local_folder_verifies_md5(tmp_path, mnist_dir):
    dest = tmp_path / "raw"
    download.fetch(dest, local_dir=mnist_dir)
    assert sorted(p.name for p in dest.iterdir()) == sorted(mnist.IDX_FILES)
    for name, md5 in mnist.IDX_FILES.items():
        assert hashlib.md5((dest / name).read_bytes()).hexdigest() == md5


def _partial_mirror(tmp_path, mnist_dir, corrupt=None, drop=None) -> Path:
    folder = tmp_path / "mirror"
    folder.mkdir()
    for name in mnist.IDX_FILES:
        if name == drop:
            continue
        content = (mnist_dir / name).read_bytes()
        (folder / name).write_bytes(content + b"x" if name == corrupt else content)
    return folder


def test_fetch_local_wrong_md5_leaves_nothing(tmp_path, mnist_dir):
    mirror = _partial_mirror(tmp_path, mnist_dir, corrupt="t10k-labels-idx1-ubyte.gz")
    dest = tmp_path / "raw"
    with pytest.raises(MnistError, match="t10k-labels-idx1-ubyte.gz has MD5 .*, expected ec29112d"):
        download.fetch(dest, local_dir=mirror)
    assert not dest.exists()
    assert list(tmp_path.glob(".raw.*")) == []


def test_fetch_local_missing_file_says_what_to_do(tmp_path, mnist_dir):
    mirror = _partial_mirror(tmp_path, mnist_dir, drop="train-labels-idx1-ubyte.gz")
    with pytest.raises(MnistError, match="train-labels-idx1-ubyte.gz is missing: put the four MNIST"):
        download.fetch(tmp_path / "raw", local_dir=mirror)
    assert not (tmp_path / "raw").exists()


def test_fetch_local_dir_not_a_folder(tmp_path):
    with pytest.raises(MnistError, match="MNIST_LOCAL_DIR=.* is not a folder"):
        download.fetch(tmp_path / "raw", local_dir=tmp_path / "nowhere")


@pytest.fixture
def http_mirror(tmp_path, mnist_dir):
    """A loopback HTTP server whose root is a folder; yields (folder, base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_fetch_downloads_skipping_dead_and_corrupt_mirrors(tmp_path, mnist_dir, http_mirror):
    folder, url = http_mirror
    (folder / "good").mkdir()
    (folder / "bad").mkdir()
    for name in mnist.IDX_FILES:
        (folder / "good" / name).write_bytes((mnist_dir / name).read_bytes())
        (folder / "bad" / name).write_bytes(b"corrupt")
    dead = "http://127.0.0.1:9/"  # the discard port: connection refused
    dest = tmp_path / "raw"
    download.fetch(dest, mirrors=(dead, url + "bad/", url + "good/"), timeout=5)
    for name, md5 in mnist.IDX_FILES.items():
        assert download.md5_of(dest / name) == md5


def test_fetch_without_network_or_local_folder_is_one_clear_error(tmp_path):
    dest = tmp_path / "raw"
    with pytest.raises(MnistError) as error:
        download.fetch(dest, mirrors=("http://127.0.0.1:9/",), timeout=2)
    message = str(error.value)
    assert message.startswith("could not download train-images-idx3-ubyte.gz from any mirror")
    assert "set MNIST_LOCAL_DIR" in message and "\n" not in message
    assert not dest.exists()


def test_fetch_says_which_source_and_copies_starter_files_verbatim(tmp_path, mnist_dir):
    """fetch returns "idx" or "starter" (the stage prints it), and the starter code's four .pth
    files land in data/raw byte for byte, nothing else. Catches fetch converting or renaming the
    starter files (split would then read something other than what the user pointed at), or
    falling back to the IDX route for a folder of starter files."""
    assert download.fetch(tmp_path / "raw_idx", local_dir=mnist_dir) == "idx"
    starter = tmp_path / "starter"
    starter.mkdir()
    for name in ("train_data.pth", "test_data.pth"):
        torch.save(torch.randint(0, 256, (12, 28, 28), dtype=torch.uint8), starter / name)
    for name in ("train_labels.pth", "test_labels.pth"):
        torch.save(torch.arange(12) % 10, starter / name)
    dest = tmp_path / "raw"
    assert download.fetch(dest, local_dir=starter) == "starter"
    assert sorted(p.name for p in dest.iterdir()) == sorted(p.name for p in starter.iterdir())
    for path in starter.iterdir():
        assert (dest / path.name).read_bytes() == path.read_bytes()


# --- find_or_download: where tests and benchmarks get MNIST ---------------------------------------

@pytest.fixture
def bare_machine(tmp_path, monkeypatch):
    """A project folder with no data/raw, no MNIST_LOCAL_DIR and an empty user cache."""
    monkeypatch.delenv(download.LOCAL_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    project = tmp_path / "machine" / "project"
    project.mkdir(parents=True)
    return project


def test_find_or_download_downloads_once_into_the_cache_then_reuses_it(bare_machine, mnist_dir,
                                                                        http_mirror):
    """Bug: tests never tried the project's own download, so `make test` failed on a connected
    machine unless `make repro` had run first; or each run downloaded again."""
    folder, url = http_mirror
    for name in mnist.IDX_FILES:
        (folder / name).write_bytes((mnist_dir / name).read_bytes())
    found = find_mnist.find_or_download(bare_machine, mirrors=(url,))
    assert found == find_mnist.user_cache_dir()
    assert all(download.md5_of(found / n) == md5 for n, md5 in mnist.IDX_FILES.items())
    # Offline now: the second call must not need the network.
    assert find_mnist.find_or_download(bare_machine, mirrors=("http://127.0.0.1:9/",)) == found


def test_find_or_download_offline_with_nothing_is_one_clear_error(bare_machine):
    with pytest.raises(MnistError) as error:
        find_mnist.find_or_download(bare_machine, mirrors=("http://127.0.0.1:9/",))
    message = str(error.value)
    assert message.startswith("no MNIST files here and the download failed")
    assert message.endswith("set MNIST_LOCAL_DIR to a folder holding the four MNIST .gz files")
    assert "\n" not in message and not find_mnist.user_cache_dir().exists()


def test_find_or_download_search_order(bare_machine, mnist_dir, monkeypatch, tmp_path):
    """$MNIST_LOCAL_DIR first, then data/raw, then the user cache; a set but incomplete
    $MNIST_LOCAL_DIR is an error, not silently replaced by another folder."""
    raw, cache = bare_machine / "data/raw", find_mnist.user_cache_dir()
    elsewhere = tmp_path / "elsewhere"
    for folder in (raw, cache, elsewhere):
        folder.mkdir(parents=True)
        for name in mnist.IDX_FILES:
            (folder / name).symlink_to(mnist_dir / name)
    assert find_mnist.find_or_download(bare_machine) == raw
    (raw / "t10k-labels-idx1-ubyte.gz").unlink()
    assert find_mnist.find_or_download(bare_machine) == cache
    monkeypatch.setenv(download.LOCAL_DIR_ENV, str(mnist_dir))
    assert find_mnist.find_or_download(bare_machine) == mnist_dir
    monkeypatch.setenv(download.LOCAL_DIR_ENV, str(raw))
    with pytest.raises(MnistError, match="does not hold the four MNIST .gz files"):
        find_mnist.find_or_download(bare_machine)
