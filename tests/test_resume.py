"""Kill `dvc repro` with SIGKILL mid-training, rerun it: it resumes and ends exactly like a clean run.

These runs hide CUDA (CUDA_VISIBLE_DEVICES=): byte-identical results are promised for the CPU
path, and GPU kernels need not be deterministic. The kill does not depend on timing: the whole
`dvc repro` process group is frozen (SIGSTOP) as soon as the epoch-1 checkpoint appears, then killed.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from repo_helpers import copy_repo, env_with, make_repo, run, write_params

from mnist_dvc import checkpoint

# 500 training images: 3 epochs of 8 steps, enough state (optimizer, schedule, RNG) to resume.
PARAMS = {"data.train_limit": 600, "data.test_limit": 200,
          "train.epochs": 3, "train.batch_size": 64, "train.precision": "fp32"}
DETERMINISTIC_OUTPUTS = ["metrics/train.json", "metrics/test.json", "metrics/history.csv",
                         "metrics/classes.csv", "metrics/predictions.csv", "models/model.pt"]
CHECKPOINT = "checkpoints/train.pt"


def cpu_env(mnist_dir) -> dict:
    return dict(env_with(mnist_dir), CUDA_VISIBLE_DEVICES="")


def checkpoint_epoch(repo) -> int:
    return torch.load(repo / CHECKPOINT, weights_only=True)["state"]["epoch"]


def kill_after_first_checkpoint(repo, env) -> int:
    """Start `dvc repro`; once a checkpoint exists (written atomically: complete once it is
    there), freeze the whole process group, read the checkpoint's epoch, SIGKILL the group.

    Bug this guards against in the test itself: a sleep-then-kill that, on a fast machine, lets
    training finish (and delete its checkpoint) before the kill, so nothing is resumed."""
    process = subprocess.Popen(["dvc", "repro"], cwd=repo, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while not (repo / CHECKPOINT).exists():
            assert process.poll() is None, "dvc repro ended before the first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint after 600 s"
            time.sleep(0.01)
        os.killpg(process.pid, signal.SIGSTOP)  # nothing trains, writes or deletes from here on
        assert (repo / CHECKPOINT).exists(), "the checkpoint vanished before the process stopped"
        return checkpoint_epoch(repo)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory, mnist_dir):
    repo = make_repo(tmp_path_factory.mktemp("clean") / "repo", PARAMS)
    run(repo, "dvc", "repro", env=cpu_env(mnist_dir))
    return repo


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory, mnist_dir) -> tuple[Path, int]:
    """A repo whose `dvc repro` was killed after its first checkpoint (fetch and split done and
    locked, training part-way), and that checkpoint's epoch: each test resumes a copy of it."""
    repo = make_repo(tmp_path_factory.mktemp("killed") / "repo", PARAMS)
    return repo, kill_after_first_checkpoint(repo, cpu_env(mnist_dir))


@pytest.mark.e2e
def test_sigkill_then_repro_resumes_and_matches_clean_run(tmp_path, mnist_dir, clean_run, killed_run):
    # Bugs caught: no resume (epochs retrained), a resume that restores only part of the state
    # (optimizer, schedule or RNG: the outputs then differ from a clean run's), a run that is not
    # byte-for-byte reproducible, a checkpoint left behind after success.
    env = cpu_env(mnist_dir)
    repo, killed_after = copy_repo(killed_run[0], tmp_path / "repo"), killed_run[1]
    assert 1 <= killed_after < 3
    assert not (repo / "models/model.pt").exists()

    done = run(repo, "dvc", "repro", env=env)
    assert f"resuming from checkpoint {CHECKPOINT} after epoch {killed_after}" in done.stdout
    assert f"epoch   {killed_after} " not in done.stdout  # finished epochs were not trained again
    for name in DETERMINISTIC_OUTPUTS:
        assert (repo / name).read_bytes() == (clean_run / name).read_bytes(), name
    assert not (repo / CHECKPOINT).exists()


@pytest.mark.e2e
def test_checkpoint_from_other_params_is_not_resumed(tmp_path, mnist_dir, killed_run):
    # Bug caught: a checkpoint resumed under changed params (the stage's fingerprint ignores them).
    env = cpu_env(mnist_dir)
    repo = copy_repo(killed_run[0], tmp_path / "repo")
    assert (repo / CHECKPOINT).exists()
    write_params(repo, {**PARAMS, "train.epochs": 1})  # other params (and a short rerun)
    done = run(repo, "dvc", "repro", env=env)
    assert f"ignoring checkpoint {CHECKPOINT}: it was made with other params or data" in done.stdout
    assert "epoch   1 " in done.stdout


def test_checkpoint_from_another_device_type_is_not_resumed(tmp_path, make_params, capsys):
    """Bug caught: a fingerprint that ignores the device (run_fingerprint without
    `device.type`): a checkpoint made on a GPU resumed on the CPU, whose run then matches neither
    a clean CPU run nor a GPU one."""
    params = make_params()
    data = tmp_path / "train.pt"
    data.write_bytes(b"digits")
    cuda = checkpoint.run_fingerprint(params, [data], torch.device("cuda", 0))
    cpu = checkpoint.run_fingerprint(params, [data], torch.device("cpu"))
    assert cuda != cpu
    # The device type, not the index: the run may resume on another GPU of the machine.
    assert checkpoint.run_fingerprint(params, [data], torch.device("cuda", 1)) == cuda

    saved = tmp_path / "checkpoints" / "train.pt"
    checkpoint.save(saved, cuda, {"state": {"epoch": 1}})
    assert checkpoint.load(saved, cuda)["state"] == {"epoch": 1}
    capsys.readouterr()
    assert checkpoint.load(saved, cpu) is None
    assert "it was made with other params or data; training from epoch 1" in capsys.readouterr().out
