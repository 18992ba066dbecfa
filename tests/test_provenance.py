"""Run provenance (issue 25): timing.json's commit and date say what ran and when.

Each test builds a throwaway git repo holding the project's own dvc.yaml, so "a pipeline output"
means what dvc.yaml declares, and "-dirty" is checked against real git, not a mock.
"""

import datetime
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from mnist_dvc import provenance

ROOT = Path(__file__).resolve().parents[1]
# The files `dvc repro` rewrites that git tracks (cache: false in dvc.yaml), and dvc.lock: written
# out here, independently of provenance.pipeline_outputs, so a wrong reading of dvc.yaml shows.
TRACKED_OUTPUTS = ["dvc.lock", "metrics/train.json", "metrics/timing.json", "metrics/history.csv",
                   "metrics/test.json", "metrics/classes.csv", "metrics/predictions.csv",
                   "metrics/calibration.csv", "figures/curves.png", "figures/confusion.png",
                   "figures/misclassified.png", "figures/reliability.png", "reports/run.md"]
# Tracked files `dvc repro` does not write (reports/comparison.md sits beside an output but is
# written by hand-run `python -m commands.compare`); dvc.yaml last: the fixture copies the real one.
SOURCES = ["params.yaml", "mnist_dvc/training.py", "stages/train.py", "reports/comparison.md",
           "dvc.yaml"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path) -> Path:
    """A committed repo: the project's dvc.yaml, its tracked outputs and a few sources."""
    for args in (["init", "-q"], ["config", "user.email", "t@e"], ["config", "user.name", "t"]):
        git(tmp_path, *args)
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    for name in TRACKED_OUTPUTS + SOURCES[:-1]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(f"{name} as committed\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "baseline")
    return tmp_path


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "--short=12", "HEAD")


def test_clean_checkout_names_its_commit(repo):
    # Bugs caught: a clean run reported dirty (always "-dirty", or git asked about another folder
    # than the project's); a commit other than HEAD (the first one, a longer or shorter hash).
    (repo / "params.yaml").write_text("second\n")
    git(repo, "commit", "-qam", "second")
    assert provenance.git_commit(repo) == head(repo)
    assert re.fullmatch(r"[0-9a-f]{12}", head(repo))


@pytest.mark.parametrize("output", TRACKED_OUTPUTS)
def test_files_the_pipeline_writes_do_not_make_it_dirty(repo, output):
    # Bug caught: the train stage's own tracked metrics (or dvc.lock, or a later stage's output
    # from an earlier run) marking every fresh clone's `dvc repro` as "<commit>-dirty".
    (repo / output).write_text("rewritten by the pipeline\n")
    assert provenance.git_commit(repo) == head(repo)


def test_untracked_files_do_not_make_it_dirty(repo):
    # Bug caught: untracked files (a scratch note, a hand-in file, an output not in git such as
    # models/model.pt) counted as a change to the commit.
    (repo / "notes.txt").write_text("scratch\n")
    (repo / "mnist_dvc/scratch.py").write_text("x = 1\n")
    assert provenance.git_commit(repo) == head(repo)


@pytest.mark.parametrize("source", SOURCES)
def test_a_changed_tracked_source_makes_it_dirty(repo, source):
    # Bugs caught: a run of uncommitted code or params (every `dvc exp run -S` changes params.yaml)
    # reported as the clean commit, e.g. by excluding whole folders rather than the declared outputs.
    (repo / source).write_text((repo / source).read_text() + "# changed\n")
    assert provenance.git_commit(repo) == head(repo) + "-dirty"


def test_staged_and_deleted_changes_make_it_dirty(repo):
    # Bug caught: asking `git diff` (working tree only), which misses a change already staged.
    (repo / "mnist_dvc/training.py").write_text("changed and staged\n")
    git(repo, "add", "mnist_dvc/training.py")
    assert provenance.git_commit(repo) == head(repo) + "-dirty"
    git(repo, "commit", "-qm", "x")
    (repo / "stages/train.py").unlink()
    assert provenance.git_commit(repo) == head(repo) + "-dirty"


def test_an_output_changed_beside_a_source_is_still_dirty(repo):
    (repo / "metrics/train.json").write_text("rewritten\n")
    (repo / "params.yaml").write_text("seed: 1\n")
    assert provenance.git_commit(repo) == head(repo) + "-dirty"


def test_outside_git_the_commit_is_unknown(tmp_path):
    # Bug caught: a crash (or an invented commit) where the project is not a git checkout.
    assert provenance.git_commit(tmp_path) == "unknown"


def test_pipeline_outputs_are_what_dvc_yaml_declares():
    # Bug caught: a second hand-written list of outputs drifting from dvc.yaml (a new output that
    # marks runs dirty, an output not in git that is never looked at).
    outputs = set(provenance.pipeline_outputs(ROOT))
    assert set(TRACKED_OUTPUTS) | {"models/model.pt", "data/raw", "data/prepared"} == outputs


def test_pipeline_outputs_without_dvc_yaml_is_just_dvc_lock(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: [unclosed\n")
    assert provenance.pipeline_outputs(tmp_path) == ["dvc.lock"]
    (tmp_path / "dvc.yaml").unlink()
    assert provenance.pipeline_outputs(tmp_path) == ["dvc.lock"]


def test_date_is_utc_whatever_the_local_zone(monkeypatch, repo):
    # Bug caught: the local time written as UTC (14 hours off in this zone).
    monkeypatch.setenv("TZ", "Etc/GMT-14")
    time.tzset()
    try:
        record = provenance.record(repo)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    written = datetime.datetime.strptime(record["date_utc"], "%Y-%m-%d %H:%M").replace(
        tzinfo=datetime.UTC)
    assert abs(datetime.datetime.now(datetime.UTC) - written) < datetime.timedelta(minutes=2)
    assert record["git_commit"] == head(repo)
