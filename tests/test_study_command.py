"""The study runner on a tiny plan (two cells x two seeds, repo_helpers.FEW's data) in its own git
+ DVC repo: it runs only what is missing, resumes after a kill, and never counts rows of other
code."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.repo_helpers import FEW, env_with, make_repo, run

pytestmark = pytest.mark.e2e

PLAN = {"code": "0", "commit": "0", "seeds": [0, 1],
        "cells": [{"name": "base", "set": {}}, {"name": "sgdm", "set": {"optimizer": "sgdm"}}],
        "claims": [{"claim": "SGD+momentum is worse", "pairs": [["sgdm", "base"]]}]}


def study(repo: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return run(repo, sys.executable, "-m", "commands.study", *args, env=env)


def rows(repo: Path) -> list[dict]:
    return list(csv.DictReader((repo / "reports/runs.csv").open()))


def write_rows(repo: Path, kept: list[dict]) -> None:
    with (repo / "reports/runs.csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(kept[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)


def test_runner_runs_the_missing_resumes_after_a_kill_and_refuses_other_code(tmp_path, mnist_dir):
    """Bugs caught: a killed run leaving a partial or empty row behind, or blocking the next call
    (a stale DVC lock or temp folder); the next call running everything again (or a done run
    again); a finished experiment whose row was lost run again instead of taken; a row of other
    training code counted as done; the runner training the workspace's edited code instead of
    the pinned commit's."""
    repo = make_repo(tmp_path / "repo", FEW)
    env = {**env_with(mnist_dir), "PYTHONPATH": str(repo)}
    (repo / "study.yaml").write_text(yaml.safe_dump(PLAN, sort_keys=False))
    study(repo, env, "pin")
    run(repo, "git", "add", "study.yaml")
    run(repo, "git", "commit", "-qm", "plan")
    code = yaml.safe_load((repo / "study.yaml").read_text())["code"]

    # Edited training code in the workspace is not what the study trains: the pinned commit is.
    training = repo / "mnist_dvc/training.py"
    training.write_text(training.read_text() + "\nraise SystemExit('edited code ran')\n")

    # Killed in its fourth and last run: runs.csv keeps the three finished rows, whole.
    log = repo / "study.log"
    with log.open("w") as out:
        runner = subprocess.Popen([sys.executable, "-m", "commands.study", "run"], cwd=repo, env=env,
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 600
    while log.read_text().count("Running stage 'train'") < 4:
        assert runner.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    before_kill = (repo / "reports/runs.csv").read_bytes()
    os.killpg(runner.pid, signal.SIGKILL)
    runner.wait()
    assert (repo / "reports/runs.csv").read_bytes() == before_kill
    three = rows(repo)
    assert [r["experiment"] for r in three] == ["base-s0", "sgdm-s0", "base-s1"], log.read_text()
    assert {r["code"] for r in three} == {code} and all(float(r["test_acc"]) > 0 for r in three)

    resumed = study(repo, env, "run")
    assert resumed.stdout.count("dvc exp run") == 1 and "sgdm-s1" in resumed.stdout
    done = rows(repo)
    assert sorted(r["experiment"] for r in done) == ["base-s0", "base-s1", "sgdm-s0", "sgdm-s1"]
    assert {r["code"] for r in done} == {code}
    assert "sgdm − base" in (repo / "reports/comparison.md").read_text()

    before = (repo / "reports/runs.csv").read_bytes()
    again = study(repo, env, "run")
    assert "dvc exp run" not in again.stdout and "0 missing" in again.stdout
    assert (repo / "reports/runs.csv").read_bytes() == before

    # A row lost after its experiment finished is taken from the experiment, not trained again.
    write_rows(repo, [r for r in done if r["experiment"] != "base-s0"])
    taken = study(repo, env, "run")
    assert "dvc exp run" not in taken.stdout, taken.stdout
    assert "base-s0: its experiment had finished; its row is taken from it" in taken.stdout
    assert sorted(r["experiment"] for r in rows(repo)) == sorted(r["experiment"] for r in done)

    # A row from other training code does not count: the runner wants that run again.
    write_rows(repo, [{**r, "code": "0ther0c0de00"} if r["experiment"] == "base-s1" else r
                      for r in rows(repo)])
    status = study(repo, env, "run", "--dry-run")
    assert "3 of 4 runs done" in status.stdout and "would run: dvc exp run --temp -n base-s1" in status.stdout
