"""What the benchmarks share: the real MNIST files, the project's params, medians, JSON output."""

import argparse
import json
import os
import platform
import statistics
from pathlib import Path

import torch

from mnist_dvc import data
from mnist_dvc.params import Params, as_dict, load_params, parse_params
from mnist_dvc.params import with_overrides as params_with_overrides


def mnist_dir() -> Path:
    found = data.first_complete_dir([data.local_dir_from_env(), "data/raw", "../shared/datasets/mnist"])
    if found is None:
        raise SystemExit(f"no MNIST files: set {data.LOCAL_DIR_ENV} to the folder with the four .gz "
                         "files, or run `dvc repro fetch` first")
    return found


def load_splits(params: Params):
    """train, valid, test exactly as the split stage makes them, kept in memory."""
    d = params.data
    parts = data.split_digits(mnist_dir(), d.valid_fraction, d.stratify, params.seed,
                              d.train_limit, d.test_limit)
    return parts["train"], parts["valid"], parts["test"]


def with_overrides(params: Params, overrides: dict) -> Params:
    return parse_params(params_with_overrides(as_dict(params), overrides), "preset")


def project_params() -> Params:
    return load_params("params.yaml")


def machine() -> str:
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {device}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads")


def median(values) -> float:
    return statistics.median(values)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--repeats", type=int, default=3, help="runs to take the median of")
    p.add_argument("--json", type=Path, help="also write the results here")
    return p


def report(title: str, rows: list[tuple[str, str]], results: dict, json_path: Path | None) -> None:
    print(f"\n{title}  ({machine()})")
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"machine": machine(), **results}, indent=2) + "\n")
