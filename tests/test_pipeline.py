"""The real pipeline through DVC, in a temporary git repo copy, on a small subset of real MNIST."""

import json
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
    for group, values in updates.items():
        raw[group].update(values)
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


@pytest.fixture(scope="module")
def repo(tmp_path_factory, mnist_dir):
    """A repo after one `dvc repro`, its results committed."""
    path = make_repo(tmp_path_factory.mktemp("pipeline") / "repo")
    env = env_with(mnist_dir)
    run(path, "dvc", "repro", env=env)
    run(path, "git", "add", "-A")
    run(path, "git", "commit", "-qm", "baseline")
    return path


def test_repro_leaves_model_metrics_and_figures(repo):
    train = json.loads((repo / "metrics/train.json").read_text())
    test = json.loads((repo / "metrics/test.json").read_text())
    assert train["epochs_run"] == 1 and train["best_epoch"] == 1
    assert 0.5 < train["best_valid_acc"] <= 1
    assert 0.5 < test["test_acc"] <= 1 and 0 < test["test_loss"] < 2
    assert set(test) == {"test_acc", "test_loss", "macro_precision", "macro_recall", "macro_f1"}
    history = (repo / "metrics/history.csv").read_text().splitlines()
    assert history[0] == "epoch,lr,train_loss,train_acc,valid_loss,valid_acc,test_loss,test_acc"
    assert len(history) == 2
    assert len((repo / "metrics/predictions.csv").read_text().splitlines()) == 401
    for name in ("curves", "confusion", "misclassified"):
        assert (repo / f"figures/{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (repo / "checkpoints/train.pt").exists()


def test_saved_model_loads_into_plain_myconvnet(repo):
    import torch

    from mnist_dvc.model import MyConvNet

    MyConvNet().load_state_dict(torch.load(repo / "models/model.pt", weights_only=True))


def test_second_repro_runs_nothing(repo, mnist_dir):
    done = run(repo, "dvc", "repro", env=env_with(mnist_dir))
    assert "Data and pipelines are up to date" in done.stdout
    assert "Running stage" not in done.stdout


def test_metrics_and_plots_are_declared(repo):
    metrics = json.loads(run(repo, "dvc", "metrics", "show", "--json").stdout)
    files = next(iter(metrics.values()))["data"]
    assert {"metrics/train.json", "metrics/test.json", "metrics/timing.json"} <= set(files)
    plots = json.loads(run(repo, "dvc", "plots", "show", "--json").stdout)["data"]
    assert {"loss", "accuracy", "learning_rate", "confusion", "per_class_f1",
            "figures/curves.png", "figures/confusion.png", "figures/misclassified.png"} == set(plots)
    accuracy = plots["accuracy"][0]["content"]["data"]["values"]
    assert {row["field"] for row in accuracy} == {"train_acc", "valid_acc", "test_acc"}
    assert "up to date" in run(repo, "dvc", "status").stdout


def test_exp_run_with_another_optimizer(repo, mnist_dir):
    env = env_with(mnist_dir)
    run(repo, "dvc", "exp", "run", "-S", "optimizer=nadam", "-n", "nadam-1", env=env)
    rows = json.loads(run(repo, "dvc", "exp", "show", "--json").stdout)
    experiments = [exp for row in rows for exp in (row.get("experiments") or [])]
    names = {e["revs"][0]["name"]: e["revs"][0]["data"] for e in experiments}
    assert "nadam-1" in names
    nadam = names["nadam-1"]
    assert nadam["params"]["params.yaml"]["data"]["optimizer"] == "nadam"
    assert "test_acc" in nadam["metrics"]["metrics/test.json"]["data"]
    diff = run(repo, "dvc", "metrics", "diff", "--json", env=env).stdout
    assert "metrics/test.json" in json.loads(diff)
    run(repo, "git", "checkout", "--", "params.yaml", "dvc.lock", "metrics", "figures")
    run(repo, "dvc", "checkout", "-q", env=env, check=False)


def test_typo_in_optimizer_fails_before_training(repo, mnist_dir):
    done = run(repo, "dvc", "exp", "run", "-S", "optimizer=nadamm", env=env_with(mnist_dir), check=False)
    assert done.returncode != 0
    assert "error: params.yaml: optimizer = 'nadamm' is invalid: must be one of adam, nadam, sgdm" in done.stderr
    assert "epoch" not in done.stdout
    run(repo, "git", "checkout", "--", "params.yaml")
