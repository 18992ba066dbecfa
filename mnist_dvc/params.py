"""params.yaml as one typed, validated object.

Every stage calls `load_params()` first, so a bad value fails before any work with one line
that names the key, the value and what is allowed.
"""

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mnist_dvc.errors import MnistError

OPTIMIZERS = ("adam", "nadam", "sgdm")
SCHEDULERS = ("constant", "steplr", "warmup")
DECAYS = ("cosine", "exponential")
PRECISIONS = ("auto", "bf16", "fp32")
HEADS = ("logits", "softmax")


def _rule(check, text):
    return {"check": check, "text": text}


def positive():
    return _rule(lambda v: v > 0, "must be > 0")


def at_least(low):
    return _rule(lambda v: v >= low, f"must be >= {low}")


def between(low, high, closed_high=False):
    if closed_high:
        return _rule(lambda v: low <= v <= high, f"must be in [{low}, {high}]")
    return _rule(lambda v: low <= v < high, f"must be in [{low}, {high})")


def open_interval(low, high):
    return _rule(lambda v: low < v < high, f"must be in ({low}, {high})")


def decay_factor():
    return _rule(lambda v: 0 < v <= 1, "must be in (0, 1]")


def one_of(choices):
    return _rule(lambda v: v in choices, "must be one of " + ", ".join(choices))


def _field(rule=None):
    return field(metadata={} if rule is None else rule)


@dataclass(frozen=True)
class DataParams:
    valid_fraction: float = _field(open_interval(0, 1))
    stratify: bool = _field()
    # Use only the first N training / test images (0 = all): for quick runs and tests.
    train_limit: int = _field(at_least(0))
    test_limit: int = _field(at_least(0))


@dataclass(frozen=True)
class TrainParams:
    epochs: int = _field(at_least(1))
    batch_size: int = _field(_rule(lambda v: v >= 2, "must be >= 2 (BatchNorm needs two images per batch)"))
    lr: float = _field(positive())
    momentum: float = _field(between(0, 1))
    weight_decay: float = _field(at_least(0))
    grad_clip: float = _field(positive())
    patience: int = _field(at_least(1))
    label_smoothing: float = _field(between(0, 1))
    augment: bool = _field()
    precision: str = _field(one_of(PRECISIONS))
    # Processes training one run together (torchrun); batch_size is the global batch over all.
    processes: int = _field(at_least(1))


@dataclass(frozen=True)
class ModelParams:
    # softmax: the starter code's head, a softmax under CrossEntropyLoss's own log-softmax (a double
    # softmax). Only the training loss changes: the weights and their names are the same.
    head: str = _field(one_of(HEADS))


@dataclass(frozen=True)
class StepLRParams:
    step_size: int = _field(at_least(1))
    gamma: float = _field(decay_factor())


@dataclass(frozen=True)
class WarmupParams:
    epochs: float = _field(at_least(0))
    decay: str = _field(one_of(DECAYS))
    gamma: float = _field(decay_factor())


@dataclass(frozen=True)
class Params:
    seed: int = _field(at_least(0))
    optimizer: str = _field(one_of(OPTIMIZERS))
    scheduler: str = _field(one_of(SCHEDULERS))
    data: DataParams = _field()
    model: ModelParams = _field()
    train: TrainParams = _field()
    steplr: StepLRParams = _field()
    warmup: WarmupParams = _field()


TYPE_NAMES = {bool: "boolean (true or false)", int: "whole number", float: "number", str: "string"}


def _type_ok(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, kind)


def _build(cls, raw: Any, where: str, source: str):
    prefix = f"{where}." if where else ""
    if not isinstance(raw, dict):
        raise MnistError(f"{source}: {where or 'the file'} must be a mapping of keys, got {raw!r}: "
                         "restore it from git (git checkout params.yaml)")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields), key=str)
    if unknown:
        raise MnistError(f"{source}: unknown key {prefix}{unknown[0]}: allowed keys are "
                         f"{', '.join(prefix + name for name in fields)}")
    missing = [name for name in fields if name not in raw]
    if missing:
        raise MnistError(f"{source}: missing key {prefix}{missing[0]}: add it (see params.yaml in git)")
    values = {}
    for name, spec in fields.items():
        key, value = prefix + name, raw[name]
        if dataclasses.is_dataclass(spec.type):
            values[name] = _build(spec.type, value, key, source)
            continue
        if not _type_ok(value, spec.type):
            raise MnistError(f"{source}: {key} = {value!r} has the wrong type: it must be a "
                             f"{TYPE_NAMES[spec.type]} (fix it in params.yaml or with -S {key}=...)")
        if "check" in spec.metadata and not spec.metadata["check"](value):
            raise MnistError(f"{source}: {key} = {value!r} is invalid: {spec.metadata['text']} "
                             f"(fix it in params.yaml or with -S {key}=...)")
        values[name] = float(value) if spec.type is float else value
    return cls(**values)


def _check_together(params: Params, source: str) -> Params:
    """Rules that tie two values together."""
    t = params.train
    if t.batch_size < 2 * t.processes:
        raise MnistError(f"{source}: train.batch_size = {t.batch_size} is too small for "
                         f"train.processes = {t.processes}: each process trains a slice of every "
                         f"batch and needs 2 images, so it must be >= {2 * t.processes} (fix it in "
                         "params.yaml or with -S train.batch_size=...)")
    return params


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    return _check_together(_build(Params, raw, "", source), source)


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise MnistError(f"cannot read {path}: {exc.strerror}: run from the project root, "
                         "where params.yaml lives") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise MnistError(f"{path} is not valid YAML{at}: fix the syntax there") from None
    return parse_params(raw, str(path))


def as_dict(params) -> dict:
    return dataclasses.asdict(params)


def flatten(tree: dict, prefix: str = "") -> dict:
    """{"train": {"lr": 0.1}} -> {"train.lr": 0.1}: the keys `dvc exp run -S` and `dvc exp show` use."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def with_overrides(raw: dict, overrides: dict) -> dict:
    """A copy of raw params with dotted keys replaced, as `-S train.lr=0.1` does."""
    raw = copy.deepcopy(raw)
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = raw
        for key in parents:
            node = node[key]
        node[leaf] = value
    return raw


def same_value(a, b) -> bool:
    """Two param values as YAML reads them: 2e-3 and 0.002, 8 and 8.0 are the same number, but a
    boolean is never the number 1 or 0 (True == 1 in Python)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return a == b
