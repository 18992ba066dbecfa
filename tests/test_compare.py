
import pytest

from mnist_dvc import compare
from mnist_dvc.errors import MnistError

ROWS = [
    {"Experiment": None, "rev": "workspace", "optimizer": "adam", "train.lr": 0.002, "test_acc": 0.99},
    {"Experiment": "a", "rev": "1111111", "optimizer": "adam", "train.lr": 0.002, "test_acc": 0.95,
     "test_loss": 0.2, "best_epoch": 3.0},
    {"Experiment": "b", "rev": "2222222", "optimizer": "sgdm", "train.lr": 0.002, "test_acc": 0.97,
     "test_loss": 0.1, "best_epoch": 2.0},
]


def test_select_all_experiments_or_the_named_ones():
    assert [r["Experiment"] for r in compare.select(ROWS, [])] == ["a", "b"]
    assert [r["Experiment"] for r in compare.select(ROWS, ["b"])] == ["b"]
    assert compare.select(ROWS, ["1111111"])[0]["Experiment"] == "a"


def test_select_unknown_or_none():
    with pytest.raises(MnistError, match="no experiment named c: choose from a, b"):
        compare.select(ROWS, ["c"])
    with pytest.raises(MnistError, match="no experiments found: run some first"):
        compare.select(ROWS[:1], [])


def test_varying_params_only():
    assert compare.varying(ROWS[1:], ["optimizer", "train.lr"]) == ["optimizer"]


def test_table_sorted_by_test_accuracy():
    table = compare.markdown_table(ROWS[1:], ["optimizer"]).splitlines()
    assert table[0] == "| experiment | optimizer | " + " | ".join(compare.METRICS) + " |"
    assert table[2].startswith("| b | sgdm | 0.9700 |  |  | 0.1000 |  | 2 |")
    assert table[3].startswith("| a | adam | 0.9500 |")


def test_flat_keys():
    assert compare.flat_keys({"seed": 0, "train": {"lr": 1, "x": {"y": 2}}}) == ["seed", "train.lr", "train.x.y"]


def test_shown_params_and_legend():
    shown = compare.shown_params(ROWS[1:], ["seed", "optimizer", "scheduler", "train.lr"])
    assert shown == ["optimizer", "scheduler"]
    assert compare.legend(ROWS[2], shown) == "b (sgdm, None)"


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
    assert str(error.value) == ("no selected experiment has finished with a test accuracy "
                                "(q (Queued), f (Failed)): wait for queued ones (dvc queue status), "
                                "rerun failed ones, or name finished ones")
