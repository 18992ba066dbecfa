"""Build a throwaway copy of the project as its own git + DVC repo, and run commands in it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["dvc.yaml", "params.yaml", "stages", "mnist_dvc", ".dvc/config", ".dvcignore",
                 ".gitignore"]
TINY = {"data": {"train_limit": 1200, "test_limit": 400},
        "train": {"epochs": 1, "batch_size": 64, "bf16": False}}


def tiny_params(text: str, updates: dict) -> dict:
    raw = yaml.safe_load(text)
    for key, value in updates.items():
        if isinstance(value, dict):
            raw[key].update(value)
        else:
            raw[key] = value
    return raw


def make_repo(path: Path, params_updates: dict = TINY) -> Path:
    path.mkdir(parents=True)
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, path / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, path / name)
    params = tiny_params((ROOT / "params.yaml").read_text(), params_updates)
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
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
