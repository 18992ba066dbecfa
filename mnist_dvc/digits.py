"""Digits as tensors, and the prepared files the split stage writes and later stages read."""

from dataclasses import dataclass
from pathlib import Path

import torch

from mnist_dvc import torch_files
from mnist_dvc.atomic import torch_save
from mnist_dvc.errors import MnistError

RERUN_SPLIT = "rerun dvc repro split"


@dataclass(frozen=True)
class Digits:
    """Images (N, 28, 28) uint8 and labels (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: torch.Tensor) -> "Digits":
        return Digits(self.images[index], self.labels[index])


def save_digits(digits: Digits, path: str | Path) -> None:
    torch_save({"images": digits.images, "labels": digits.labels}, path)


def load_digits(path: str | Path) -> Digits:
    """The digits save_digits wrote at `path`, read by torch_files.load (never runs pickled code)."""
    blob = torch_files.load(path, what="a dataset file written by the split stage",
                            missing="run the split stage first (dvc repro split)", fix=RERUN_SPLIT)
    if not isinstance(blob, dict):
        raise MnistError(f"{path} holds a {type(blob).__name__}, not a dataset file written by the "
                         f"split stage: {RERUN_SPLIT}")
    images, labels = blob.get("images"), blob.get("labels")
    if (not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 3
            or not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64
            or len(images) != len(labels)):
        raise MnistError(f"{path} does not hold uint8 images and int64 labels of equal count: "
                         f"{RERUN_SPLIT}")
    return Digits(images, labels)
