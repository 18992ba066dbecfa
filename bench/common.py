"""What the benchmarks share: the real MNIST files, the project's params, the machine, medians, JSON."""

import argparse
import json
import os
import platform
import statistics
from pathlib import Path

import torch
import yaml

from mnist_dvc import data, find_mnist, provenance
from mnist_dvc.device import hardware, setup
from mnist_dvc.params import Params, parse_params, with_overrides

ROOT = Path(__file__).resolve().parents[1]


def load_splits(params: Params):
    """train, valid, test exactly as the split stage makes them, kept in memory."""
    d = params.data
    parts = data.split_digits(find_mnist.find_or_download(ROOT), d.valid_fraction, d.stratify,
                              params.seed, d.train_limit, d.test_limit)
    return parts["train"], parts["valid"], parts["test"]


def project_params(overrides: dict | None = None) -> Params:
    """params.yaml with dotted overrides, as `dvc exp run -S key=value` would give."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    return parse_params(with_overrides(raw, overrides or {}), "params.yaml + overrides")


def parse_overrides(items: list[str]) -> dict:
    """["train.lr=0.1", ...] → {"train.lr": 0.1}, values read as YAML, as `dvc exp run -S` does."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"-S {item}: write it as key=value, e.g. -S train.precision=fp32")
        overrides[key] = yaml.safe_load(value)
    return overrides


def machine(params: Params | None = None) -> dict:
    """The CPU class and precision every figure depends on, and when and from which commit."""
    device, precision = setup(params.train.precision if params else "fp32", warn=False)
    record = {"processor": platform.processor() or platform.machine(), "cores": os.cpu_count(),
              "hardware": hardware(device), "torch": torch.__version__,
              "threads": torch.get_num_threads(), **provenance.record(ROOT)}
    if params is not None:
        record["precision"] = f"{precision.dtype} ({precision.reason})"
    return record


def median(values) -> float:
    return statistics.median(values)


def parser(description: str, repeats: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    if repeats:
        p.add_argument("--repeats", type=int, default=3, help="runs to take the median of")
    p.add_argument("--json", type=Path, help="also write the results here")
    return p


def report(title: str, rows: list[tuple[str, str]], results: dict, json_path: Path | None,
           params: Params | None = None) -> None:
    where = machine(params)
    print(f"\n{title}\n  " + ", ".join(f"{k}: {v}" for k, v in where.items()))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"machine": where, **results}, indent=2) + "\n")
