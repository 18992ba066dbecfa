"""The starter files (the four .pth tensor files of the course's starter code) as a data source:
loaded safely, checked, converted to the uint8 images and int64 labels the IDX route gives."""

from pathlib import Path

import torch

from mnist_dvc import torch_files
from mnist_dvc.errors import MnistError
from mnist_dvc.mnist import IMAGE_SIZE, NUM_CLASSES, STARTER_FILES, STARTER_NAMES

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
TENSOR_FIX = "save the tensor itself, torch.save(torch.as_tensor(x), path)"


def load_tensor(path: str | Path) -> torch.Tensor:
    """One tensor saved with torch.save, read by torch_files.load (never runs pickled code)."""
    value = torch_files.load(path, what="a tensor file", fix=TENSOR_FIX,
                             missing=f"the starter code's dataset is four files "
                                     f"({', '.join(STARTER_NAMES)}); put all four in "
                                     f"{Path(path).parent}")
    if not isinstance(value, torch.Tensor) or value.layout != torch.strided:
        kind = f"{value.layout} tensor" if isinstance(value, torch.Tensor) else type(value).__name__
        raise MnistError(f"{path} holds a {kind}, not a dense tensor: {TENSOR_FIX}")
    return value.detach()


def starter_images(images: torch.Tensor, name: str) -> torch.Tensor:
    """The starter files' images as (N, 28, 28) uint8: from uint8 0-255 or float 0-1
    (x -> round(255 x)), shaped (N, 28, 28) or (N, 1, 28, 28)."""
    shape = list(images.shape)
    if images.ndim == 4 and images.shape[1] == 1:  # (N, 1, 28, 28): one channel
        images = images[:, 0]
    if images.ndim != 3 or tuple(images.shape[1:]) != (IMAGE_SIZE, IMAGE_SIZE):
        raise MnistError(f"{name} has shape {shape}, expected [N, 28, 28] or [N, 1, 28, 28]: save "
                         "the images as one tensor of 28x28 grayscale digits")
    if len(images) == 0:
        raise MnistError(f"{name} holds no images (shape {shape}): save the set's images there")
    if images.dtype == torch.uint8:
        return images.clone(memory_format=torch.contiguous_format)
    if images.dtype not in FLOAT_DTYPES:
        raise MnistError(f"{name} has dtype {str(images.dtype).removeprefix('torch.')}: images "
                         "must be uint8 (0-255) or float (0-1); convert them, e.g. "
                         "images.to(torch.uint8) for 0-255 values or images.float() / 255")
    if not torch.isfinite(images).all():
        raise MnistError(f"{name} holds NaN or infinite values: save the raw pixels, as uint8 "
                         "0-255 or float 0-1")
    low, high = images.min().item(), images.max().item()
    if low < 0 or high > 1:
        raise MnistError(f"{name} holds values from {low:g} to {high:g}, outside [0, 1]: float "
                         "images must be raw pixels scaled to [0, 1] (x / 255), not 0-255 nor "
                         "normalised with a mean and std; save them that way, or as uint8")
    return (images.float() * 255).round_().to(torch.uint8)


def starter_labels(labels: torch.Tensor, name: str) -> torch.Tensor:
    """The starter files' labels as (N,) int64: integers 0-9 of any integer dtype."""
    if labels.dtype not in INTEGER_DTYPES:
        raise MnistError(f"{name} has dtype {str(labels.dtype).removeprefix('torch.')}: labels "
                         "must be integers 0-9; save them with labels.long()")
    if labels.ndim != 1:
        raise MnistError(f"{name} has shape {list(labels.shape)}, expected [N]: save one flat "
                         "tensor of digits (labels.flatten())")
    if len(labels) == 0:
        raise MnistError(f"{name} holds no labels: save the set's labels there")
    low, high = labels.min().item(), labels.max().item()
    if low < 0 or high >= NUM_CLASSES:
        bad = low if low < 0 else high
        raise MnistError(f"{name} holds the label {bad}, outside 0-9: save the digit of each "
                         "image, 0 to 9")
    return labels.to(torch.int64, memory_format=torch.contiguous_format, copy=True)


def read_starter_set(folder: str | Path, which: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One set ('train' or 'test') from the starter files, checked: uint8 (N, 28, 28) images
    and int64 labels, as the IDX route gives them."""
    folder = Path(folder)
    images_name, labels_name = STARTER_FILES[which]
    images = starter_images(load_tensor(folder / images_name), str(folder / images_name))
    labels = starter_labels(load_tensor(folder / labels_name), str(folder / labels_name))
    if len(images) != len(labels):
        raise MnistError(f"{folder / images_name} holds {len(images)} images but {labels_name} "
                         f"holds {len(labels)} labels: the two files do not belong together; save "
                         "the images and labels of the same set")
    return images, labels
