"""The README's commands as a user types them, in throwaway repos on a small subset of real MNIST:
in a new shell after the set-up, on a fresh clone, after a failed run, and watching the log."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from repo_helpers import copy_repo, env_with, run

# Each builds a git + DVC repo and runs the pipeline in it: left out by `make test-fast`.
pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
RESULTS = ["models/model.pt", "metrics/train.json", "metrics/timing.json", "metrics/history.csv",
           "metrics/test.json", "metrics/classes.csv", "metrics/predictions.csv"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory, tiny_baseline):
    """A repo after one good `dvc repro`, its results committed as the baseline: a copy of the
    session's tiny_baseline."""
    return copy_repo(tiny_baseline, tmp_path_factory.mktemp("user") / "repo")


def snapshot(repo: Path) -> dict:
    return {name: (repo / name).read_bytes() for name in RESULTS}


def restore_params(repo: Path) -> None:
    run(repo, "git", "checkout", "--", "params.yaml")


def readme_first_screen() -> list[str]:
    """The commands of the README's second code block (the first screen, after `make`)."""
    readme = (ROOT / "README.md").read_text()
    block = re.findall(r"```sh\n(.*?)```", readme, flags=re.S)[1]
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


# As typed, but the venv is this test run's (the throwaway repo has none of its own).
ACTIVATE = f"source {VENV_BIN / 'activate'}"


@pytest.fixture(scope="module")
def readme_run(repo, mnist_dir) -> tuple[subprocess.CompletedProcess, dict, dict]:
    """The README's first screen run once in `repo`, in a new shell whose PATH has no venv at all:
    (its run, the env it ran in, the nadam experiment it made, from `dvc exp show --json`). The
    README test checks the run; the fresh clone's `dvc plots diff` uses its experiment."""
    env = {k: v for k, v in env_with(mnist_dir).items() if k not in ("VIRTUAL_ENV",)}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep)
                                  if Path(p).resolve() != VENV_BIN.resolve())
    commands = readme_first_screen()
    assert commands == ["source .venv/bin/activate", "dvc repro", "dvc metrics diff",
                        "dvc exp run -S optimizer=nadam"]
    script = " && ".join(commands).replace("source .venv/bin/activate", ACTIVATE)
    done = subprocess.run(["bash", "-c", script + " && dvc exp show --json"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    experiments = [exp["revs"][0] for row in json.loads(done.stdout[done.stdout.rindex("\n[") + 1:])
                   for exp in (row.get("experiments") or [])]
    nadam = next(e for e in experiments
                 if e["data"]["params"]["params.yaml"]["data"]["optimizer"] == "nadam")
    return done, env, nadam


def test_readme_commands_work_in_a_new_shell_after_activating(repo, tiny_baseline, readme_run, mnist_dir):
    """Bug: the README's commands only work with the venv's bin on PATH by accident (as in the
    other tests), so `dvc` is "command not found" for a user, or the stage runs the system python.
    Here PATH has no venv at all: only `source .venv/bin/activate`, as the README says, provides it.
    Its experiment then shows the README's `dvc exp show` line readable (one experiment for both)."""
    done, env, nadam = readme_run
    baseline = json.loads((tiny_baseline / "metrics/test.json").read_text())["test_acc"]
    assert "Data and pipelines are up to date" in done.stdout
    assert nadam["data"]["params"]["params.yaml"]["data"]["optimizer"] == "nadam"
    # Trained anew with nadam (1 tiny epoch: the value itself says little), not the baseline's copy,
    # and `dvc metrics diff` (the workspace holds the experiment's results) shows it against HEAD.
    assert nadam["data"]["metrics"]["metrics/test.json"]["data"]["test_acc"] != baseline
    diff = json.loads(run(repo, "bash", "-c", f"{ACTIVATE} && dvc metrics diff --json", env=env).stdout)
    assert diff["metrics/test.json"]["test_acc"]["old"] == baseline, diff

    # The README's `dvc exp show` line on that experiment: the changed param and the metrics, no
    # file-hash columns, a screen's width of columns. Catches plain `dvc exp show` (about 100
    # columns, most of them hashes) and a --drop pattern that matches nothing (DVC matches it
    # against the whole column name: `--drop '/'` drops no column).
    line = re.search(r"^dvc exp show (.*?)\s+#", (ROOT / "README.md").read_text(), flags=re.M)
    assert line, "README shows no dvc exp show command"
    done = run(repo, "bash", "-c", f"{ACTIVATE} && dvc exp show {line.group(1)}", env=env)
    header = [c.strip() for c in done.stdout.splitlines()[0].strip("|").split("|")]
    assert {"Experiment", "optimizer", "test_acc", "handin_test_acc_graded"} <= set(header), header
    assert not [c for c in header if "/" in c], header
    assert len(header) <= 25, header
    assert not re.search(r"\b[0-9a-f]{32}\b", done.stdout), done.stdout
    run(repo, "git", "checkout", "--", "params.yaml", "dvc.lock", "metrics", "figures")
    run(repo, "dvc", "checkout", "-q", env=env_with(mnist_dir), check=False)


@pytest.mark.parametrize("bad", [["-S", "optimizer=Adam"],
                                 ["-S", "optimizer=sgdm", "-S", "scheduler=constant",
                                  "-S", "train.lr=1e12"]],
                         ids=["typo", "nan-loss"])
def test_failed_exp_run_keeps_the_workspace_results(repo, mnist_dir, bad):
    """Bug: DVC deletes a stage's outputs before running it, so a typo or a diverging run wiped
    the user's current model and metrics (outputs must be `persist: true` and written atomically)."""
    before = snapshot(repo)
    done = run(repo, "dvc", "exp", "run", *bad, env=env_with(mnist_dir), check=False)
    assert done.returncode != 0
    assert "error: " in done.stderr
    assert snapshot(repo) == before
    restore_params(repo)


def test_killed_run_keeps_the_workspace_results(repo, mnist_dir):
    """Bug: a kill in the middle of training leaves the workspace without a model or metrics, or
    with half-written ones. history.csv and train.json are live (rewritten atomically after every
    finished epoch, so `dvc plots show` follows a run): a SIGKILL, which no handler sees, leaves
    them at the killed run's last finished epoch, whole; everything else stays as it was."""
    before = snapshot(repo)
    params = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(params.replace("epochs: 1\n", "epochs: 3\n", 1))
    env = dict(env_with(mnist_dir), CUDA_VISIBLE_DEVICES="")
    process = subprocess.Popen(["dvc", "repro"], cwd=repo, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not (repo / "checkpoints/train.pt").exists():
            assert process.poll() is None, "dvc repro ended before the first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint after 300 s"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGSTOP)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
        (repo / "checkpoints/train.pt").unlink(missing_ok=True)
    after = snapshot(repo)
    live = ("metrics/history.csv", "metrics/train.json")
    assert {k: v for k, v in after.items() if k not in live} == {
        k: v for k, v in before.items() if k not in live}
    epochs = [int(row["epoch"]) for row in csv.DictReader(after[live[0]].decode().splitlines())]
    assert epochs == list(range(1, len(epochs) + 1)) and epochs
    assert json.loads(after[live[1]])["epochs_run"] == len(epochs)
    restore_params(repo)


def test_plots_diff_against_head_on_a_fresh_clone(repo, readme_run, tmp_path, mnist_dir):
    """Bug: the per-epoch CSVs were DVC-cached outputs, so a fresh clone had metrics but no curves
    for HEAD and `dvc plots diff HEAD <exp>` failed with "No storage files available". The clone
    gets the README's experiment from git alone (`dvc exp pull --no-cache`): no DVC cache at all."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True, timeout=60)
    env = env_with(mnist_dir)
    run(clone, "dvc", "config", "--local", "core.site_cache_dir", str(tmp_path / "site-cache"))
    name = readme_run[2]["name"]
    run(clone, "dvc", "exp", "pull", "--no-cache", "origin", name, env=env)
    assert not (clone / ".dvc/cache").exists()
    plots = json.loads(run(clone, "dvc", "plots", "diff", "HEAD", name, "--json", env=env).stdout)
    assert not plots.get("errors"), plots.get("errors")
    for plot in ("loss", "accuracy", "learning_rate", "confusion", "per_class_f1"):
        values = plots["data"][plot][0]["content"]["data"]["values"]
        assert {row["rev"] for row in values} == {"HEAD", name}, plot


def test_train_stage_output_reaches_a_log_as_it_happens(repo, mnist_dir, tmp_path):
    """Bugs: under DVC (stdout a pipe or a file) the per-epoch lines were block-buffered, so a log
    showed nothing until the stage ended; metrics/history.csv and train.json written only at the
    end, so `dvc plots show` and `dvc exp show` showed nothing of a running experiment. The epoch-1
    line, and both files holding epoch 1, must arrive while epoch 2 still runs."""
    history, train_json = repo / "metrics/history.csv", repo / "metrics/train.json"
    history.unlink(missing_ok=True)
    train_json.unlink(missing_ok=True)
    params = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(params.replace("epochs: 1\n", "epochs: 2\n", 1))
    env = dict(env_with(mnist_dir), CUDA_VISIBLE_DEVICES="")
    env.pop("PYTHONUNBUFFERED", None)
    process = subprocess.Popen([sys.executable, "-m", "stages.train"], cwd=repo, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in process.stdout:
            if line.startswith("epoch   1 "):
                deadline = time.monotonic() + 5  # the files follow the line within milliseconds
                while not (history.exists() and train_json.exists()) and time.monotonic() < deadline:
                    time.sleep(0.01)
                os.kill(process.pid, signal.SIGSTOP)  # freeze it: nothing more happens while we look
                assert [row["epoch"] for row in csv.DictReader(history.read_text().splitlines())] == ["1"]
                assert json.loads(train_json.read_text())["epochs_run"] == 1
                checkpoint = torch.load(repo / "checkpoints/train.pt", weights_only=True)
                # Buffered output would arrive only at exit, after epoch 2 and the checkpoint's removal.
                assert checkpoint["state"]["epoch"] == 1
                break
        else:
            pytest.fail("no epoch-1 line")
    finally:
        process.kill()
        process.wait(timeout=60)
    (repo / "checkpoints/train.pt").unlink(missing_ok=True)
    restore_params(repo)


def test_ci_fails_when_pytest_collects_no_tests():
    """Bug: CI passing green when pytest collected nothing (exit 5), e.g. after a bad rename of
    tests/ or a PYTEST_ARGS typo, or make hiding why it failed. Run under `make test
    PYTEST_ARGS=...`, the inner make would take the outer command line's PYTEST_ARGS from
    MAKEFLAGS over this environment's and run the whole suite again: CI starts with no make above
    it, so neither does this."""
    root = ROOT
    env = {key: value for key, value in os.environ.items()
           if key not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    # One process (TEST_JOBS=0): the same make recipe and exit, without two xdist workers each
    # importing and collecting the whole suite only to run none of it.
    env |= {"VENV": str(VENV_BIN.parent), "PYTEST_ARGS": "-k zzz_matches_no_test", "TEST_JOBS": "0"}
    done = subprocess.run([str(root / ".ci" / "run")], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode != 0
    assert "pytest collected no tests (exit 5)" in done.stderr


