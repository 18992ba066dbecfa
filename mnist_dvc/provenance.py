"""Run provenance: when a run ran (UTC) and which commit it ran, "-dirty" when the code or params
it ran differ from that commit.

Dirty means a tracked file differs from HEAD (in the working tree or the index), except the files
the pipeline itself writes: every `outs`, `metrics` and `plots` path of dvc.yaml's stages, and
dvc.lock. Those differ by design while `dvc repro` runs (the train stage rewrites its own tracked
metrics every epoch), so counting them would mark every fresh clone's run dirty. Untracked files
never count: git does not know them, so no commit could name them either. Inside `dvc exp run`
params.yaml differs from HEAD, and the run is reported dirty: it did not run the committed params.
"""

import datetime
import subprocess
from pathlib import Path

import yaml

from mnist_dvc import paths

UNKNOWN = "unknown"


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")


def pipeline_outputs(root: Path = Path(".")) -> list[str]:
    """dvc.lock and every path dvc.yaml declares as a stage's output, relative to `root` (the
    folder holding dvc.yaml); just dvc.lock where dvc.yaml is missing or unreadable."""
    found = [paths.DVC_LOCK.as_posix()]
    try:
        stages = (yaml.safe_load((root / paths.DVC_YAML).read_text()) or {}).get("stages") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        return found
    for stage in stages.values():
        wdir = Path(stage.get("wdir", "."))
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind) or []:
                path = entry if isinstance(entry, str) else next(iter(entry))
                found.append((wdir / path).as_posix())
    return found


def git_commit(root: Path = Path(".")) -> str:
    """The checked-out commit (12 hex digits) of the repository holding `root`, "-dirty" when a
    tracked file under `root` other than a pipeline output differs from it; "unknown" outside
    git."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)

    # Pathspecs are relative to `root`; "literal": an output's name is never a glob.
    excluded = [f":(exclude,literal){path}" for path in pipeline_outputs(root)]
    try:
        head = git("rev-parse", "--short=12", "HEAD")
        if head.returncode:
            return UNKNOWN
        status = git("status", "--porcelain", "--untracked-files=no", "--", ".", *excluded)
    except (OSError, subprocess.TimeoutExpired):
        return UNKNOWN
    if status.returncode:
        return UNKNOWN
    return head.stdout.strip() + ("-dirty" if status.stdout.strip() else "")


def git_show(rev: str, path: str, root: Path = Path(".")) -> str | None:
    """A file as commit `rev` holds it (`path` from the repository's root, or `./path` from
    `root`); None outside git, or where there is no such commit or file."""
    try:
        done = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def committed(path: str, root: Path = Path(".")) -> str | None:
    """A file (relative to `root`) as the checked-out commit holds it."""
    return git_show("HEAD", f"./{path}", root)


def record(root: Path = Path(".")) -> dict:
    """What timing.json (and a benchmark's JSON) says about when and from what a run ran."""
    return {"date_utc": utc_now(), "git_commit": git_commit(root)}
