"""The study's optimizers and learning-rate schedules, built from params."""

import math

import torch

from mnist_dvc.params import Params


def make_optimizer(params: Params, model: torch.nn.Module) -> torch.optim.Optimizer:
    """Fused (one kernel over all parameters) where torch has it, else multi-tensor (foreach): the
    default per-tensor loop launches one small operation per parameter tensor, a large share of a
    small model's step."""
    t = params.train
    if params.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay,
                                fused=True)
    if params.optimizer == "nadam":
        return torch.optim.NAdam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay,
                                 foreach=True)
    return torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum,
                           weight_decay=t.weight_decay, fused=True)


def lr_factor(params: Params, step: int, steps_per_epoch: int) -> float:
    """Multiplier of train.lr before optimizer step `step` (0-based), per the chosen schedule."""
    epoch = step / steps_per_epoch
    if params.scheduler == "constant":
        return 1.0
    if params.scheduler == "steplr":
        return params.steplr.gamma ** (int(epoch) // params.steplr.step_size)
    warm = params.warmup
    if epoch < warm.epochs:  # capped: a fractional warm-up's last step would overshoot the peak
        return min(1.0, (step + 1) / (warm.epochs * steps_per_epoch))
    if warm.decay == "exponential":
        return warm.gamma ** (epoch - warm.epochs)
    progress = (epoch - warm.epochs) / max(params.train.epochs - warm.epochs, 1e-9)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def make_scheduler(params: Params, optimizer, steps_per_epoch: int):
    """Stepped once per batch, so warm-up and cosine move smoothly within an epoch."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(params, step, steps_per_epoch))
