"""Sweeps across machines: clones of one git repository share experiments through a git remote
(`dvc exp push/pull`) and their cached outputs (the trained model) through a DVC remote.

Here "machines" are two clones of one bare git repository, and the DVC remote is a local folder.
"""

import csv
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from repo_helpers import FEW, env_with, make_repo, run

# Each builds a git + DVC repo and runs the pipeline in it: left out by `make test-fast`.
pytestmark = pytest.mark.e2e

EXPERIMENTS = {"lr-low": "train.lr=0.001", "lr-high": "train.lr=0.004"}


def show(repo, env) -> dict:
    """`dvc exp show --csv` as {experiment name: row}."""
    rows = csv.DictReader(io.StringIO(run(repo, "dvc", "exp", "show", "--csv", env=env).stdout))
    return {row["Experiment"]: row for row in rows if row["Experiment"]}


def test_experiments_and_models_travel_between_clones(tmp_path, mnist_dir):
    # Bugs caught: an output another machine needs (the model, the per-epoch history) that is
    # neither in git nor pushable to the DVC remote; experiments that do not arrive with their
    # metrics; a compare step that only works where the experiments ran; a clone that has to
    # retrain to get the model.
    env = env_with(mnist_dir)
    origin, storage = tmp_path / "origin.git", tmp_path / "dvc-storage"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)

    # Machine A: a DVC remote in the repo config, the baseline on the git remote, two experiments.
    a = make_repo(tmp_path / "a", FEW)
    run(a, "dvc", "remote", "add", "--default", "shared", str(storage))
    run(a, "git", "commit", "-qm", "DVC remote", ".dvc/config")
    run(a, "git", "remote", "add", "origin", str(origin))
    run(a, "git", "push", "-q", "origin", "HEAD")
    for name, setting in EXPERIMENTS.items():
        run(a, "dvc", "exp", "run", "--name", name, "--set-param", setting, env=env)
    model_of_last = (a / "models/model.pt").read_bytes()  # lr-high ran last
    in_a = show(a, env)
    run(a, "dvc", "exp", "push", "origin", env=env)  # every experiment of HEAD, with its cache
    assert storage.is_dir() and any(p.is_file() for p in storage.rglob("*"))

    # Machine B: a fresh clone pulls them, sees their metrics, compares them, gets the model.
    b = tmp_path / "b"
    subprocess.run(["git", "clone", "-q", str(origin), str(b)], check=True)
    run(b, "dvc", "config", "--local", "core.site_cache_dir", str(tmp_path / "site-cache-b"))
    run(b, "dvc", "exp", "pull", "origin", env=env)
    in_b = show(b, env)
    assert set(in_b) == set(EXPERIMENTS)
    for name in EXPERIMENTS:
        for metric in ("test_acc", "best_valid_acc", "train.lr"):
            assert in_b[name][metric] == in_a[name][metric] != "", (name, metric)
    assert in_b["lr-low"]["train.lr"] != in_b["lr-high"]["train.lr"]

    compared = run(b, sys.executable, "-m", "commands.compare", env=env)
    assert "compare: 2 runs" in compared.stdout
    table = (b / "comparison/comparison.md").read_text()  # compare's own folder, not the study's
    assert "| lr-low |" in table and "| lr-high |" in table  # with their histories (curves) read

    run(b, "dvc", "exp", "apply", "lr-high", env=env)
    # Only the DVC remote can supply the model now: B's cache and workspace copy are gone.
    shutil.rmtree(b / ".dvc/cache", ignore_errors=True)
    (b / "models/model.pt").unlink(missing_ok=True)
    run(b, "dvc", "pull", env=env)
    assert (b / "models/model.pt").read_bytes() == model_of_last
    assert (b / "metrics/history.csv").read_text() == (a / "metrics/history.csv").read_text()
    status = run(b, "dvc", "status", env=env)
    assert "Data and pipelines are up to date" in status.stdout, status.stdout
    repro = run(b, "dvc", "repro", env=env)
    assert "Running stage" not in repro.stdout, repro.stdout  # nothing retrained


def documented_blocks() -> list[str]:
    """The bash blocks of docs/scale-out.md's "Sweeps across machines" section, in order."""
    doc = (Path(__file__).resolve().parents[1] / "docs/scale-out.md").read_text()
    section = doc.split("## Sweeps across machines", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.S)


def test_documented_sweep_setup_runs_as_typed(tmp_path, mnist_dir):
    """The docs' three blocks, run as a user types them on a fresh clone of the project, with
    local folders for the two example URLs. Bugs caught (all seen in the docs): `git remote add
    origin` failing on a clone ("remote origin already exists"); `dvc push` before any run, with
    nothing in the cache to push; a "wait for the queue" step that does not wait, so the push
    sends no experiment."""
    setup, each_machine, compare = documented_blocks()
    project, origin, storage = tmp_path / "project.git", tmp_path / "team.git", tmp_path / "storage"
    for bare in (project, origin):
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    template = make_repo(tmp_path / "template", FEW)
    run(template, "git", "push", "-q", str(project), "HEAD:main")
    gitconfig = tmp_path / "gitconfig"  # the user's own git identity, which the queue needs
    gitconfig.write_text("[user]\n\tname = t\n\temail = t@example.com\n")
    env = {**env_with(mnist_dir), "GIT_CONFIG_GLOBAL": str(gitconfig),
           "ORIGIN": str(origin), "STORAGE": str(storage)}

    def bash(where: Path, block: str):
        # The two example locations are the reader's to choose: here, local folders (in env).
        block = re.sub(r"^export (ORIGIN|STORAGE)=.*$", "", block, flags=re.M)
        return run(where, "bash", "-euo", "pipefail", "-c", block, env=env)

    first = tmp_path / "first"
    subprocess.run(["git", "clone", "-q", str(project), str(first)], check=True)
    bash(first, setup)

    machine = tmp_path / "machine"
    machine.mkdir()
    bash(machine, each_machine)
    clone = machine / "mnist-dvc"
    names = [line.split(",")[0] for line in
             run(clone, "dvc", "exp", "show", "--csv", env=env).stdout.splitlines()[1:]]
    names = [n for n in names if n and n not in ("workspace", "main")]
    assert len(names) == 2, names

    reader = tmp_path / "reader"
    subprocess.run(["git", "clone", "-q", str(origin), str(reader)], check=True)
    bash(reader, compare.replace("<name>", names[0]))
    rows = (reader / "comparison/runs.csv").read_text().splitlines()[1:]
    assert sorted(row.split(",")[0] for row in rows) == sorted(names)
    assert (reader / "models/model.pt").is_file()
    assert os.path.getsize(reader / "models/model.pt") > 1_000_000
