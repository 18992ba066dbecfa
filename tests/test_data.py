import gzip
import re
import struct
from pathlib import Path

import pytest
import torch

from mnist_dvc import data
from mnist_dvc.digits import load_digits
from mnist_dvc.errors import MnistError


def idx_bytes(array: torch.Tensor) -> bytes:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.to(torch.uint8).numpy().tobytes()


def write_gz(path: Path, raw: bytes) -> Path:
    path.write_bytes(gzip.compress(raw))
    return path


# --- IDX parsing --------------------------------------------------------------------------------

def test_parse_idx_round_trip():
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    assert torch.equal(data.parse_idx(idx_bytes(images)), images)
    labels = torch.tensor([0, 9, 3], dtype=torch.uint8)
    assert torch.equal(data.parse_idx(idx_bytes(labels)), labels)


@pytest.mark.parametrize("raw, message", [
    (b"", "truncated"),
    (b"\x00\x00\x08", "truncated"),
    (b"\x00\x00\x08\x03\x00\x00", "truncated inside its IDX header"),
    (b"\x12\x34\x08\x01" + b"\x00\x00\x00\x01" + b"\x00", "IDX magic 12340801"),
    (b"\x00\x00\x0d\x01" + b"\x00\x00\x00\x01" + b"\x00\x00\x00\x00", "IDX magic 00000d01"),
    (b"\x00\x00\x08\x00", "IDX magic 00000800"),
    (b"\x00\x00\x08\x01" + b"\x00\x00\x00\x05" + b"\x01\x02", "claims dimensions [5] (5 bytes) but holds 2"),
    (b"\x00\x00\x08\x01" + b"\x00\x00\x00\x01" + b"\x01\x02", "holds 2 bytes"),
])
def test_parse_idx_rejects_malformed(raw, message):
    with pytest.raises(MnistError, match=re.escape(message)):
        data.parse_idx(raw)


def test_absurd_header_fails_before_allocating():
    # 4 billion³ images would need exabytes: the size check must refuse it without trying.
    raw = b"\x00\x00\x08\x03" + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1) + b"\x00" * 10
    with pytest.raises(MnistError, match="but holds 10 bytes"):
        data.parse_idx(raw)


def test_read_idx_gz_refuses_decompression_bomb(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "MAX_IDX_BYTES", 1000)
    path = write_gz(tmp_path / "bomb.gz", idx_bytes(torch.zeros(2000, dtype=torch.uint8)))
    with pytest.raises(MnistError, match="decompresses to more than 1000 bytes"):
        data.read_idx_gz(path)


TRUNCATED_GZ = gzip.compress(idx_bytes(torch.randint(0, 256, (50, 28, 28), dtype=torch.uint8)))[:2000]


@pytest.mark.parametrize("content", [b"not gzip at all", TRUNCATED_GZ])
def test_read_idx_gz_rejects_broken_gzip(tmp_path, content):
    path = tmp_path / "broken.gz"
    path.write_bytes(content)
    with pytest.raises(MnistError, match="not a readable gzip file"):
        data.read_idx_gz(path)


def test_read_idx_gz_missing(tmp_path):
    with pytest.raises(MnistError, match="is missing: run the fetch stage"):
        data.read_idx_gz(tmp_path / "nope.gz")


def test_real_files_have_the_documented_counts(mnist_train, mnist_test):
    assert mnist_train.images.shape == (60000, 28, 28) and mnist_test.images.shape == (10000, 28, 28)
    assert torch.bincount(mnist_train.labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918,
                                                           6265, 5851, 5949]
    assert torch.bincount(mnist_test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028,
                                                          974, 1009]
    mean = mnist_train.images.double().div(255).mean().item()
    assert mean == pytest.approx(0.130660, abs=1e-6)


def _fake_raw_dir(tmp_path, n_train=12, n_labels=None, label_value=None, dims=(28, 28)):
    raw = tmp_path / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", 4)):
        images = torch.randint(0, 256, (n, *dims), dtype=torch.uint8)
        labels = torch.arange(n_labels if prefix == "train" and n_labels else n) % 10
        if label_value is not None:
            labels[0] = label_value
        write_gz(raw / f"{prefix}-images-idx3-ubyte.gz", idx_bytes(images))
        write_gz(raw / f"{prefix}-labels-idx1-ubyte.gz", idx_bytes(labels))
    return raw


def test_read_split_rejects_count_mismatch(tmp_path):
    raw = _fake_raw_dir(tmp_path, n_train=12, n_labels=11)
    with pytest.raises(MnistError, match="train has 12 images but 11 labels"):
        data.read_split(raw, "train")


def test_read_split_rejects_bad_labels_and_shapes(tmp_path):
    with pytest.raises(MnistError, match="labels hold the value 200"):
        data.read_split(_fake_raw_dir(tmp_path / "a", label_value=200), "train")
    with pytest.raises(MnistError, match=r"shape \[12, 28, 27\], expected \[N, 28, 28\]"):
        data.read_split(_fake_raw_dir(tmp_path / "b", dims=(28, 27)), "train")


# --- split --------------------------------------------------------------------------------------

def test_split_is_seeded_disjoint_and_complete(mnist_train):
    labels = mnist_train.labels
    train, valid = data.split_indices(labels, 0.167, stratify=False, seed=3)
    again_train, again_valid = data.split_indices(labels, 0.167, stratify=False, seed=3)
    assert torch.equal(train, again_train) and torch.equal(valid, again_valid)
    assert len(valid) == round(60000 * 0.167)
    assert len(set(train.tolist()) & set(valid.tolist())) == 0
    assert sorted(train.tolist() + valid.tolist()) == list(range(60000))
    other_train, _ = data.split_indices(labels, 0.167, stratify=False, seed=4)
    assert not torch.equal(train, other_train)


def test_stratified_split_keeps_class_proportions(mnist_train):
    labels = mnist_train.labels
    _, valid = data.split_indices(labels, 0.2, stratify=True, seed=0)
    counts, totals = torch.bincount(labels[valid], minlength=10), torch.bincount(labels)
    assert torch.all((counts - totals * 0.2).abs() <= 1)


def test_split_that_leaves_a_part_empty_is_refused():
    with pytest.raises(MnistError, match="leaves 3 train and 0 valid images"):
        data.split_indices(torch.arange(3) % 10, 0.1, stratify=False, seed=0)


def test_prepare_writes_three_tensor_files(tmp_path, mnist_dir):
    counts = data.prepare(mnist_dir, tmp_path / "prepared", 0.25, False, 0, train_limit=800,
                          test_limit=200)
    assert counts == {"train": 600, "valid": 200, "test": 200}
    train = load_digits(tmp_path / "prepared/train.pt")
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert train.images.shape == (600, 28, 28)


def test_prepare_failure_leaves_no_output(tmp_path):
    raw = _fake_raw_dir(tmp_path, n_train=12, n_labels=11)
    out = tmp_path / "prepared"
    with pytest.raises(MnistError):
        data.prepare(raw, out, 0.25, False, 0)
    assert not out.exists() and list(tmp_path.glob(".prepared.*")) == []


@pytest.mark.parametrize("key, value", [("data.valid_fraction", 0.4), ("data.stratify", True),
                                        ("data.train_limit", 500), ("data.test_limit", 100),
                                        ("seed", 1)])
def test_split_stage_follows_each_data_param(tmp_path, monkeypatch, mnist_dir, key, value):
    """The split stage, run in a project folder with each data param changed alone, writes other
    files than with the defaults. Bug caught: stages/split.py passing a constant (or the wrong
    param) where a data param belongs."""
    import shutil
    import sys

    from repo_helpers import write_params

    from mnist_dvc.cli import run_stage
    from stages import split

    base = {"data.train_limit": 1000, "data.test_limit": 200}
    outputs = {}
    for name, overrides in (("default", base), ("changed", {**base, key: value})):
        project = tmp_path / name
        shutil.copytree(mnist_dir, project / "data/raw",
                        ignore=lambda _, names: [n for n in names if not n.endswith(".gz")])
        write_params(project, overrides)
        monkeypatch.chdir(project)
        monkeypatch.setattr(sys, "argv", ["stages.split"])
        run_stage(split.main)
        outputs[name] = {s: load_digits(project / f"data/prepared/{s}.pt")
                         for s in ("train", "valid", "test")}
    default, changed = outputs["default"], outputs["changed"]
    assert any(len(default[s]) != len(changed[s]) or not torch.equal(default[s].labels, changed[s].labels)
               for s in default), f"{key} = {value!r} split exactly as the default"
