"""Bad inputs through the real stage scripts, as a user runs them: `python -m stages.<name>`.

Every case must exit non-zero with exactly one stderr line, "error: ..." naming the problem and
the fix, no traceback, and leave neither the stage's output nor any temporary file behind. One
case of each kind (a bad param, a broken IDX file, a model that runs code, a NaN) runs the stage
in a process of its own, the contract end to end; the others run the stage's main in this process
(tests/in_process.py: a second interpreter costs 1.5 s of importing torch a case).
"""

import gzip
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from in_process import run_module
from repo_helpers import copy_project, run, write_params

from mnist_dvc import download, mnist
from mnist_dvc.model import MyConvNet

ROOT = Path(__file__).resolve().parents[1]
TRAIN_OUTPUTS = ["models/model.pt", "metrics/history.csv", "metrics/train.json", "metrics/timing.json"]
EVALUATE_OUTPUTS = ["metrics/test.json", "metrics/classes.csv", "metrics/predictions.csv",
                    "metrics/calibration.csv"]


def make_project(path: Path, **overrides) -> Path:
    """stages/, mnist_dvc/ and params.yaml in `path`, with dotted overrides ("train.lr": 0.1)."""
    copy_project(path, ["stages", "mnist_dvc"])
    write_params(path, overrides)
    return path


def run_stage(project: Path, name: str, local_dir=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in (download.LOCAL_DIR_ENV, "no_proxy", "NO_PROXY")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # No network, on any machine: every mirror is tried through a proxy that refuses at once.
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        env[var] = "http://127.0.0.1:9"
    if local_dir is not None:
        env[download.LOCAL_DIR_ENV] = str(local_dir)
    return run(project, sys.executable, "-m", f"stages.{name}", env=env, check=False, timeout=300)


def run_stage_here(project: Path, name: str, local_dir=None) -> subprocess.CompletedProcess:
    """run_stage in this process (tests/in_process.py)."""
    return run_module(f"stages.{name}", cwd=project,
                      env={download.LOCAL_DIR_ENV: None if local_dir is None else str(local_dir)})


def assert_one_line_error(done: subprocess.CompletedProcess, *fragments: str) -> str:
    assert done.returncode != 0, done.stdout
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    line = lines[0]
    assert line.startswith("error: ") and "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in line
    return line


def assert_nothing_left(project: Path, *outputs: str) -> None:
    for output in outputs:
        assert not (project / output).exists(), output
    leftovers = list(project.rglob(".*.tmp"))
    assert leftovers == []


def copy_prepared(source: Path, project: Path) -> None:
    shutil.copytree(source / "data/prepared", project / "data/prepared")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, mnist_dir) -> Path:
    """A project after fetch and split on tiny real data: 250 train, 50 valid, 200 test images."""
    project = make_project(tmp_path_factory.mktemp("prepared"),
                           **{"data.train_limit": 300, "data.test_limit": 200})
    for stage in ("fetch", "split"):
        done = run_stage(project, stage, local_dir=mnist_dir)
        assert done.returncode == 0, done.stderr
    return project


# --- params.yaml: every stage that reads it checks it first --------------------------------------
# fetch does not read params (a new param must not re-download MNIST), so split is the first stage
# to refuse a bad params.yaml. Two cases end to end (a bad value, an unknown key); every other bad
# value is checked in-process by tests/test_params.py, through the same parse_params the stages call.

PARAMS_FIX = "(fix it in params.yaml or with -S"


@pytest.mark.parametrize("overrides, fragments", [
    ({"optimizer": "nadamm"},
     ["optimizer = 'nadamm' is invalid: must be one of adam, nadam, sgdm", PARAMS_FIX]),
    ({"train.lrr": 0.1}, ["unknown key train.lrr: allowed keys are train.epochs"]),
])
def test_bad_params_fail_before_splitting(tmp_path, mnist_dir, overrides, fragments):
    # Bugs caught: a stage that writes before validating params; a bad value surfacing as a
    # traceback instead of one "error: params.yaml: ..." line.
    project = make_project(tmp_path / "project", **overrides)
    assert run_stage_here(project, "fetch", local_dir=mnist_dir).returncode == 0
    done = (run_stage if "optimizer" in overrides else run_stage_here)(project, "split")
    assert_one_line_error(done, "error: params.yaml: ", *fragments)
    assert_nothing_left(project, "data/prepared")


def test_batch_larger_than_training_set(tmp_path, mnist_dir):
    project = make_project(tmp_path / "project", **{"data.train_limit": 100, "data.test_limit": 100})
    for stage in ("fetch", "split"):
        assert run_stage_here(project, stage, local_dir=mnist_dir).returncode == 0
    write_params(project, {"data.train_limit": 100, "data.test_limit": 100, "train.batch_size": 500})
    done = run_stage_here(project, "train")
    assert_one_line_error(done, "train.batch_size = 500 is larger than the training set (83 images)",
                          "lower train.batch_size")
    assert_nothing_left(project, *TRAIN_OUTPUTS)


# --- fetch: a broken local folder, or no network ------------------------------------------------

LAST = "t10k-labels-idx1-ubyte.gz"  # fetched last, so the other three are already in the temp folder


def local_copy(mnist_dir: Path, folder: Path) -> Path:
    folder.mkdir()
    for name in mnist.IDX_FILES:
        (folder / name).symlink_to(mnist_dir / name)
    return folder


def test_fetch_local_file_missing(tmp_path, mnist_dir):
    local = local_copy(mnist_dir, tmp_path / "local")
    (local / LAST).unlink()
    project = make_project(tmp_path / "project")
    done = run_stage(project, "fetch", local_dir=local)
    assert_one_line_error(done, f"{local / LAST} is missing",
                          f"put the four MNIST .gz files in {local}, or unset MNIST_LOCAL_DIR")
    assert_nothing_left(project, "data/raw")


def test_fetch_local_file_truncated(tmp_path, mnist_dir):
    local = local_copy(mnist_dir, tmp_path / "local")
    (local / LAST).unlink()
    (local / LAST).write_bytes((mnist_dir / LAST).read_bytes()[:2000])
    project = make_project(tmp_path / "project")
    done = run_stage(project, "fetch", local_dir=local)
    assert_one_line_error(done, f"{local / LAST} has MD5", f"expected {mnist.IDX_FILES[LAST]}",
                          "replace it with the genuine file")
    assert_nothing_left(project, "data/raw")


def test_fetch_local_folder_does_not_exist(tmp_path):
    project = make_project(tmp_path / "project")
    done = run_stage(project, "fetch", local_dir=tmp_path / "nowhere")
    assert_one_line_error(done, f"MNIST_LOCAL_DIR={tmp_path / 'nowhere'} is not a folder",
                          "point it at the folder holding the four MNIST .gz files")
    assert_nothing_left(project, "data/raw")


def test_fetch_without_network_or_local_folder(tmp_path):
    project = make_project(tmp_path / "project")
    done = run_stage(project, "fetch")
    assert_one_line_error(done, "could not download train-images-idx3-ubyte.gz from any mirror",
                          *[m + "train-images-idx3-ubyte.gz" for m in download.MIRRORS],
                          "check the network, or set MNIST_LOCAL_DIR")
    assert_nothing_left(project, "data/raw")


# --- split: broken IDX files in data/raw ----------------------------------------------------------

def idx(dims, body: bytes, magic: bytes = b"\x00\x00\x08") -> bytes:
    return magic + bytes([len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + body


def raw_files(n_train=20, n_test=10, **replace) -> dict:
    """The four files as IDX bytes of a tiny valid MNIST, with some replaced."""
    files = {
        "train-images-idx3-ubyte.gz": idx([n_train, 28, 28], bytes(n_train * 784)),
        "train-labels-idx1-ubyte.gz": idx([n_train], bytes(i % 10 for i in range(n_train))),
        "t10k-images-idx3-ubyte.gz": idx([n_test, 28, 28], bytes(n_test * 784)),
        "t10k-labels-idx1-ubyte.gz": idx([n_test], bytes(i % 10 for i in range(n_test))),
    }
    files.update(replace)
    return files


TRAIN_IMAGES = "train-images-idx3-ubyte.gz"


@pytest.mark.parametrize("files, fragments", [
    (raw_files(**{TRAIN_IMAGES: idx([20, 28, 28], bytes(20 * 784), magic=b"\x00\x00\x09")}),
     ["has IDX magic 00000903, expected 000008", "not an MNIST IDX file; fetch it again"]),
    (raw_files(**{TRAIN_IMAGES: idx([25, 28, 28], bytes(20 * 784))}),
     ["header claims dimensions [25, 28, 28] (19600 bytes) but holds 15680 bytes of data",
      "fetch it again"]),
    (raw_files(**{TRAIN_IMAGES: idx([2**31, 28, 28], bytes(20 * 784))}),
     ["header claims dimensions [2147483648, 28, 28]", "but holds 15680 bytes of data",
      "fetch it again"]),
    (raw_files(**{"t10k-labels-idx1-ubyte.gz": idx([2**31], bytes(10))}),
     ["header claims dimensions [2147483648] (2147483648 bytes) but holds 10 bytes", "fetch it again"]),
    (raw_files(**{"train-labels-idx1-ubyte.gz": idx([19], bytes(19))}),
     ["train has 20 images but 19 labels", "fetch them again"]),
], ids=["wrong-magic", "dims-disagree-with-size", "absurd-image-count", "absurd-label-count",
        "count-mismatch"])
def test_split_refuses_broken_idx(tmp_path, files, fragments, request):
    project = make_project(tmp_path / "project")
    (project / "data/raw").mkdir(parents=True)
    for name, raw in files.items():
        (project / "data/raw" / name).write_bytes(gzip.compress(raw))
    end_to_end = request.node.callspec.id == "wrong-magic"
    done = (run_stage if end_to_end else run_stage_here)(project, "split")
    assert_one_line_error(done, *fragments)
    assert_nothing_left(project, "data/prepared")


# --- evaluate: a model file that is not a plain MyConvNet state_dict ---------------------------

class RunsCode:
    """Unpickling this runs `code`: what a malicious model file would do."""

    def __init__(self, code: str):
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


def test_evaluate_refuses_pickle_that_runs_code(tmp_path, prepared):
    project = make_project(tmp_path / "project")
    copy_prepared(prepared, project)
    marker = tmp_path / "code-ran"
    (project / "models").mkdir()
    torch.save({"x": RunsCode(f"open({str(marker)!r}, 'w').write('pwned')")},
               project / "models/model.pt")
    done = run_stage(project, "evaluate")
    assert_one_line_error(done, "models/model.pt holds a pickled object that could run code (exec), "
                          "refused unread: retrain with dvc repro train")
    assert not marker.exists()
    assert_nothing_left(project, *EVALUATE_OUTPUTS)


def test_evaluate_names_layer_with_wrong_shape(tmp_path, prepared):
    project = make_project(tmp_path / "project")
    copy_prepared(prepared, project)
    state = MyConvNet().state_dict()
    state["fc.4.weight"] = torch.zeros(11, 98)
    (project / "models").mkdir()
    torch.save(state, project / "models/model.pt")
    done = run_stage_here(project, "evaluate")
    assert_one_line_error(done, "layer fc.4.weight has shape [11, 98], MyConvNet expects [10, 98]",
                          "retrain with dvc repro train")
    assert_nothing_left(project, *EVALUATE_OUTPUTS)


# --- train: the loss becomes NaN -------------------------------------------------------------

NAN_IN_EPOCH_ONE = {"optimizer": "sgdm", "scheduler": "constant", "train.lr": 1e12}
# As in tests/test_training.py: a finite epoch 1, then weight decay x warm-up overflows in epoch 2.
NAN_IN_EPOCH_TWO = {"optimizer": "sgdm", "scheduler": "warmup", "warmup.epochs": 2,
                    "train.momentum": 0.9, "train.lr": 0.07, "train.weight_decay": 100.0,
                    "train.batch_size": 8}


@pytest.mark.parametrize("diverging, earlier_model, fragments", [
    (NAN_IN_EPOCH_ONE, None,
     ["in epoch 1: lower train.lr (now 1000000000000.0); no finished epoch was saved"]),
    (NAN_IN_EPOCH_TWO, b"weights from an earlier good run",
     ["in epoch 2: lower train.lr (now 0.07); the best model so far (epoch 1) is kept in the checkpoint"]),
], ids=["nan-in-epoch-1", "nan-in-epoch-2"])
def test_train_stops_on_nan_and_keeps_earlier_model(tmp_path, prepared, diverging, earlier_model,
                                                   fragments):
    # Bugs caught: a NaN run that writes a model or metrics, overwrites an earlier good model, or
    # promises a checkpoint that is not on disk.
    project = make_project(tmp_path / "project", **{
        "data.train_limit": 300, "data.test_limit": 200, "train.epochs": 2, "train.batch_size": 64,
        "train.precision": "fp32", **diverging})
    copy_prepared(prepared, project)
    if earlier_model is not None:
        (project / "models").mkdir()
        (project / "models/model.pt").write_bytes(earlier_model)
    done = (run_stage if earlier_model is not None else run_stage_here)(project, "train")
    assert_one_line_error(done, "error: training loss became ", *fragments)
    assert (project / "checkpoints/train.pt").is_file() == (earlier_model is not None)
    if earlier_model is None:
        assert_nothing_left(project, *TRAIN_OUTPUTS)
    else:
        assert (project / "models/model.pt").read_bytes() == earlier_model
        assert_nothing_left(project, *TRAIN_OUTPUTS[1:])
