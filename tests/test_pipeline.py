"""The real pipeline through DVC, in a temporary git repo copy, on a small subset of real MNIST."""

import json
import time
from pathlib import Path

import pytest
import torch
from repo_helpers import copy_repo, env_with, run

from mnist_dvc import handin, results

# Each builds a git + DVC repo and runs the pipeline in it: left out by `make test-fast`.
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def repo(tmp_path_factory, tiny_baseline):
    """A repo after one `dvc repro`, its results committed: a copy of the session's tiny_baseline."""
    return copy_repo(tiny_baseline, tmp_path_factory.mktemp("pipeline") / "repo")


def test_repro_leaves_model_metrics_and_figures(repo):
    """What a `dvc repro` leaves, and that the files agree. The accuracy ranges guard that the
    stages are wired to each other (one tiny epoch reaches about 0.9; chance is 0.1, so a stage fed
    the wrong split, an untrained model or shuffled labels falls under 0.5); train.json must be
    the history's best row; label smoothing must show as a graded score below argmax that the
    hand-in's sharpening recovers."""
    train = json.loads((repo / "metrics/train.json").read_text())
    test = json.loads((repo / "metrics/test.json").read_text())
    assert train["epochs_run"] == 1 and train["best_epoch"] == 1
    assert 0.5 < train["best_valid_acc"] <= 1
    assert 0.5 < test["test_acc"] <= 1 and 0 < test["test_loss"] < 2
    assert test["test_acc_graded"] < test["test_acc"] - 0.01 < test["handin_test_acc_graded"]
    assert test["handin_factor"] in handin.FACTORS and test["handin_factor"] > 1
    assert list(test) == list(results.names(results.EvaluateMetrics))
    assert list(train) == list(results.names(results.TrainMetrics))
    assert 0 <= test["handin_test_ece"] < 1 and 0 <= test["test_ece"] < 1
    calibration = (repo / "metrics/calibration.csv").read_text().splitlines()
    assert len(calibration) == 16 and calibration[0].startswith("bin,low,high,raw_count,")
    history = (repo / "metrics/history.csv").read_text().splitlines()
    assert history[0] == "epoch,lr,train_loss,train_acc,valid_loss,valid_acc,test_loss,test_acc"
    assert len(history) == 2
    row = dict(zip(history[0].split(","), history[1].split(","), strict=True))
    assert float(row["valid_acc"]) == train["best_valid_acc"]
    assert len((repo / "metrics/predictions.csv").read_text().splitlines()) == 401
    for name in ("curves", "confusion", "misclassified", "reliability"):
        assert (repo / f"figures/{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (repo / "checkpoints/train.pt").exists()


def test_stages_take_the_test_process_share_of_the_cores(repo):
    """Bug caught: the stages a test starts through DVC run with torch's default threads beside
    the other xdist workers (env_with dropping MNIST_THREADS): every end-to-end test then waits on
    oversubscribed cores. Run in one process, both are torch's default."""
    timing = json.loads((repo / "metrics/timing.json").read_text())
    assert timing["threads"] == torch.get_num_threads()


def test_saved_model_loads_into_plain_myconvnet(repo):
    from mnist_dvc.model import MyConvNet

    MyConvNet().load_state_dict(torch.load(repo / "models/model.pt", weights_only=True))


def test_evaluate_metrics_match_an_independent_argmax(repo):
    """Recompute the evaluate stage's numbers from models/model.pt and the test split by hand.

    Bugs caught: accuracy from another model or split (e.g. valid, or the last epoch instead of
    the best), a softmax/argmax slip, predictions.csv rows out of order, per-digit precision and
    recall swapped (or the confusion matrix transposed) in classes.csv."""
    from mnist_dvc.model import MyConvNet

    blob = torch.load(repo / "data/prepared/test.pt", weights_only=True)
    images, labels = blob["images"], blob["labels"]
    model = MyConvNet()
    model.load_state_dict(torch.load(repo / "models/model.pt", weights_only=True))
    with torch.no_grad():
        predicted = model.eval()(images.float().unsqueeze(1) / 255).argmax(1)
    test = json.loads((repo / "metrics/test.json").read_text())
    assert test["test_acc"] == round((predicted == labels).double().mean().item(), 6)
    rows = (repo / "metrics/predictions.csv").read_text().splitlines()
    assert rows[1:] == [f"{a},{p}" for a, p in zip(labels.tolist(), predicted.tolist(), strict=True)]

    classes = (repo / "metrics/classes.csv").read_text().splitlines()
    assert classes[0] == "digit,precision,recall,f1,support"
    asymmetric = 0
    for line in classes[1:]:
        digit, precision, recall, _, support = line.split(",")
        d = int(digit)
        hits = ((predicted == d) & (labels == d)).sum().item()
        by_hand = (hits / max((predicted == d).sum().item(), 1), hits / max((labels == d).sum().item(), 1))
        assert (float(precision), float(recall)) == pytest.approx(by_hand, abs=1e-6), digit
        assert int(support) == (labels == d).sum().item()
        asymmetric += abs(by_hand[0] - by_hand[1]) > 1e-3
    assert asymmetric >= 3, "precision equals recall for most digits: a swap would go unseen"


def test_second_repro_runs_nothing(repo, mnist_dir):
    done = run(repo, "dvc", "repro", env=env_with(mnist_dir))
    assert "Data and pipelines are up to date" in done.stdout
    assert "Running stage" not in done.stdout


def test_metrics_and_plots_are_declared(repo):
    metrics = json.loads(run(repo, "dvc", "metrics", "show", "--json").stdout)
    files = next(iter(metrics.values()))["data"]
    assert {"metrics/train.json", "metrics/test.json", "metrics/timing.json"} <= set(files)
    # DVC lists every declared plot even when its file failed to load: it then adds an `errors`
    # entry, leaves that plot's data empty and still exits 0. Bugs caught: a plot file missing,
    # renamed, or not tracked at this revision; a column a plot names missing from its file.
    shown = json.loads(run(repo, "dvc", "plots", "show", "--json").stdout)
    assert "errors" not in shown, shown.get("errors")
    plots = shown["data"]
    assert {"loss", "accuracy", "learning_rate", "confusion", "per_class_f1",
            "figures/curves.png", "figures/confusion.png", "figures/misclassified.png",
            "figures/reliability.png"} == set(plots)
    sizes = {"loss": 3, "accuracy": 3, "learning_rate": 1, "confusion": 400, "per_class_f1": 10}
    for name, entries in plots.items():
        assert len(entries) == 1, name
        if name.endswith(".png"):
            assert Path(entries[0]["url"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
            continue
        values = entries[0]["content"]["data"]["values"]
        assert len(values) == sizes[name], name  # one row per epoch and field / image / digit
    accuracy = plots["accuracy"][0]["content"]["data"]["values"]
    assert {row["field"] for row in accuracy} == {"train_acc", "valid_acc", "test_acc"}
    assert all(row["dvc_inferred_y_value"] not in ("", None) for row in accuracy)
    assert "up to date" in run(repo, "dvc", "status").stdout


def test_typo_in_optimizer_fails_before_training(repo, mnist_dir):
    done = run(repo, "dvc", "exp", "run", "-S", "optimizer=nadamm", env=env_with(mnist_dir), check=False)
    assert done.returncode != 0
    assert ("error: params.yaml: optimizer = 'nadamm' is invalid: must be one of adam, nadam, sgdm"
            in done.stderr)
    assert "epoch" not in done.stdout
    run(repo, "git", "checkout", "--", "params.yaml")


def test_hung_command_fails_the_test_and_is_killed(tmp_path):
    # Bug caught (in the test helper): a hung dvc call hanging the whole suite, or leaving the
    # stage it started running after the test gave up.
    started = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match=r"did not finish within 1 s .*\(hung\?\), killed"):
        run(tmp_path, "sh", "-c", "sleep 60 & echo $! > child.pid; wait", timeout=1)
    # Killing only the direct child would leave `sleep` holding the output pipe: the helper would
    # then wait out its whole minute.
    assert time.monotonic() - started < 30, "the helper waited for the command's child to finish"
    child = int((tmp_path / "child.pid").read_text())
    # SIGKILL is delivered asynchronously: on a busy CPU the child can still show as running (R)
    # for a moment while it exits. Left alive, it would sleep on for a minute, far past this wait.
    deadline = time.monotonic() + 10
    while True:
        try:
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            state = "gone"
        if state in ("gone", "Z", "X") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert state in ("gone", "Z", "X"), f"the command's child {child} is still running ({state})"
