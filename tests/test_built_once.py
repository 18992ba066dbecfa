"""conftest.built_once: a session fixture's folder built once for all pytest-xdist workers."""

import threading
import time
from types import SimpleNamespace

import pytest
from conftest import built_once


def factory(root):
    return SimpleNamespace(getbasetemp=lambda: root)


def test_built_once_while_others_wait_and_rebuilt_after_a_failed_build(tmp_path, monkeypatch):
    """Bugs caught: each worker building its own (no lock, or the check outside the lock: both
    threads would build); a worker reading the folder before the builder finished; a half-built
    folder from a failed build reused as if it were whole."""
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")  # the folder above each worker's own
    worker = tmp_path / "gw0"
    worker.mkdir()
    builds, seen = [], []

    def build(folder):
        builds.append(folder)
        time.sleep(0.3)
        (folder / "model.pt").write_text("weights")

    def worker_asks():
        seen.append((built_once(factory(worker), "thing", build) / "model.pt").read_text())

    threads = [threading.Thread(target=worker_asks) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert builds == [tmp_path / "thing"] and seen == ["weights", "weights"]

    def fails(folder):
        (folder / "half").write_text("")
        raise RuntimeError("training failed")

    with pytest.raises(RuntimeError):
        built_once(factory(worker), "other", fails)
    folder = built_once(factory(worker), "other", build)
    assert sorted(p.name for p in folder.iterdir()) == ["model.pt"]
