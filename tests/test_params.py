import re
from pathlib import Path

import pytest

from mnist_dvc.errors import MnistError
from mnist_dvc.params import OPTIMIZERS, Params, load_params, parse_params, same_value


def test_project_params_file_is_valid():
    params = load_params("params.yaml")
    assert isinstance(params, Params)
    assert params.optimizer in OPTIMIZERS
    assert isinstance(params.train.lr, float)


def test_overrides_are_applied(make_params):
    params = make_params(optimizer="nadam", **{"train.epochs": 3, "train.lr": 1})
    assert (params.optimizer, params.train.epochs, params.train.lr) == ("nadam", 3, 1.0)


@pytest.mark.parametrize("key, value, expected", [
    ("optimizer", "nadamm", "optimizer = 'nadamm' is invalid: must be one of adam, nadam, sgdm"),
    ("scheduler", "cosine", "must be one of constant, steplr, warmup"),
    ("warmup.decay", "linear", "must be one of cosine, exponential"),
    ("train.lr", 0, "train.lr = 0 is invalid: must be > 0"),
    ("train.lr", -1e-3, "train.lr = -0.001 is invalid"),
    ("train.lr", float("nan"), "train.lr = nan has the wrong type"),
    ("train.momentum", 1.0, "train.momentum = 1.0 is invalid: must be in [0, 1)"),
    ("train.momentum", -0.1, "must be in [0, 1)"),
    ("data.valid_fraction", 0, "data.valid_fraction = 0 is invalid: must be in (0, 1)"),
    ("data.valid_fraction", 1.0, "must be in (0, 1)"),
    ("data.valid_fraction", 1.5, "data.valid_fraction = 1.5 is invalid: must be in (0, 1)"),
    ("train.precision", "bf32", "train.precision = 'bf32' is invalid: must be one of auto, bf16, fp32"),
    ("train.batch_size", 0, "train.batch_size = 0 is invalid: must be >= 2"),
    ("train.batch_size", 1,
     "train.batch_size = 1 is invalid: must be >= 2 (BatchNorm needs two images per batch)"),
    ("train.epochs", 0, "train.epochs = 0 is invalid: must be >= 1"),
    ("train.epochs", 2.5, "train.epochs = 2.5 has the wrong type: it must be a whole number"),
    ("train.epochs", "10", "train.epochs = '10' has the wrong type"),
    ("train.epochs", "ten", "train.epochs = 'ten' has the wrong type: it must be a whole number"),
    ("train.epochs", True, "train.epochs = True has the wrong type"),
    ("train.augment", "yes",
     "train.augment = 'yes' has the wrong type: it must be a boolean (true or false)"),
    ("train.patience", 0, "must be >= 1"),
    ("train.grad_clip", 0, "must be > 0"),
    ("steplr.gamma", 0, "must be in (0, 1]"),
    ("seed", -1, "seed = -1 is invalid"),
])
def test_each_bad_value_names_key_and_fix(make_params, key, value, expected):
    # Bugs caught: a bad value accepted (and found only mid-training, or never), or a message
    # that does not name the file, the key, the value, the rule and the fix on one line.
    # (tests/test_stage_errors.py runs two such cases through a real stage.)
    with pytest.raises(MnistError) as error:
        make_params(**{key: value})
    message = str(error.value)
    assert message.startswith("params.yaml: ")
    assert expected in message
    assert "\n" not in message
    assert message.endswith(f"(fix it in params.yaml or with -S {key}=...)")


def test_unknown_top_level_key_lists_allowed(default_raw):
    with pytest.raises(MnistError, match=r"unknown key optimiser: allowed keys are seed, optimizer"):
        parse_params({**default_raw, "optimiser": "adam"})


def test_unknown_nested_key(default_raw):
    raw = {**default_raw, "train": {**default_raw["train"], "learning_rate": 0.1}}
    with pytest.raises(MnistError, match=r"unknown key train.learning_rate: allowed keys are train.epochs"):
        parse_params(raw)


def test_missing_key(default_raw):
    raw = dict(default_raw)
    del raw["warmup"]
    with pytest.raises(MnistError, match="missing key warmup"):
        parse_params(raw)


def test_group_must_be_a_mapping(default_raw):
    with pytest.raises(MnistError, match="train must be a mapping"):
        parse_params({**default_raw, "train": 5})


def test_yaml_syntax_error_names_its_line(tmp_path):
    """Bug caught (mutation testing): the line number off by one or two (YAML counts from 0)."""
    path = tmp_path / "params.yaml"
    path.write_text("seed: 0\noptimizer: adam\n  scheduler: warmup\n")
    with pytest.raises(MnistError) as error:
        load_params(path)
    assert str(error.value) == f"{path} is not valid YAML at line 3: fix the syntax there"


def test_missing_file(tmp_path):
    """Bug caught (mutation testing): the fix's half of the line garbled."""
    with pytest.raises(MnistError) as error:
        load_params(tmp_path / "params.yaml")
    assert str(error.value) == (f"cannot read {tmp_path / 'params.yaml'}: No such file or directory: "
                                "run from the project root, where params.yaml lives")


def test_a_bad_value_in_a_file_names_that_file(tmp_path):
    """Bug caught (mutation testing): load_params not passing the file's path on, so the line
    named "params.yaml" or nothing, whichever file was wrong."""
    path = tmp_path / "other.yaml"
    project = (Path(__file__).resolve().parents[1] / "params.yaml").read_text()
    path.write_text(re.sub(r"^optimizer: \w+", "optimizer: nadamm", project, count=1, flags=re.M))
    with pytest.raises(MnistError) as error:
        load_params(path)
    assert str(error.value).startswith(f"{path}: optimizer = 'nadamm' is invalid"), error.value


def test_each_process_needs_two_images_of_every_batch(make_params):
    """The bound itself: 2 images a process is enough, 1 is not. Bug caught (mutation testing):
    `<` written `<=`, refusing a batch that every process can take."""
    assert make_params(**{"train.processes": 2, "train.batch_size": 4}).train.batch_size == 4
    with pytest.raises(MnistError) as error:
        make_params(**{"train.processes": 3, "train.batch_size": 5})
    assert "train.batch_size = 5 is too small for train.processes = 3" in str(error.value)
    assert str(error.value).endswith("it must be >= 6 (fix it in params.yaml or with -S "
                                     "train.batch_size=...)")


def test_the_file_must_be_a_mapping_and_says_how_to_restore_it():
    """Bug caught (mutation testing): the fix's half of the line garbled."""
    with pytest.raises(MnistError) as error:
        parse_params([1, 2])
    assert str(error.value) == ("params.yaml: the file must be a mapping of keys, got [1, 2]: restore "
                                "it from git (git checkout params.yaml)")


def test_a_key_yaml_reads_as_a_number_is_named_as_unknown(default_raw):
    """`1: x` in params.yaml is an int key beside the str ones. Bug caught (mutation testing):
    sorting the unknown keys without key=str, a TypeError instead of the line."""
    with pytest.raises(MnistError, match=r"unknown key 1: allowed keys are seed"):
        parse_params({**default_raw, 1: "x", "zz": 2})


@pytest.mark.parametrize("a, b, same", [
    (2e-3, 0.002, True), (8, 8.0, True), (8, 9, False), (True, True, True), (True, 1, False),
    (0, False, False), ("adam", "adam", True), ("adam", "nadam", False), (None, 0, False)])
def test_same_value_is_yaml_equality_with_booleans_apart(a, b, same):
    """How the study and the run report compare a param with the committed one. Bugs caught
    (mutation testing: no test reached it): True taken for 1 (Python's True == 1), 8 and 8.0 or
    2e-3 and 0.002 taken for different values, the answer turned round."""
    assert same_value(a, b) is same and same_value(b, a) is same
