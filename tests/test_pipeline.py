"""The real pipeline through DVC, in a temporary git repo copy, on a small subset of real MNIST."""

import json

import pytest

from repo_helpers import env_with, make_repo, run


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


def test_queued_sweep_runs_and_compare_reports_it(repo, mnist_dir):
    env = env_with(mnist_dir)
    run(repo, "dvc", "exp", "run", "--queue", "-S", "optimizer=adam,sgdm", "-S", "train.lr=0.001",
        env=env)
    run(repo, "dvc", "exp", "run", "--run-all", "-j", "1", env=env)  # as the README says
    rows = json.loads(run(repo, "dvc", "exp", "show", "--json").stdout)
    names = [e["revs"][0]["name"] for row in rows for e in (row.get("experiments") or [])
             if e["revs"][0]["data"]["params"]["params.yaml"]["data"]["train"]["lr"] == 0.001]
    assert len(names) == 2
    done = run(repo, "python", "-m", "stages.compare", *names, "--out", "reports", env=env)
    table = (repo / "reports/comparison.md").read_text().splitlines()
    rows = [line for line in table if line.startswith("| ") and not line.startswith("| experiment")]
    assert sorted(line.split(" | ")[0][2:] for line in rows) == sorted(names)
    assert {line.split(" | ")[1] for line in rows} == {"adam", "sgdm"}
    for name in ("valid_accuracy", "valid_loss", "test_accuracy"):
        assert (repo / f"reports/{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert "compare: 2 experiments" in done.stdout
