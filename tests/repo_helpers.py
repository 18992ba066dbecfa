"""Build a throwaway copy of the project as its own git + DVC repo, and run commands in it."""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mnist_dvc.params import with_overrides

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["dvc.yaml", "params.yaml", "stages", "commands", "mnist_dvc", ".dvc/config",
                 ".dvcignore", ".gitignore", "plots"]  # plots/: the page template .dvc/config names
TINY = {"data.train_limit": 1200, "data.test_limit": 400,
        "train.epochs": 1, "train.batch_size": 32, "train.precision": "fp32"}
# Fewer steps still, for the tests of what runs around training (the study runner, remotes): 250
# training images, 4 steps of 64. The model learns little: those tests need runs, not accuracy.
FEW = {"data.train_limit": 300, "data.test_limit": 100,
       "train.epochs": 1, "train.batch_size": 64, "train.precision": "fp32"}


def copy_project(path: Path, names: list[str] = PROJECT_FILES) -> Path:
    """Copy these project files and folders into `path`."""
    path.mkdir(parents=True, exist_ok=True)
    for name in names:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, path / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, path / name)
    return path


def write_params(project: Path, overrides: dict) -> None:
    """The project's params.yaml with dotted overrides ("train.lr": 0.1), written into `project`."""
    raw = with_overrides(yaml.safe_load((ROOT / "params.yaml").read_text()), overrides)
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def mark_project(folder: Path) -> Path:
    """Make `folder` a project the user commands recognise (paths.project_root): the project's
    dvc.yaml and params.yaml in it (the rest is whatever the test puts there)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", "params.yaml"):
        if not (folder / name).exists():
            shutil.copy(ROOT / name, folder / name)
    return folder


def make_repo(path: Path, overrides: dict = TINY) -> Path:
    """A copy of the project as its own git + DVC repo, params.yaml with dotted overrides."""
    copy_project(path)
    write_params(path, overrides)
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "t@example.com"],
                ["git", "config", "user.name", "test"]):
        run(path, *cmd)
    run(path, "dvc", "config", "--local", "core.site_cache_dir", str(path.parent / "site-cache"))
    run(path, "git", "add", "-A")
    run(path, "git", "commit", "-qm", "init")
    return path


def copy_repo(source: Path, path: Path) -> Path:
    """A copy of the git + DVC repo `source` at `path`: its commits, workspace and DVC cache, so it
    is as up to date as `source`; with its own DVC site cache."""
    shutil.copytree(source, path, symlinks=True)
    run(path, "dvc", "config", "--local", "core.site_cache_dir", str(path.parent / "site-cache"))
    return path


def env_with(mnist_dir: Path) -> dict:
    env = dict(os.environ, MNIST_LOCAL_DIR=str(mnist_dir))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


# Generous: the slowest call in the suite (a queued sweep of two tiny trainings) takes ~30 s alone,
# a few minutes on a loaded machine. Past this, a call is hung (a DVC lock, a queue worker that never
# starts), and the test fails saying so instead of hanging the whole suite.
TIMEOUT_S = 900


def run(repo: Path, *args, env=None, check=True, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run a command in `repo`; fail the test with its output if it fails (check) or outlives
    `timeout`. It runs in its own process group, killed whole on a timeout or an interrupt, so no
    stage that `dvc` started is left running."""
    args = [str(a) for a in args]
    with subprocess.Popen(args, cwd=repo, env=env or env_with(Path("/nonexistent")), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          start_new_session=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except BaseException as exc:
            with contextlib.suppress(ProcessLookupError):  # the group may be gone already
                os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            if isinstance(exc, subprocess.TimeoutExpired):
                pytest.fail(f"{' '.join(args)} did not finish within {timeout:g} s in {repo} "
                            f"(hung?), killed; its output:\n{stdout}\n{stderr}")
            raise
    done = subprocess.CompletedProcess(args, process.returncode, stdout, stderr)
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done
