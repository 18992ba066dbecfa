"""Sweeps across machines: clones of one git repository share experiments through a git remote
(`dvc exp push/pull`) and their cached outputs (the trained model) through a DVC remote.

Here "machines" are clones of one bare git repository, and the DVC remote is a local folder.
"""

import csv
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from repo_helpers import FEW, env_with, make_repo, run

# Each builds a git + DVC repo and runs the pipeline in it: left out by `make test-fast`.
pytestmark = pytest.mark.e2e


def show(repo, env) -> dict:
    """`dvc exp show --csv` as {experiment name: row}."""
    rows = csv.DictReader(io.StringIO(run(repo, "dvc", "exp", "show", "--csv", env=env).stdout))
    return {row["Experiment"]: row for row in rows if row["Experiment"]}


def documented_blocks() -> list[str]:
    """The bash blocks of docs/scale-out.md's "Sweeps across machines" section, in order."""
    doc = (Path(__file__).resolve().parents[1] / "docs/scale-out.md").read_text()
    section = doc.split("## Sweeps across machines", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.S)


def test_documented_sweep_runs_as_typed_and_experiments_travel(tmp_path, mnist_dir):
    """The docs' three blocks, run as a user types them on a fresh clone of the project, with
    local folders for the two example URLs: one machine queues and runs two experiments and pushes
    them, a reader's clone pulls and compares them. Bugs caught (the first three seen in the docs):
    `git remote add origin` failing on a clone ("remote origin already exists"); `dvc push` before
    any run, with nothing in the cache to push; a "wait for the queue" step that does not wait, so
    the push sends no experiment; an output another machine needs (the model, the per-epoch
    history) that is neither in git nor pushable to the DVC remote; experiments that arrive
    without their metrics; a compare that only works where the experiments ran; a clone that has
    to retrain to get the model."""
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
    in_machine = {name: row for name, row in show(clone, env).items()
                  if name not in ("workspace", "main")}
    assert len(in_machine) == 2, in_machine
    names = sorted(in_machine)
    # The nadam run: the adam one repeats the baseline (same params), whose model `dvc push` sent.
    [nadam] = [name for name in names if in_machine[name]["optimizer"] == "nadam"]

    reader = tmp_path / "reader"
    subprocess.run(["git", "clone", "-q", str(origin), str(reader)], check=True)
    bash(reader, compare.replace("<name>", nadam))
    rows = (reader / "comparison/runs.csv").read_text().splitlines()[1:]
    assert sorted(row.split(",")[0] for row in rows) == names
    in_reader = show(reader, env)
    for name in names:
        for column in ("test_acc", "best_valid_acc", "optimizer"):
            assert in_reader[name][column] == in_machine[name][column] != "", (name, column)
    assert in_reader[names[0]]["optimizer"] != in_reader[names[1]]["optimizer"]

    # Only the DVC remote can supply the model now: the reader's cache and its copy are gone.
    run(clone, "dvc", "exp", "apply", nadam, env=env)
    shutil.rmtree(reader / ".dvc/cache", ignore_errors=True)
    (reader / "models/model.pt").unlink()
    run(reader, "dvc", "pull", env=env)
    for output in ("models/model.pt", "metrics/history.csv"):
        assert (reader / output).read_bytes() == (clone / output).read_bytes(), output
    status = run(reader, "dvc", "status", env=env)
    assert "Data and pipelines are up to date" in status.stdout, status.stdout
    repro = run(reader, "dvc", "repro", env=env)
    assert "Running stage" not in repro.stdout, repro.stdout  # nothing retrained
