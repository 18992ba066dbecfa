"""mnist_dvc.atomic's promise: a write that fails part-way leaves the previous output as it was and
no temporary file beside it; a write that succeeds replaces it whole, with ordinary permissions."""

import os
import stat

import pytest
import torch

from mnist_dvc import atomic

OLD = b"the previous output, complete\n" * 50


class Crash(Exception):
    pass


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_crash_mid_write_leaves_the_previous_file(tmp_path):
    """Catches a non-atomic write (atomic_path yielding the target itself, or writing it in
    place): half the new content would replace the previous file. Also a temporary file left
    behind after the crash."""
    target = tmp_path / "out.txt"
    target.write_bytes(OLD)
    with pytest.raises(Crash), atomic.atomic_path(target) as tmp, open(tmp, "wb") as f:
        f.write(b"half of the new")
        f.flush()
        raise Crash
    assert target.read_bytes() == OLD
    assert list(tmp_path.iterdir()) == [target]


def test_torch_save_failing_part_way_leaves_the_previous_file(tmp_path, monkeypatch):
    """A torch.save that has written some bytes then fails (disk full, killed): the previous
    model file is intact, no temporary file is left. Catches torch_save writing to the target."""
    target = tmp_path / "model.pt"
    target.write_bytes(OLD)

    def save_then_fail(obj, f):
        f.write(b"PK\x03\x04 the start of an archive")
        f.flush()
        raise Crash

    monkeypatch.setattr(torch, "save", save_then_fail)
    with pytest.raises(Crash):
        atomic.torch_save({"w": torch.ones(3)}, target)
    assert target.read_bytes() == OLD
    assert list(tmp_path.iterdir()) == [target]


def test_write_text_failing_part_way_leaves_the_previous_file(tmp_path):
    """write_text with text that cannot be encoded fails after the file it writes is opened (and
    truncated): the previous file is intact, no temporary file left. Catches write_text writing to
    the target (it would be left empty)."""
    target = tmp_path / "metrics.json"
    target.write_bytes(OLD)
    with pytest.raises(UnicodeEncodeError):
        atomic.write_text(target, "x" * 100_000 + "\udcff")  # a lone surrogate: not UTF-8
    assert target.read_bytes() == OLD
    assert list(tmp_path.iterdir()) == [target]


def test_a_crash_filling_a_folder_leaves_the_previous_folder(tmp_path):
    """atomic_dir: a crash after some files are written leaves the previous folder's files, and
    only them, and no temporary folder. Catches atomic_dir yielding (or emptying) the target."""
    target = tmp_path / "figures"
    target.mkdir()
    (target / "a.png").write_bytes(OLD)
    (target / "b.png").write_bytes(OLD[::-1])
    with pytest.raises(Crash), atomic.atomic_dir(target) as tmp:
        (tmp / "a.png").write_bytes(b"new")
        (tmp / "c.png").write_bytes(b"new")
        raise Crash
    assert sorted(p.name for p in target.iterdir()) == ["a.png", "b.png"]
    assert (target / "a.png").read_bytes() == OLD and (target / "b.png").read_bytes() == OLD[::-1]
    assert list(tmp_path.iterdir()) == [target]


def test_success_replaces_the_content_with_ordinary_permissions(tmp_path, umask_022):
    """Each writer replaces the previous content whole and leaves an ordinary file (0644 under
    umask 022), not mkstemp's private 0600, and a 0755 folder, not mkdtemp's 0700; nothing else is
    left beside them. Catches a lost chmod (outputs unreadable to others) or a rename that
    never happens (the old content stays)."""
    text, model, folder = tmp_path / "t.txt", tmp_path / "m.pt", tmp_path / "figures"
    for path in (text, model):
        path.write_bytes(OLD)
    folder.mkdir()
    (folder / "old.png").write_bytes(OLD)

    atomic.write_text(text, "new text\n")
    atomic.torch_save({"w": torch.arange(4)}, model)
    with atomic.atomic_path(tmp_path / "new.bin") as tmp:
        tmp.write_bytes(b"fresh")
    with atomic.atomic_dir(folder) as tmp:
        (tmp / "new.png").write_bytes(b"png")

    assert text.read_text() == "new text\n"
    assert torch.equal(torch.load(model, weights_only=True)["w"], torch.arange(4))
    assert (tmp_path / "new.bin").read_bytes() == b"fresh"
    assert [p.name for p in folder.iterdir()] == ["new.png"]
    assert (folder / "new.png").read_bytes() == b"png"
    assert [mode(p) for p in (text, model, tmp_path / "new.bin")] == [0o644] * 3
    assert mode(folder) == 0o755
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figures", "m.pt", "new.bin", "t.txt"]


def test_restored_on_failure_puts_back_or_removes(tmp_path):
    """Bug caught: the train stage's live metrics (rewritten every epoch) left from a run that
    then failed, in place of the previous run's results."""
    kept, new = tmp_path / "history.csv", tmp_path / "train.json"
    kept.write_text("previous\n")
    with pytest.raises(RuntimeError), atomic.restored_on_failure(kept, new):
        kept.write_text("epoch 1 of the failing run\n")
        new.write_text("{}\n")
        raise RuntimeError("NaN in epoch 2")
    assert kept.read_text() == "previous\n" and not new.exists()
    with atomic.restored_on_failure(kept):
        kept.write_text("finished\n")
    assert kept.read_text() == "finished\n"
