"""The run's records (mnist_dvc/results.py) are the one home of every metric name and column:
dvc.yaml's plots, runs.csv and the report name only their fields, and each number has one key."""

import dataclasses

import pytest
import yaml
from repo_helpers import ROOT

from mnist_dvc import paths, results
from mnist_dvc.errors import MnistError

FILES = {str(paths.HISTORY): results.Epoch, str(paths.CLASSES): results.DigitMetrics,
         str(paths.PREDICTIONS): results.Prediction}


def test_dvc_plots_name_only_fields_of_the_records():
    """Every column dvc.yaml's plots draw from history.csv or classes.csv is a field of the record
    those files are written from. Bug caught: a metric renamed in results.py while dvc.yaml still
    names the old column (`dvc plots show` draws nothing, silently)."""
    plots = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    named = 0
    for plot in plots:
        (spec,) = plot.values()
        for path, columns in spec["y"].items():
            record = FILES[path]
            columns = columns if isinstance(columns, list) else [columns]
            for column in [*columns, spec["x"]]:
                assert column in results.names(record), (path, column)
                named += 1
    assert named == 14  # loss 3 + 1, accuracy 3 + 1, learning rate 1 + 1, confusion 2, per digit 2


def test_one_key_per_number():
    """No two of the files a run writes share a key, and runs.csv keeps each of its results under
    the name of the one file that holds it. Bugs caught: a number written to two files (best_epoch
    in test.json too: `dvc metrics diff` shows it twice, and a row merged from both takes either),
    a runs.csv column that names no file's key (always empty)."""
    records = (results.TrainMetrics, results.EvaluateMetrics, results.Timing)
    keys = [name for record in records for name in results.names(record)]
    assert len(keys) == len(set(keys))
    assert set(results.names(results.RunSummary)) <= set(keys)
    assert set(results.RUN_METRICS) | set(results.RUN_CONTEXT) == set(results.names(results.RunSummary))
    assert results.HISTORY_COLUMNS[0] == "epoch"


def test_parse_ignores_older_keys_and_names_the_first_missing_one():
    """A file from older stages may hold keys no record has (test_nll): ignored. A required field
    missing is one line naming the file and the field; an optional one (Timing's machine fields,
    from before they were recorded) becomes None. Bugs caught: unknown keys passed on (a
    TypeError traceback on every older experiment), a missing field read as None."""
    values = {"best_valid_acc": 0.9, "best_valid_loss": 0.3, "best_epoch": 2, "epochs_run": 4,
              "test_nll": 0.3}
    assert results.parse(results.TrainMetrics, values, "t.json") == results.TrainMetrics(0.9, 0.3, 2, 4)
    with pytest.raises(MnistError, match="^t.json lacks best_epoch: it is not from this project's "
                                         "stages; rerun dvc repro$"):
        results.parse(results.TrainMetrics, {k: v for k, v in values.items() if k != "best_epoch"},
                      "t.json")
    old = results.parse(results.Timing, {"train_seconds": 10.0, "seconds_per_epoch": 5.0}, "x")
    assert old.hardware is None and old.date_utc is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        old.train_seconds = 1.0


def test_former_names_read_as_their_name_now(tmp_path):
    """test.json and runs.csv from before the rename (test_acc_sampled: it was always the expected
    score, "graded"; "sampled" now means a literal run of the loop) read under the new names: the
    study's pinned commit still writes the old ones. Bugs caught: old rows read as NaN in the
    graded columns (the study's claims would lose their graded differences), or refused."""
    values = {"test_acc": 0.99, "test_acc_sampled": 0.92, "handin_test_acc_sampled": 0.989,
              "handin_factor": 4.0, "test_loss": 0.04, "best_valid_acc": 0.99, "best_epoch": 4,
              "epochs_run": 4, "train_seconds": 100.0}
    summary = results.parse(results.RunSummary, values, "old files")
    assert (summary.test_acc_graded, summary.handin_test_acc_graded) == (0.92, 0.989)
    from mnist_dvc import compare

    old_csv = tmp_path / "runs.csv"
    old_csv.write_text("experiment,rev,seed," + ",".join(values) + ",hardware,precision,code\n"
                       "a,abc1234,0," + ",".join(str(v) for v in values.values()) + ",CPU,bf16,c0de\n")
    (run,) = compare.read_runs(old_csv, ["seed"])
    assert (run["test_acc_graded"], run["handin_test_acc_graded"]) == (0.92, 0.989)
