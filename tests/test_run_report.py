"""The run report (reports/run.md): its content from known inputs, and the stage through DVC."""

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from repo_helpers import ROOT, env_with, make_repo, run

from mnist_dvc import metrics_files, run_report
from mnist_dvc.errors import MnistError
from mnist_dvc.results import DigitMetrics, EvaluateMetrics, Timing, TrainMetrics

TRAIN = TrainMetrics(best_valid_acc=0.99511, best_valid_loss=0.087589, best_epoch=7, epochs_run=8)
TEST = EvaluateMetrics(test_acc=0.9952, test_acc_graded=0.923112, handin_test_acc_graded=0.995041,
                   handin_factor=4.0, test_loss=0.087038, test_ece=0.071234,
                   handin_test_loss=0.021987, handin_test_ece=0.002345, macro_precision=0.995193,
                   macro_recall=0.995205, macro_f1=0.995195)
TIMING = Timing(train_seconds=328.871801, seconds_per_epoch=41.108975, device="cpu",
                hardware="AMD EPYC 9R14 (avx512_bf16)", precision="bf16",
                precision_reason="native on this CPU", processor="x86_64", torch="2.13.0+cpu",
                threads=2, date_utc="2026-11-30 00:10", git_commit="83dfbf2a1b2c-dirty")
CLASSES = [DigitMetrics(digit=d, precision=1.0 if d == 0 else 0.99, recall=0.98, f1=0.985,
                        support=1000 + d) for d in range(10)]
DEFAULTS = yaml.safe_load((ROOT / "params.yaml").read_text())  # params.yaml as committed
LINKS = {"Curves": "../figures/curves.png", "Confusion": "../figures/confusion.png",
         run_report.RELIABILITY_CAPTION: "../figures/reliability.png"}


def test_report_from_known_inputs(make_params):
    """Every number lands in its row, rounded as shown; only the changed params are listed, with
    this run's value and the default, in params.yaml order. Catches a metric read from the wrong
    key (valid accuracy shown as test accuracy), a changed param left out or an unchanged one listed."""
    params = make_params(optimizer="nadam", **{"train.epochs": 20, "train.augment": False,
                                               "train.lr": 0.0005, "data.train_limit": 1000})
    text = run_report.render(params, DEFAULTS, TRAIN, TEST, TIMING, CLASSES, LINKS, "idx")
    lines = text.splitlines()
    assert lines[0] == "# Run report"
    for expected in [
        "| test accuracy | **0.9952** (loss 0.0870, macro F1 0.9952) |",
        "| best epoch | 7 of 8 run (valid accuracy 0.9951, loss 0.0876) |",
        "| training time | 329 s (41.1 s per epoch, per-epoch evaluation included) |",
        "| precision | bf16 (native on this CPU) |",
        "| machine | cpu: AMD EPYC 9R14 (avx512_bf16); processor x86_64; torch 2.13.0+cpu, 2 threads |",
        "| trained | 2026-11-30 00:10 UTC at commit 83dfbf2a1b2c-dirty, from the four MNIST IDX files "
        "(MD5-checked) |",
        "| graded the course's way | 0.9231 (expected score when a label is sampled from the softmax, "
        "as the course's grader does) |",
        "| the hand-in, graded | 0.9950 (last layer x4: `python -m commands.handin ID NAME`) |",
        "| calibration | ECE 0.0712 raw, 0.0023 hand-in; NLL (the loss) 0.0870 raw, 0.0220 hand-in "
        "(15 confidence bins; see below) |",
        "| 0 | 1.0000 | 0.9800 | 0.9850 | 1000 |",
        "| 9 | 0.9900 | 0.9800 | 0.9850 | 1009 |",
        "![Curves](../figures/curves.png)",
        "![Confusion](../figures/confusion.png)",
    ]:
        assert expected in lines, expected
    start = lines.index("| param | this run | committed |")
    assert lines[start + 2:start + 7] == [
        "| `optimizer` | nadam | adam |",
        "| `data.train_limit` | 1000 | 0 |",
        "| `train.epochs` | 20 | 4 |",
        "| `train.lr` | 0.0005 | 0.003 |",
        "| `train.augment` | false | true |",
    ]
    assert lines[start + 7] == ""  # nothing else listed
    assert sum(line.startswith("| ") and line[2].isdigit() for line in lines) == 10  # one row a digit
    why = lines.index("## Why two accuracies")
    assert lines[why + 2] == run_report.WHY_TWO_ACCURACIES
    assert lines[why + 4] == f"![{run_report.RELIABILITY_CAPTION}](../figures/reliability.png)"
    assert lines.count(f"![{run_report.RELIABILITY_CAPTION}](../figures/reliability.png)") == 1


def test_defaults_run_says_so(make_params):
    """params.yaml as committed: nothing listed as changed. Catches a
    2e-3 vs 0.002 or 8 vs 8.0 spelling taken for a change."""
    text = run_report.render(make_params(), DEFAULTS, TRAIN, TEST, TIMING, CLASSES, LINKS, "idx")
    assert "None: this run used params.yaml as committed" in text
    assert "| param |" not in text


def test_the_stage_compares_with_params_yaml_as_committed_not_the_workspace(tmp_path):
    """Inside `dvc exp run -S train.lr=0.01` the workspace params.yaml holds the change; the report
    lists it against git HEAD's params.yaml. Bug caught: defaults read from the workspace file
    (nothing ever differs), or from a copy in the code that drifts from params.yaml (the two
    disagreed before: defaults now have one home); outside git the report says it cannot tell."""
    from mnist_dvc import provenance

    (tmp_path / "params.yaml").write_text("train:\n  lr: 0.003\n")
    assert provenance.committed("params.yaml", tmp_path) is None  # not a git checkout
    for cmd in (["init", "-q"], ["add", "params.yaml"],
                ["-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "p"]):
        subprocess.run(["git", *cmd], cwd=tmp_path, check=True)
    (tmp_path / "params.yaml").write_text("train:\n  lr: 0.01\n")
    assert yaml.safe_load(provenance.committed("params.yaml", tmp_path)) == {"train": {"lr": 0.003}}


def test_outside_git_the_report_says_it_cannot_compare(make_params):
    text = run_report.render(make_params(**{"train.lr": 0.01}), None, TRAIN, TEST, TIMING, CLASSES,
                             LINKS, "idx")
    assert "Not known: this is not a git checkout" in text and "| `train.lr` |" not in text


def test_a_param_not_in_the_committed_params_and_booleans(make_params):
    """A key the committed params.yaml lacks is listed as not in it; true is not 1."""
    params = make_params()
    defaults = {k: v for k, v in DEFAULTS.items() if k != "seed"}
    defaults["data"] = {**defaults["data"], "stratify": 1}
    changed = {key: (value, default) for key, value, default in run_report.changed_params(params, defaults)}
    assert changed == {"seed": (0, None), "data.stratify": (False, 1)}
    assert run_report.show(None) == "(not in the committed params.yaml)"
    assert [run_report.show(v) for v in (True, 1e-05, 0.167, 8, "adam")] == ["true", "1e-05", "0.167",
                                                                               "8", "adam"]


def test_true_is_not_1_nor_false_0(make_params):
    """A boolean param is listed when its default is the number 1 or 0 (true == 1 in Python).
    Catches `_same`'s boolean guard removed: true against a default of 1 (and false against 0,
    1 against a default of true) would be taken as unchanged and left out of the report."""
    params = make_params(**{"train.epochs": 1})
    defaults = {**DEFAULTS, "data": {**DEFAULTS["data"], "stratify": 0},
                "train": {**DEFAULTS["train"], "augment": 1, "epochs": True}}
    changed = {key: (value, default)
               for key, value, default in run_report.changed_params(params, defaults)}
    assert changed == {"data.stratify": (False, 0), "train.augment": (True, 1),
                       "train.epochs": (1, True)}


def test_timing_from_an_older_run_says_not_recorded(make_params):
    """timing.json from before the machine fields existed: the report says so instead of failing."""
    old = Timing(train_seconds=300.0, seconds_per_epoch=37.5)  # what parse gives such a file
    text = run_report.render(make_params(), DEFAULTS, TRAIN, TEST, old, CLASSES, LINKS, "starter")
    assert "| precision | not recorded |" in text
    assert ("| machine | not recorded: not recorded; processor not recorded; torch not recorded, "
            "not recorded threads |") in text
    assert ("| trained | date and commit not recorded, from the starter code's four .pth tensor files "
            "(checked) |") in text


@pytest.mark.parametrize("which, key, origin", [
    ("train", "best_epoch", "metrics/train.json"), ("test", "test_acc", "metrics/test.json"),
    ("test", "handin_test_ece", "metrics/test.json"),
    ("timing", "train_seconds", "metrics/timing.json"), ("classes", "f1", "metrics/classes.csv")])
def test_missing_metric_is_one_clear_error(tmp_path, which, key, origin):
    """The report stage's inputs as files, one lacking a field: one line naming the file and the
    field. Catches a field read as None (a report saying "None") or a KeyError traceback."""
    records = {"train": (TRAIN, TrainMetrics), "test": (TEST, EvaluateMetrics),
               "timing": (TIMING, Timing), "classes": (CLASSES, DigitMetrics)}
    record, record_type = records[which]
    path = tmp_path / origin
    path.parent.mkdir()
    if which == "classes":
        rows = [{k: v for k, v in vars(row).items() if k != key} for row in record]
        metrics_files.write_csv(path, rows)
        read = lambda: metrics_files.read_records(path, record_type)  # noqa: E731
    else:
        values = dict(vars(record))
        del values[key]
        metrics_files.write_json(path, values)
        read = lambda: metrics_files.read_record(path, record_type)  # noqa: E731
    with pytest.raises(MnistError, match=f"^{re.escape(str(path))} lacks {key}: it is not from "
                                         "this project's stages; rerun dvc repro$"):
        read()


def test_figure_links_are_relative_to_the_report(tmp_path):
    """Links must resolve from the report's folder (GitHub renders them there). Catches a link
    written relative to the project root (figures/curves.png from reports/ is a dead link)."""
    figures = tmp_path / "figures"
    figures.mkdir()
    for name in run_report.FIGURES:
        (figures / name).write_bytes(b"\x89PNG")
    report = tmp_path / "reports/run.md"
    links = run_report.figure_links(figures, report)
    assert list(links.values()) == ["../figures/curves.png", "../figures/confusion.png",
                                    "../figures/misclassified.png", "../figures/reliability.png"]
    assert all((report.parent / link).resolve().is_file() for link in links.values())
    (figures / "confusion.png").unlink()
    with pytest.raises(MnistError, match="confusion.png is missing: run the plot stage first"):
        run_report.figure_links(figures, report)


@pytest.mark.e2e
def test_report_stage_through_dvc_writes_a_git_tracked_page(tmp_path):
    """`dvc repro report` on known metrics files: reports/run.md appears with the params changed
    from the committed params.yaml (lr, as -S leaves it), links that resolve, and is left for git to commit
    (cache: false, not in .gitignore); editing a param marks the report stage changed.
    Catches a report not declared in dvc.yaml, kept in the DVC cache, or not rerun on -S changes,
    and defaults read from the workspace params.yaml (nothing would ever differ)."""
    repo = make_repo(tmp_path / "repo")
    (repo / "metrics").mkdir()
    (repo / "figures").mkdir()
    (repo / "data/raw").mkdir(parents=True)  # what fetch leaves: the report names the data source
    for name, record in (("train.json", TRAIN), ("test.json", TEST), ("timing.json", TIMING)):
        metrics_files.write_record(repo / "metrics" / name, record)
    metrics_files.write_records(repo / "metrics/classes.csv", CLASSES)
    for name in run_report.FIGURES:
        (repo / "figures" / name).write_bytes(b"\x89PNG\r\n\x1a\n")
    env = env_with(Path("/nonexistent"))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["lr"] = 0.01  # as `dvc exp run -S train.lr=0.01` leaves params.yaml
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    done = run(repo, "dvc", "repro", "--single-item", "report", env=env)
    assert "report: reports/run.md" in done.stdout
    text = (repo / "reports/run.md").read_text()
    # Against params.yaml as committed (the repo's tiny limits are committed: not a change).
    assert "| `train.lr` | 0.01 | 0.003 |" in text and "`data.train_limit`" not in text
    assert "| test accuracy | **0.9952** (loss 0.0870, macro F1 0.9952) |" in text
    assert "from the four MNIST IDX files (MD5-checked) |" in text
    for link in [line.split("](")[1][:-1] for line in text.splitlines() if line.startswith("![")]:
        assert (repo / "reports" / link).is_file(), link
    ignored = subprocess.run(["git", "check-ignore", "-q", "reports/run.md"], cwd=repo)
    assert ignored.returncode == 1  # not ignored: git commits it
    assert [p for p in (repo / ".dvc/cache").rglob("*") if p.is_file()] == []  # not in the cache
    assert "up to date" in run(repo, "dvc", "status", "report", env=env).stdout
    params["train"]["lr"] = 0.02
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = run(repo, "dvc", "status", "report", env=env).stdout
    assert "changed deps" in status and "params.yaml" in status and "modified" in status
