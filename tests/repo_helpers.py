"""Build a throwaway copy of the project as its own git + DVC repo, and run commands in it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mnist_dvc.params import with_overrides

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["dvc.yaml", "params.yaml", "stages", "mnist_dvc", ".dvc/config", ".dvcignore",
                 ".gitignore"]
TINY = {"data.train_limit": 1200, "data.test_limit": 400,
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


def make_repo(path: Path, overrides: dict = TINY) -> Path:
    """A copy of the project as its own git + DVC repo, params.yaml with dotted overrides."""
    copy_project(path)
    write_params(path, overrides)
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "t@example.com"],
                ["git", "config", "user.name", "test"]):
        subprocess.run(cmd, cwd=path, check=True)
    run(path, "dvc", "config", "--local", "core.site_cache_dir", str(path.parent / "site-cache"))
    subprocess.run(["git", "add", "-A"], cwd=path, check=True)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=path, check=True)
    return path


def env_with(mnist_dir: Path) -> dict:
    env = dict(os.environ, MNIST_LOCAL_DIR=str(mnist_dir))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.pop("MNIST_THREADS", None)
    return env


def run(repo: Path, *args, env=None, check=True) -> subprocess.CompletedProcess:
    done = subprocess.run(list(args), cwd=repo, env=env or env_with(Path("/nonexistent")),
                          capture_output=True, text=True)
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done
