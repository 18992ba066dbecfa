"""Sweeps across machines: clones of one git repository share experiments through a git remote
(`dvc exp push/pull`) and their cached outputs (the trained model) through a DVC remote.

Here "machines" are clones of one bare git repository, and the DVC remote is a local folder.
"""

import csv
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from markdown_tables import table_cells
from repo_helpers import FEW, env_with, make_repo, run

# Each builds a git + DVC repo and runs the pipeline in it: left out by `make test-fast`.
pytestmark = pytest.mark.e2e


def show(repo, env) -> dict:
    """`dvc exp show --csv` as {experiment name: row}."""
    rows = csv.DictReader(io.StringIO(run(repo, "dvc", "exp", "show", "--csv", env=env).stdout))
    return {row["Experiment"]: row for row in rows if row["Experiment"]}


def table_rows(path: Path, section: str = "## Runs") -> list[dict]:
    """The rows of the table under `section` of a comparison.md, as {column: cell}."""
    header, *rows = table_cells(path.read_text(), section)
    return [dict(zip(header, row, strict=True)) for row in rows]


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
    to retrain to get the model; a baseline committed without its metrics (seen in the docs); a
    compare page whose numbers are not its runs' own, that runs.csv alone cannot rebuild, or that
    a queued experiment crashes."""
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
    # Checked on the nadam run; neither repeats the baseline, whose model the setup's `dvc push`
    # sent already (a repeat would let `dvc exp push --no-cache` pass).
    [nadam] = [name for name in names if in_machine[name]["optimizer"] == "nadam"]

    reader = tmp_path / "reader"
    subprocess.run(["git", "clone", "-q", str(origin), str(reader)], check=True)
    compared = bash(reader, compare.replace("<name>", nadam))
    # The baseline is a run too: its metrics were committed with it (bug caught, in the docs:
    # the setup committed dvc.lock alone, so no other machine had the baseline's numbers).
    head = run(reader, "git", "rev-parse", "--short=7", "HEAD").stdout.strip()
    assert "compare: 3 runs" in compared.stdout, compared.stdout
    rows = (reader / "comparison/runs.csv").read_text().splitlines()[1:]
    assert sorted(row.split(",")[0] for row in rows) == sorted([*names, f"commit {head}"])
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

    # The reader's page: each row's numbers are its run's own metrics files (bug caught: compare
    # reading keys that `dvc exp show` no longer reports, leaving columns blank or wrong).
    page = reader / "comparison/comparison.md"
    table = table_rows(page)
    assert {row["cell"] for row in table} == {"adam + warmup", "nadam + warmup", "sgdm + warmup"}
    for name in ("curves", "test_errors"):
        assert (reader / f"comparison/{name}.png").read_bytes()[:4] == b"\x89PNG"
    revs = {**{name: in_reader[name]["rev"] for name in names}, f"commit {head}": "HEAD"}
    assert sorted(row["experiment"] for row in table) == sorted(revs)
    for row in table:
        rev = revs[row["experiment"]]
        metrics = {**json.loads(run(reader, "git", "show", f"{rev}:metrics/test.json").stdout),
                   **json.loads(run(reader, "git", "show", f"{rev}:metrics/train.json").stdout)}
        for key in ("test_acc", "test_acc_graded", "test_loss", "best_valid_acc"):
            assert row[key] == f"{metrics[key]:.4f}", (row["experiment"], key)
        assert row["best_epoch"] == f"{metrics['best_epoch']:g}", row["experiment"]

    # From git alone: the kept rows rebuild the same page, with no DVC experiment left.
    before = page.read_text()
    run(reader, "dvc", "exp", "remove", "--all", env=env)
    run(reader, "python", "-m", "commands.compare", "--from", "comparison/runs.csv", "--out", "again",
        env=env)
    assert (reader / "again/comparison.md").read_text() == before

    # Only a queued experiment left: it is skipped in one line, not a traceback, and the rows
    # runs.csv kept stay on the page.
    run(reader, "dvc", "exp", "run", "--queue", "-S", "optimizer=sgdm", "-n", "still-queued", env=env)
    done = run(reader, "python", "-m", "commands.compare", env=env)
    assert "compare: skipped, no results of their own: still-queued (Queued)\n" in done.stdout
    assert "Traceback" not in done.stderr
    assert sorted(row["experiment"] for row in table_rows(page)) == sorted(revs)
