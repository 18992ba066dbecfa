"""The study's plan: what it refuses, which rows count, and what is still missing."""

import hashlib
from pathlib import Path

import pytest
import yaml

from mnist_dvc import study_plan
from mnist_dvc.errors import MnistError
from mnist_dvc.params import as_dict, flatten, load_params

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = as_dict(load_params(ROOT / "params.yaml"))
PLAN = {"code": "c0de", "commit": "abc1234", "seeds": [0, 1],
        "cells": [{"name": "base", "set": {}},
                  {"name": "long", "set": {"train.epochs": 9}},
                  {"name": "sgdm", "set": {"optimizer": "sgdm"}}],
        "claims": [{"claim": "x", "pairs": [["sgdm", "base"]]}]}


def write_plan(tmp_path, **changes) -> Path:
    path = tmp_path / "study.yaml"
    if "cells" in changes:  # the claims name the default cells
        changes.setdefault("claims", [])
    path.write_text(yaml.safe_dump({**PLAN, **changes}))
    return path


def test_the_committed_plan_loads_with_sixteen_cells_and_three_seeds():
    """Catches: a typo in study.yaml (a cell whose params fail the checks) landing unnoticed."""
    plan = study_plan.load_plan(ROOT / "study.yaml", DEFAULTS)
    assert len(plan.cells) == 16 and plan.seeds == (0, 1, 2)


@pytest.mark.parametrize(("changes", "words"), [
    ({"seeds": [0, 0]}, "seeds = [0, 0]"),
    ({"seeds": []}, "seeds = []"),
    ({"cells": [{"name": "a"}, {"name": "a"}]}, "cell a is named twice"),
    ({"cells": [{"name": "a b"}]}, "cell name 'a b'"),
    ({"cells": [{"name": "a", "set": {"seed": 3}}]}, "without seed"),
    ({"cells": [{"name": "a", "set": {"optimizer": "adamm"}}]}, "optimizer = 'adamm' is invalid"),
    ({"cells": [{"name": "a", "set": {"train.lrr": 0.1}}]}, "unknown key train.lrr"),
    ({"cells": [{"name": "a", "set": {"nope.lr": 0.1}}]}, "unknown key nope.lr"),
    ({"claims": [{"claim": "y", "pairs": [["base", "gone"]]}]}, "names gone, which is not a cell"),
    ({"claims": [{"claim": "y", "pairs": [["base"]]}]}, "a list of [cell, other cell]"),
])
def test_a_bad_plan_is_refused_in_one_line_naming_the_problem(tmp_path, changes, words):
    """Catches: a cell that would fail only hours into the study (its params are checked when the
    plan is read), duplicate or unusable experiment names, claims about cells that do not exist."""
    with pytest.raises(MnistError) as caught:
        study_plan.load_plan(write_plan(tmp_path, **changes), DEFAULTS)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def row(cell: str, seed: int, code: str = "c0de", **params) -> dict:
    overrides = {c["name"]: c["set"] for c in PLAN["cells"]}[cell]
    return {**flatten(DEFAULTS), **overrides, **params, "seed": seed, "code": code,
            "experiment": f"{cell}-s{seed}"}


def test_rows_count_only_with_the_plan_code_and_the_cell_params(tmp_path):
    """Catches: a row of other training code counted (the study mixing codes), a row matched by
    optimizer and scheduler alone (a cell with another lr taken as the baseline), 0.0 and 0 read
    as different values."""
    plan = study_plan.load_plan(write_plan(tmp_path), DEFAULTS)
    rows = [row("base", 0), row("base", 1, code="other"), row("sgdm", 0, **{"train.lr": 0.05}),
            row("long", 1, **{"train.epochs": 9.0})]
    assert set(study_plan.counted(plan, rows, DEFAULTS)) == {("base", 0), ("long", 1)}


def test_missing_runs_come_cheapest_first_every_cell_seed_0_before_seed_1(tmp_path):
    """Catches: the 24-epoch runs first (hours before the grid has one row per cell), seeds run
    cell by cell (no cell compared with another until the end), done runs run again."""
    plan = study_plan.load_plan(write_plan(tmp_path), DEFAULTS)
    todo = study_plan.missing(plan, study_plan.counted(plan, [row("base", 0)], DEFAULTS), DEFAULTS)
    assert [(c.name, s) for c, s in todo] == [("sgdm", 0), ("base", 1), ("sgdm", 1),
                                              ("long", 0), ("long", 1)]


def test_the_code_hash_of_a_run_is_the_hash_of_the_files_it_ran(tmp_path):
    """Catches: a hash of the file names only (an edit to training.py not noticed), of the
    evaluate stage left out (a change to how test accuracy is computed not noticed), of a data
    file (a hash that changes with every run), or of files in another order."""
    (tmp_path / "a.py").write_text("A = 1\n")
    (tmp_path / "b.py").write_text("B = 1\n")
    stages = {"train": {"deps": ["a.py", "data/x"]}, "evaluate": {"deps": ["b.py"]}}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    md5 = {p: hashlib.md5((tmp_path / p).read_bytes()).hexdigest() for p in ("a.py", "b.py")}
    lock = {"stages": {"evaluate": {"deps": [{"path": "b.py", "md5": md5["b.py"]}]},
                       "train": {"deps": [{"path": "data/x", "md5": "1"},
                                          {"path": "a.py", "md5": md5["a.py"]}]}}}
    before = study_plan.code_of_workspace(tmp_path)
    assert study_plan.code_of_lock(yaml.safe_dump(lock)) == before
    (tmp_path / "b.py").write_text("B = 2\n")
    assert study_plan.code_of_workspace(tmp_path) != before
