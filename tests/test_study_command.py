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


def test_runner_runs_the_missing_resumes_after_a_kill_and_refuses_other_code(tmp_path, mnist_dir):
    """Bugs caught: a second call running everything again (or a done run again); a killed run
    leaving a partial or empty row behind, or blocking the next call (a stale DVC lock or temp
    folder); a finished experiment whose row was lost run again instead of taken; a row of other
    training code counted as done; the runner training the workspace's edited code instead of
    the pinned commit's."""
    repo = make_repo(tmp_path / "repo", FEW)
    env = {**env_with(mnist_dir), "PYTHONPATH": str(repo)}
    (repo / "study.yaml").write_text(yaml.safe_dump(PLAN, sort_keys=False))
    study(repo, env, "pin")
    run(repo, "git", "add", "study.yaml")
    run(repo, "git", "commit", "-qm", "plan")

    first = study(repo, env, "run")
    assert first.stdout.count("dvc exp run") == 4, first.stdout
    done = rows(repo)
    assert sorted((r["experiment"]) for r in done) == ["base-s0", "base-s1", "sgdm-s0", "sgdm-s1"]
    code = yaml.safe_load((repo / "study.yaml").read_text())["code"]
    assert {r["code"] for r in done} == {code}
    assert "sgdm − base" in (repo / "reports/comparison.md").read_text()

    before = (repo / "reports/runs.csv").read_bytes()
    again = study(repo, env, "run")
    assert "dvc exp run" not in again.stdout and "0 missing" in again.stdout
    assert (repo / "reports/runs.csv").read_bytes() == before

    # Edited training code in the workspace is not what the study trains: the pinned commit is.
    training = repo / "mnist_dvc/training.py"
    training.write_text(training.read_text() + "\nraise SystemExit('edited code ran')\n")

    # A run killed mid-way leaves runs.csv as it was; the next call runs it again.
    kept = [r for r in done if r["experiment"] != "sgdm-s1"]
    with (repo / "reports/runs.csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(done[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
    refs = run(repo, "git", "for-each-ref", "--format=%(refname)", "refs/exps/*/*/sgdm-s1").stdout
    for ref in refs.split():
        run(repo, "git", "update-ref", "-d", ref)  # its experiment is gone too: it must run again
    truncated = (repo / "reports/runs.csv").read_bytes()
    with (repo / "study.log").open("w") as log:
        runner = subprocess.Popen([sys.executable, "-m", "commands.study", "run"], cwd=repo, env=env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 300
    while "Running stage 'train'" not in (repo / "study.log").read_text():
        assert runner.poll() is None and time.monotonic() < deadline, (repo / "study.log").read_text()
        time.sleep(0.2)
    os.killpg(runner.pid, signal.SIGKILL)
    runner.wait()
    assert (repo / "reports/runs.csv").read_bytes() == truncated
    resumed = study(repo, env, "run")
    assert resumed.stdout.count("dvc exp run") == 1 and "sgdm-s1" in resumed.stdout
    assert sorted(r["experiment"] for r in rows(repo)) == ["base-s0", "base-s1", "sgdm-s0", "sgdm-s1"]

    # A row from other training code does not count: the runner wants that run again.
    other = [{**r, "code": "0ther0c0de00"} if r["experiment"] == "base-s1" else r for r in rows(repo)]
    with (repo / "reports/runs.csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(other[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(other)
    status = study(repo, env, "run", "--dry-run")
    assert "3 of 4 runs done" in status.stdout and "would run: dvc exp run --temp -n base-s1" in status.stdout
