"""Batched evaluation, shared by the train loop (valid and test every epoch), the evaluate stage and
the hand-in.

Always in fp32, whatever train.precision says: the course runs the model in fp32, and the
per-epoch valid evaluation that selects the model must score it as the evaluate stage reports it
(bf16 logits flip borderline argmaxes, so a bf16 history's test accuracy differed from test.json).
This is the one place that applies it (device.fp32_evaluation): no caller chooses an evaluation
precision.
"""

import torch
import torch.nn.functional as F

from mnist_dvc.device import fp32_evaluation
from mnist_dvc.digits import Digits
from mnist_dvc.model import as_input

# Inference batch: on a CPU a batch of 128 keeps the activations in cache (a big batch spills them);
# a GPU needs big batches to keep busy.
EVAL_BATCH = {"cpu": 128, "cuda": 2048}


def eval_batch_size(device: torch.device) -> int:
    return EVAL_BATCH.get(device.type, 128)


@torch.inference_mode()
def logits_of(model: torch.nn.Module, digits: Digits, batch_size: int | None = None) -> torch.Tensor:
    """The model's fp32 logits for every image of `digits`, (N, 10) on the CPU, in eval mode."""
    device = next(model.parameters()).device
    batch_size = batch_size or eval_batch_size(device)
    was_training = model.training
    model.eval()
    parts = []
    with fp32_evaluation(device):  # also inside any autocast a caller may have entered
        for start in range(0, len(digits), batch_size):
            images = digits.images[start:start + batch_size].to(device, non_blocking=True)
            parts.append(model(as_input(images)).float())
    model.train(was_training)
    return torch.cat(parts).cpu() if parts else torch.zeros(0, 10)


def evaluate(model: torch.nn.Module, digits: Digits,
             batch_size: int | None = None) -> tuple[float, float, torch.Tensor]:
    """Mean cross-entropy, accuracy (argmax) and the predicted labels of `digits`."""
    logits = logits_of(model, digits, batch_size)
    loss, accuracy = loss_and_accuracy(logits, digits.labels.cpu())
    return loss, accuracy, logits.argmax(dim=1)


def correct_count(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """How many rows' argmax is their label: a tensor on the logits' device (no sync)."""
    return (logits.argmax(dim=1) == labels).sum()


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Argmax accuracy, the one definition every figure uses; 0.0 for no rows."""
    return correct_count(logits, labels).item() / len(labels) if len(labels) else 0.0


def loss_and_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    if len(labels) == 0:
        return 0.0, 0.0
    loss = F.cross_entropy(logits.double(), labels, reduction="mean").item()
    return loss, accuracy(logits, labels)
