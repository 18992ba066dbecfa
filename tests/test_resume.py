"""Kill `dvc repro` with SIGKILL mid-training, rerun it: it resumes and ends exactly like a clean run."""

import os
import signal
import subprocess
import time

import pytest
import torch

from repo_helpers import env_with, make_repo, run

PARAMS = {"data.train_limit": 3000, "data.test_limit": 500,
          "train.epochs": 3, "train.batch_size": 64, "train.precision": "fp32"}
DETERMINISTIC_OUTPUTS = ["metrics/train.json", "metrics/test.json", "metrics/history.csv",
                         "metrics/classes.csv", "metrics/predictions.csv", "models/model.pt"]


def checkpoint_epoch(repo) -> int:
    try:
        return torch.load(repo / "checkpoints/train.pt", weights_only=True)["state"]["epoch"]
    except (FileNotFoundError, RuntimeError, EOFError):
        return 0


def kill_during_epoch_two(repo, env) -> int:
    """Start `dvc repro`, SIGKILL it (and its stage) once epoch 1 is checkpointed; return that epoch."""
    process = subprocess.Popen(["dvc", "repro"], cwd=repo, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while checkpoint_epoch(repo) < 1:
        assert process.poll() is None, "dvc repro ended before the first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint after 240 s"
        time.sleep(0.1)
    time.sleep(0.5)  # into epoch 2
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return checkpoint_epoch(repo)


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory, mnist_dir):
    repo = make_repo(tmp_path_factory.mktemp("clean") / "repo", PARAMS)
    run(repo, "dvc", "repro", env=env_with(mnist_dir))
    return repo


def test_sigkill_then_repro_resumes_and_matches_clean_run(tmp_path, mnist_dir, clean_run):
    env = env_with(mnist_dir)
    repo = make_repo(tmp_path / "repo", PARAMS)
    killed_after = kill_during_epoch_two(repo, env)
    assert 1 <= killed_after < 3
    assert not (repo / "models/model.pt").exists()

    done = run(repo, "dvc", "repro", env=env)
    assert f"resuming from checkpoint checkpoints/train.pt after epoch {killed_after}" in done.stdout
    assert f"epoch   {killed_after} " not in done.stdout  # finished epochs were not trained again
    for name in DETERMINISTIC_OUTPUTS:
        assert (repo / name).read_bytes() == (clean_run / name).read_bytes(), name
    assert not (repo / "checkpoints/train.pt").exists()


def test_same_params_give_byte_identical_outputs(clean_run, mnist_dir):
    before = {name: (clean_run / name).read_bytes() for name in DETERMINISTIC_OUTPUTS}
    for stage in ("train", "evaluate"):
        run(clean_run, "dvc", "repro", "--force", "--single-item", stage, env=env_with(mnist_dir))
    for name, content in before.items():
        assert (clean_run / name).read_bytes() == content, name


def test_checkpoint_from_other_params_is_not_resumed(tmp_path, mnist_dir):
    env = env_with(mnist_dir)
    repo = make_repo(tmp_path / "repo", PARAMS)
    kill_during_epoch_two(repo, env)
    params = (repo / "params.yaml").read_text().replace("lr: 0.002", "lr: 0.001")
    (repo / "params.yaml").write_text(params)
    done = run(repo, "dvc", "repro", env=env)
    assert "ignoring checkpoint checkpoints/train.pt: it was made with other params or data" in done.stdout
    assert "epoch   1 " in done.stdout
