"""Digits as tensors, and the prepared files the split stage writes and later stages read."""

from dataclasses import dataclass
from pathlib import Path

import torch

from mnist_dvc.atomic import torch_save
from mnist_dvc.errors import MnistError


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
    path = Path(path)
    if not path.is_file():
        raise MnistError(f"{path} is missing: run the split stage first (dvc repro split)")
    try:
        blob = torch.load(path, weights_only=True)
        images, labels = blob["images"], blob["labels"]
    except Exception as exc:  # any unpickling problem means the same thing to the user
        raise MnistError(f"{path} is not a dataset file written by the split stage ({exc}): "
                         "rerun dvc repro split") from None
    if (not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 3
            or not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64
            or len(images) != len(labels)):
        raise MnistError(f"{path} does not hold uint8 images and int64 labels of equal count: "
                         "rerun dvc repro split")
    return Digits(images, labels)
