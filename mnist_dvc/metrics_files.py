"""Metrics from predictions, and the small JSON/CSV files DVC reads as metrics and plots (their
keys and columns: results.py)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

from mnist_dvc.atomic import write_text
from mnist_dvc.errors import MnistError
from mnist_dvc.mnist import NUM_CLASSES
from mnist_dvc.results import DigitMetrics, Epoch, parse

if TYPE_CHECKING:  # the report stage reads and writes these files without loading torch
    import torch


def confusion_matrix(labels: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """counts[true, predicted] as a (10, 10) int64 tensor."""
    import torch

    flat = labels.long() * NUM_CLASSES + predicted.long()
    return torch.bincount(flat, minlength=NUM_CLASSES * NUM_CLASSES).reshape(NUM_CLASSES, NUM_CLASSES)


def per_class(confusion: torch.Tensor) -> list[DigitMetrics]:
    """Precision, recall, F1 and support of each digit (0 where undefined)."""
    rows = []
    for digit in range(NUM_CLASSES):
        tp = confusion[digit, digit].item()
        predicted, actual = confusion[:, digit].sum().item(), confusion[digit].sum().item()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append(DigitMetrics(digit=digit, precision=precision, recall=recall, f1=f1,
                                 support=actual))
    return rows


def macro(rows: list[DigitMetrics]) -> dict:
    return {f"macro_{k}": sum(getattr(r, k) for r in rows) / len(rows)
            for k in ("precision", "recall", "f1")}


def _rounded(value):
    return round(value, 6) if isinstance(value, float) else value


def write_json(path: str | Path, values: dict) -> None:
    text = json.dumps({k: _rounded(v) for k, v in values.items()}, indent=2)
    write_text(path, text + "\n")


def read_json(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise MnistError(f"{path} is missing: run the stage that writes it (dvc repro)")
    return json.loads(path.read_text())


def write_csv(path: str | Path, rows: list[dict]) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: _rounded(v) for k, v in row.items()} for row in rows)
    write_text(path, out.getvalue())


def parse_csv(text: str) -> list[dict]:
    """Rows of a CSV written by write_csv, numbers parsed."""
    return [{k: float(v) if "." in v or "e" in v else int(v) for k, v in row.items()}
            for row in csv.DictReader(io.StringIO(text))]


def read_csv(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise MnistError(f"{path} is missing: run the stage that writes it (dvc repro)")
    return parse_csv(path.read_text())


def write_record(path: str | Path, record) -> None:
    """A record of results.py (e.g. EvaluateMetrics) as the JSON file DVC reads as metrics."""
    write_json(path, dataclasses.asdict(record))


def read_record(path: str | Path, record_type):
    return parse(record_type, read_json(path), str(path))


def write_records(path: str | Path, records: list) -> None:
    """Records of results.py (or their dicts) as the CSV file DVC reads as plots."""
    write_csv(path, [r if isinstance(r, dict) else dataclasses.asdict(r) for r in records])


def read_records(path: str | Path, record_type) -> list:
    return [parse(record_type, row, str(path)) for row in read_csv(path)]


def parse_history(text: str, origin: str) -> list[Epoch]:
    """metrics/history.csv's rows, from its text (a file at some git revision)."""
    return [parse(Epoch, row, origin) for row in parse_csv(text)]
