"""The study's CNN, its input contract and the safe way to load its weights."""

from pathlib import Path

import torch
from torch import nn

from mnist_dvc import torch_files
from mnist_dvc.errors import MnistError


class MyConvNet(nn.Module):
    """conv(1→64) BN pool ReLU, conv(64→128) BN pool ReLU, linear 6272→784→98→10.

    The starter code's layout, block for block and name for name (`cnn`, `fc`), so its class loads
    these weights. Takes images scaled to [0, 1] (no other normalisation: the BatchNorm after the
    first convolution does that) shaped (N, 1, 28, 28), or one image as (1, 28, 28) or (28, 28);
    returns logits (N, 10), (1, 10) for one image. Softmax only for probabilities.
    """

    def __init__(self):
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(1, 64, kernel_size=3, padding=1),
            nn.BatchNorm2d(64),
            nn.MaxPool2d(2),  # before the ReLU: the same result (both are monotone), 4x fewer ReLUs
            nn.ReLU(),
            nn.Conv2d(64, 128, kernel_size=3, padding=1),
            nn.BatchNorm2d(128),
            nn.MaxPool2d(2),
            nn.ReLU(),
        )
        self.fc = nn.Sequential(
            nn.Linear(128 * 7 * 7, 784),
            nn.ReLU(),
            nn.Linear(784, 98),
            nn.ReLU(),
            nn.Linear(98, 10),
        )
        # Channels_last weights: the first convolution has one input channel, so torch cannot
        # tell a channels_last input from a contiguous one and follows the weights; with
        # contiguous weights every layer up to the second convolution ran in NCHW, where a CPU's
        # max-pooling is about 8x slower: a loaded model evaluated 1.5-2x slower than the train
        # loop's (docs/performance.md). load_state_dict keeps the layout; the baseline's outputs
        # were rebuilt byte for byte.
        self.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() == 2:  # one (28, 28) image
            images = images[None, None]
        elif images.dim() == 3:  # (1, 28, 28): one image; (N, 28, 28): N images
            images = images.unsqueeze(1)
        return self.fc(self.cnn(images).flatten(1))


def as_input(images: torch.Tensor) -> torch.Tensor:
    """The model's input contract: uint8 (N, 28, 28) → float (N, 1, 28, 28) in [0, 1],
    channels_last (faster convolutions on CPU)."""
    x = images.unsqueeze(1).float().div_(255)
    return x.contiguous(memory_format=torch.channels_last)


RETRAIN = "retrain with dvc repro train"
DDP_PREFIX = "module."  # DistributedDataParallel's wrapper puts it before every key


# Where training scripts commonly keep the weights inside a checkpoint dict.
NESTED_KEYS = ("model", "state_dict", "model_state_dict", "net", "weights")


def check_state_dict(model: nn.Module, state: dict, origin: str, fix: str = RETRAIN) -> None:
    """Raise a clear error naming the first layer whose name or shape does not fit `model`, or the
    key under which a checkpoint dict holds the weights."""
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            nested = next((k for k in NESTED_KEYS if isinstance(state.get(k), dict)), None)
            if nested is not None:
                raise MnistError(f"{origin} is a checkpoint dict with the weights under {nested!r}: "
                                 f"save those alone, torch.save(checkpoint[{nested!r}], path), or "
                                 "torch.save(net.state_dict(), path)")
            raise MnistError(f"{origin} lacks weights for layer {key}: it is not a MyConvNet "
                             f"state_dict; {fix}")
        got = state[key]
        if not isinstance(got, torch.Tensor) or got.shape != tensor.shape:
            shape = list(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise MnistError(f"{origin}: layer {key} has shape {shape}, MyConvNet expects "
                             f"{list(tensor.shape)}: the file is from another model; {fix}")
    extra = sorted(set(state) - set(expected), key=str)
    if extra:
        raise MnistError(f"{origin} holds an unexpected layer {extra[0]}: it is not a MyConvNet "
                         f"state_dict; {fix}")


def read_state_dict(path: str | Path, fix: str = RETRAIN,
                    missing: str = "run the train stage first (dvc repro train)") -> dict:
    """The dict saved at `path`, read by torch_files.load (never runs pickled code): one MnistError
    line for a bad file, ending in `missing` where there is no file, else in `fix`."""
    state = torch_files.load(path, what="a weights file", missing=missing, fix=fix)
    if not isinstance(state, dict):
        raise MnistError(f"{path} holds a {type(state).__name__}, not a state_dict: {fix}")
    return state


def without_ddp_prefix(state: dict) -> dict:
    """A state_dict saved from a DistributedDataParallel model (every key `module.<name>`) with
    plain names; any other state_dict unchanged."""
    if state and all(isinstance(k, str) and k.startswith(DDP_PREFIX) for k in state):
        return {k.removeprefix(DDP_PREFIX): v for k, v in state.items()}
    return state


def load_model(path: str | Path, device: torch.device | str = "cpu",
               missing: str = "run the train stage first (dvc repro train)") -> MyConvNet:
    """A MyConvNet with the weights saved at `path`, in eval mode. Never runs pickled code.
    `missing`: the fix when there is no file (a path someone typed wants "check the path")."""
    state = read_state_dict(path, missing=missing)
    model = MyConvNet()
    check_state_dict(model, state, str(path))
    model.load_state_dict(state)
    return model.to(device).eval()
