import json
import math
import subprocess
from pathlib import Path

import pytest
import yaml
from repo_helpers import ROOT

from mnist_dvc import compare, study, study_plan
from mnist_dvc.errors import MnistError
from mnist_dvc.params import flatten

ROWS = [
    {"Experiment": None, "rev": "workspace", "optimizer": "adam", "train.lr": 0.002, "test_acc": 0.99},
    {"Experiment": "a", "rev": "1111111", "optimizer": "adam", "train.lr": 0.002, "test_acc": 0.95,
     "test_loss": 0.2, "best_epoch": 3.0},
    {"Experiment": "b", "rev": "2222222", "optimizer": "sgdm", "train.lr": 0.002, "test_acc": 0.97,
     "test_loss": 0.1, "best_epoch": 2.0},
]


def test_select_all_experiments_or_the_named_ones():
    """Bugs caught: the workspace (uncommitted) compared as a run; the baseline commit dropped,
    which leaves the study's baseline cell without its seed-0 run."""
    assert [r["Experiment"] for r in compare.pick_experiments(ROWS, [])] == ["a", "b"]
    base = {"Experiment": None, "rev": "main", "optimizer": "adam", "test_acc": 0.98}
    assert [r["rev"] for r in compare.pick_experiments([ROWS[0], base, *ROWS[1:]], [])] == ["main", "1111111",
                                                                                  "2222222"]
    assert [r["Experiment"] for r in compare.pick_experiments(ROWS, ["b"])] == ["b"]
    assert compare.pick_experiments(ROWS, ["1111111"])[0]["Experiment"] == "a"


def test_select_unknown_or_none():
    with pytest.raises(MnistError, match="no experiment named c: choose from a, b"):
        compare.pick_experiments(ROWS, ["c"])
    with pytest.raises(MnistError, match="no experiments found: run some first"):
        compare.pick_experiments(ROWS[:1], [])


def test_flatten():
    assert flatten({"seed": 0, "train": {"lr": 1, "x": {"y": 2}}}) == {"seed": 0, "train.lr": 1,
                                                                        "train.x.y": 2}


# Rows as dvc.api.exp_show() gives them for unfinished experiments: a queued one has no metrics;
# a failed one shows its baseline's metrics files (seen with dvc 3.67), which are not its results.
QUEUED = {"Experiment": "q", "rev": "3333333", "State": "Queued", "optimizer": "nadam", "test_acc": None}
FAILED = {"Experiment": "f", "rev": "4444444", "State": "Failed", "optimizer": "nadamm", "test_acc": 0.99}
FINISHED = {"Experiment": "s", "rev": "5555555", "State": "Success", "optimizer": "sgdm", "test_acc": 0.9}
NO_METRICS = {"Experiment": "n", "rev": "6666666", "State": None, "optimizer": "sgdm", "test_acc": None}


def test_unfinished_experiments_are_skipped_with_a_one_line_note():
    # Bugs caught: a queued experiment (test_acc None) crashing the bar chart with a TypeError
    # traceback; a failed one reported with its baseline's numbers under its own name and params.
    rows, note = compare.with_results([ROWS[1], QUEUED, FINISHED, FAILED, NO_METRICS, ROWS[2]])
    assert [r["Experiment"] for r in rows] == ["a", "s", "b"]
    assert note == ("compare: skipped, no results of their own: q (Queued), f (Failed), "
                    "n (no test accuracy)")
    assert "\n" not in note
    assert compare.with_results(ROWS[1:]) == (ROWS[1:], "")


def test_nothing_left_to_compare_is_a_clear_error():
    with pytest.raises(MnistError) as error:
        compare.with_results([QUEUED, FAILED])
    assert str(error.value) == ("no experiment picked has finished with a test accuracy "
                                "(q (Queued), f (Failed)): wait for queued ones (dvc queue status), "
                                "rerun failed ones, or name finished ones")


# The study's statistics, against numbers worked out by hand.
def run(seed, acc, sampled, optimizer="adam", lr=0.002, rev=None):
    return {"experiment": f"{optimizer}-{seed}", "rev": rev or f"{optimizer}{lr}{seed}", "seed": seed,
            "optimizer": optimizer, "scheduler": "warmup", "train.lr": lr, "test_acc": acc,
            "test_acc_graded": sampled, "handin_test_acc_graded": acc, "handin_factor": 4.0,
            "test_loss": 0.1, "best_valid_acc": acc, "best_epoch": 8.0, "epochs_run": 8.0,
            "train_seconds": 100.0, "hardware": "CPU X", "precision": "bf16",
            "date_utc": f"2026-12-05 0{seed}:00", "code": "c0de"}


KEYS = ["seed", "optimizer", "scheduler", "train.lr"]
DEFAULTS = {"seed": 0, "optimizer": "adam", "scheduler": "warmup", "train.lr": 0.002}
BASE = [run(0, 0.990, 0.92), run(1, 0.992, 0.93), run(2, 0.994, 0.94)]
# nadam: +0.002, +0.003, +0.001 on the same seeds; sgdm (listed out of seed order): +0.001,
# +0.002, +0.001 in test accuracy (seeds 0, 1, 2) and exactly -0.02 each in graded accuracy.
NADAM = [run(0, 0.992, 0.92, "nadam"), run(1, 0.995, 0.93, "nadam"), run(2, 0.995, 0.94, "nadam")]
SGDM = [run(2, 0.995, 0.92, "sgdm", 0.05), run(0, 0.991, 0.90, "sgdm", 0.05),
        run(1, 0.994, 0.91, "sgdm", 0.05)]


def test_interval_by_hand():
    """0.990, 0.992, 0.994: mean 0.992, sd 0.002, half-width t(2) 4.303 x 0.002 / sqrt 3 =
    0.0049687. Catches a z (1.96) instead of t, a population sd, sqrt(n-1) for sqrt(n)."""
    iv = study.interval([0.990, 0.992, 0.994])
    assert (iv.n, iv.mean, iv.sd) == (3, pytest.approx(0.992), pytest.approx(0.002))
    assert (iv.low, iv.high) == (pytest.approx(0.992 - 0.0049687, abs=1e-7),
                                 pytest.approx(0.992 + 0.0049687, abs=1e-7))
    one = study.interval([0.99])
    assert one.n == 1 and one.mean == 0.99 and math.isnan(one.low)
    # Mutation testing: a lone value says nothing about spread (every bound NaN, not None); two
    # values already do (t with 1 degree of freedom: 12.706 x sd / sqrt 2); none is an error.
    assert all(math.isnan(x) for x in (one.sd, one.low, one.high))
    two = study.interval([0.990, 0.994])
    assert two.n == 2 and two.sd == pytest.approx(0.004 / math.sqrt(2))
    assert two.high - two.mean == pytest.approx(12.706 * two.sd / math.sqrt(2))
    with pytest.raises(ValueError, match="^no values$"):
        study.interval([])
    assert study.t975(40) == 2.042 and study.t975(12) == 2.228


def test_paired_differences_pair_by_seed():
    """NADAM - BASE = +0.002, +0.003, +0.001: mean 0.002, sd 0.001, half-width 0.0024844, so the
    interval [-0.00048, 0.00448] holds 0: not shown. SGDM - BASE in graded accuracy is -0.02 on
    every seed: sd 0, real. Catches pairing by position instead of by seed (SGDM's order would
    then give other differences)."""
    nadam = study.paired_difference(BASE, NADAM, "test_acc")
    assert nadam.mean == pytest.approx(0.002) and nadam.sd == pytest.approx(0.001)
    assert nadam.low == pytest.approx(0.002 - 0.0024844, abs=1e-7) and not nadam.excludes_zero
    sgdm = study.paired_difference(BASE, SGDM, "test_acc_graded")
    assert sgdm.mean == pytest.approx(-0.02) and sgdm.sd == pytest.approx(0, abs=1e-12)
    assert sgdm.excludes_zero
    assert study.paired_difference(BASE, [run(5, 0.99, 0.9, "nadam")], "test_acc") is None


def test_cells_group_by_params_but_the_seed_and_a_rerun_replaces_its_seed():
    rerun = run(0, 0.5, 0.5, rev="again")
    cells = study.group_cells(BASE + NADAM + [rerun], KEYS)
    assert len(cells) == 2
    assert sorted(r["test_acc"] for r in cells[study.cell_of(DEFAULTS, KEYS)]) == [0.5, 0.992, 0.994]

    # The page counts the runs it shows (bug caught: the header counting the repeated seed too).
    page = compare.study_markdown(BASE + NADAM + [rerun], KEYS, DEFAULTS)
    assert page.startswith("6 runs in 2 cells (1 not shown: a seed run again in its cell counts "
                           "once, the later row)")
    assert page.split("## Runs")[1].count("\n| ") == 1 + 6  # the header and the runs shown
    assert compare.study_markdown(BASE, KEYS, DEFAULTS).startswith("3 runs in 1 cells (a cell")


def test_study_page_marks_the_baseline_and_what_is_real():
    page = compare.study_markdown(BASE + NADAM + SGDM, KEYS, DEFAULTS)
    assert "| adam + warmup **(baseline)** | 0, 1, 2 | 0.9920 ± 0.0020 [0.9870, 0.9970] |" in page
    assert "| nadam + warmup | 3 | +0.20 [-0.05, +0.45] | not shown |" in page
    assert ("| sgdm + warmup (train.lr 0.05) | 3 | +0.13 [-0.01, +0.28] | not shown | "
            "-2.00 [-2.00, -2.00] | **real** |") in page
    cells = page.split("## Cells")[1].split("## Paired")[0]
    assert cells.index("nadam") < cells.index("sgdm") < cells.index("adam + warmup **")


def test_runs_csv_round_trip(tmp_path):
    """Params keep their types (a bool stays a bool, 0.05 a float): else a cell read back from git
    splits from the same cell read from DVC."""
    runs = [dict(r, **{"train.augment": True}) for r in BASE + SGDM]
    keys = KEYS + ["train.augment"]
    compare.write_runs(tmp_path / "runs.csv", runs, keys)
    back = compare.read_runs(tmp_path / "runs.csv", keys)
    assert back == runs
    assert len(study.group_cells(back, keys)) == 2


def files_of_a_run(params_yaml: str, test_json: dict) -> dict[str, str]:
    """The files a run's commit holds that record_at reads, by path."""
    train = {"best_valid_acc": 0.991, "best_valid_loss": 0.05, "best_epoch": 3, "epochs_run": 5}
    timing = {"train_seconds": 120.0, "seconds_per_epoch": 24.0, "hardware": "CPU", "precision": "bf16",
              "date_utc": "2026-12-05 20:08"}
    lock = {"stages": {"train": {"deps": [{"path": "mnist_dvc/training.py", "md5": "a" * 32}]},
                       "evaluate": {"deps": [{"path": "stages/evaluate.py", "md5": "b" * 32}]}}}
    history = "epoch,lr,train_loss,train_acc,valid_loss,valid_acc,test_loss,test_acc\n" + "".join(
        f"{e},0.002,0.1,0.9,0.1,0.9{e},0.1,0.9{e}\n" for e in range(1, 6))
    return {"params.yaml": params_yaml, "metrics/train.json": json.dumps(train),
            "metrics/test.json": json.dumps(test_json), "metrics/timing.json": json.dumps(timing),
            "dvc.lock": yaml.safe_dump(lock), "metrics/history.csv": history}


TEST_JSON = {"test_acc": 0.99, "test_acc_graded": 0.92, "handin_test_acc_graded": 0.989,
             "handin_factor": 4.0, "test_loss": 0.04}


def test_record_at_reads_a_run_from_its_commits_files():
    """A run's row: its params from its params.yaml, typed like the defaults (seed 1.0 -> 1, so the
    baseline's own runs are recognised as the baseline cell: 0.0 != 0 would leave it without a
    paired difference), the kept metrics from its three metrics files (best_epoch from train.json,
    train_seconds from timing.json), its code hash from dvc.lock, and its curve. An older
    test.json with other keys besides is fine. Bugs caught: a metric read from the wrong file
    (None), a param left a float, a curve read from another revision's file."""
    files = files_of_a_run("seed: 1.0\noptimizer: adam\nscheduler: warmup\ntrain:\n  lr: 0.002\n",
                           TEST_JSON | {"test_nll": 0.04})
    run, history = compare.record_at("abc1234", "x", DEFAULTS, files.__getitem__)
    assert run == {"experiment": "x", "rev": "abc1234", "seed": 1, "optimizer": "adam",
                   "scheduler": "warmup", "train.lr": 0.002, **TEST_JSON, "best_valid_acc": 0.991,
                   "best_epoch": 3, "epochs_run": 5, "train_seconds": 120.0, "hardware": "CPU",
                   "precision": "bf16", "date_utc": "2026-12-05 20:08",
                   "code": study_plan.code_of_lock(files["dvc.lock"])}
    assert isinstance(run["seed"], int)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5] and history[2]["valid_acc"] == 0.93
    assert {h["rev"] for h in history} == {"abc1234"}
    assert study.cell_of(run, KEYS) == study.cell_of({**DEFAULTS, "seed": 1}, KEYS)


def test_record_at_refuses_a_run_without_a_kept_metric():
    """A test.json without the graded accuracy (a run from before it existed) is one line naming
    the run and the metric, not a row with a hole that the study's means would turn into NaN."""
    files = files_of_a_run("seed: 0\n", {k: v for k, v in TEST_JSON.items() if k != "test_acc_graded"})
    with pytest.raises(MnistError, match="^the metrics files of x lacks test_acc_graded: "):
        compare.record_at("abc1234", "x", DEFAULTS, files.__getitem__)


def curve(rev: str, accuracies: list[float]) -> list[dict]:
    return [{"rev": rev, "epoch": float(e), "lr": 0.002, "train_loss": 0.1, "train_acc": a,
             "valid_loss": 0.1, "valid_acc": a, "test_loss": 0.1, "test_acc": a}
            for e, a in enumerate(accuracies, start=1)]


def test_a_run_seen_again_replaces_its_row_and_its_curve(tmp_path):
    """reports/runs.csv and histories.csv grow over many compare runs. Merged twice with the same
    runs, then across a rerun of one of them (same revision, new numbers, a shorter curve: early
    stopping) that is also listed twice in one compare, they hold one row and one curve per run,
    and the newest numbers.

    Bugs caught: rows or curves appended instead of replaced (duplicated epochs draw a zigzag in
    the bands, a duplicated row counts a seed twice), the old row winning over the new one, a
    rerun's curve merged with the old one's later epochs, a run listed twice doubling its curve."""
    a, b = BASE[0], BASE[1]
    first = compare.keep(tmp_path, KEYS, [a, b], curve(a["rev"], [0.9, 0.95, 0.96]) +
                         curve(b["rev"], [0.8, 0.9, 0.97]))
    again = compare.keep(tmp_path, KEYS, [a, b], curve(a["rev"], [0.9, 0.95, 0.96]) +
                         curve(b["rev"], [0.8, 0.9, 0.97]))
    assert again == first == ([a, b], curve(a["rev"], [0.9, 0.95, 0.96]) +
                              curve(b["rev"], [0.8, 0.9, 0.97]))
    rerun = {**b, "test_acc": 0.5, "best_epoch": 2.0}
    c = NADAM[0]
    runs, histories = compare.keep(tmp_path, KEYS, [rerun, c, rerun],
                                   curve(b["rev"], [0.4, 0.5]) + curve(c["rev"], [0.7]) +
                                   curve(b["rev"], [0.4, 0.5]))
    assert [r["rev"] for r in runs] == [a["rev"], b["rev"], c["rev"]]
    assert runs[1]["test_acc"] == 0.5 and runs[1]["best_epoch"] == 2.0
    expected = curve(a["rev"], [0.9, 0.95, 0.96]) + curve(b["rev"], [0.4, 0.5]) + curve(c["rev"], [0.7])
    assert sorted(histories, key=lambda h: (h["rev"], h["epoch"])) == sorted(
        expected, key=lambda h: (h["rev"], h["epoch"]))
    # What the files hold is what the next compare (or --from) reads back.
    assert compare.read_runs(tmp_path / "runs.csv", KEYS) == runs
    assert compare.read_histories(tmp_path / "histories.csv") == histories


def test_baseline_commit_is_keyed_by_its_commit_and_found_again(tmp_path):
    """`dvc exp show` shows the baseline commit by a branch name (main), which moves with the next
    commit. Bug caught: its row keyed by the name: a later compare would replace the old
    baseline's row with the new commit's, or, keyed by another name for the same commit (HEAD),
    count the same run twice."""
    shown = {**BASE[0], "Experiment": None, "rev": "main"}
    row = compare.pin_commit(shown, "b8f57c2")
    assert (row["Experiment"], row["rev"]) == ("commit b8f57c2", "b8f57c2")
    assert compare.label(row) == "commit b8f57c2"
    record = {**BASE[0], "experiment": "commit b8f57c2", "rev": "b8f57c2"}
    compare.keep(tmp_path, KEYS, [record], curve("b8f57c2", [0.9]))
    seen_as_head = compare.pin_commit({**shown, "rev": "HEAD"}, "b8f57c2")
    runs, _ = compare.keep(tmp_path, KEYS, [{**record, "rev": seen_as_head["rev"]}],
                           curve("b8f57c2", [0.9]))
    assert len(runs) == 1
    next_commit = {**record, "experiment": "commit 0c0ffee", "rev": "0c0ffee"}
    runs, histories = compare.keep(tmp_path, KEYS, [next_commit], curve("0c0ffee", [0.8]))
    assert [r["rev"] for r in runs] == ["b8f57c2", "0c0ffee"]
    assert len(histories) == 2


def test_the_baseline_cell_is_params_yaml_as_the_commit_holds_it(tmp_path, monkeypatch):
    """Inside `dvc exp run -S train.lr=0.01` (or after an edit) the workspace params.yaml is not
    the baseline; the commit the experiments branch from is, and a key that commit lacks keeps
    the workspace's value. Bug caught: the workspace's params.yaml taken as the baseline of a
    revision compare did not read (every cell paired against the wrong one)."""
    from commands import compare as compare_command

    monkeypatch.chdir(tmp_path)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    committed = {**raw, "train": {k: v for k, v in raw["train"].items() if k != "patience"}}
    Path("params.yaml").write_text(yaml.safe_dump(committed))
    for cmd in (["init", "-q"], ["add", "params.yaml"],
                ["-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "p"]):
        subprocess.run(["git", *cmd], check=True)
    Path("params.yaml").write_text(yaml.safe_dump({**raw, "train": {**raw["train"], "lr": 0.01,
                                                                    "patience": 7}}))
    base = compare_command.baseline("HEAD")
    assert base["train.lr"] == raw["train"]["lr"] != 0.01
    assert base["train.patience"] == 7  # not in the commit: the workspace's
    assert list(base) == list(flatten(raw))
