"""The training loop: epochs of shuffled batches, valid/test measured after each, best-on-valid
weights kept, early stopping, a checkpoint after every epoch.

The whole dataset lives as tensors on the device and is batched by index: no per-sample Python.
Under torchrun (see distributed.py) the same loop runs in every process: one shared permutation
per epoch, each process trains its slice of every global batch, DDP averages the gradients, and
metrics, evaluation and decisions are combined so they mean what they mean in one process.
"""

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from mnist_dvc import checkpoint as checkpoints
from mnist_dvc.augment import random_affine
from mnist_dvc.device import Precision, autocast, resolve_precision
from mnist_dvc.digits import Digits
from mnist_dvc.distributed import SOLO, Group, current
from mnist_dvc.errors import MnistError
from mnist_dvc.inference import evaluate
from mnist_dvc.model import MyConvNet, as_input
from mnist_dvc.optimizers import make_optimizer, make_scheduler
from mnist_dvc.params import Params


@dataclass
class FitState:
    """Where a run stands after its last finished epoch: what a resumed run continues from, and
    what `fit` returns."""

    epoch: int = 0
    history: list = field(default_factory=list)
    best_epoch: int = 0
    best_valid_acc: float = -1.0
    best_valid_loss: float = math.inf
    best_state: dict | None = None
    stale: int = 0
    seconds: float = 0.0

    def is_better(self, valid_acc: float, valid_loss: float) -> bool:
        """Selection is on valid accuracy, ties broken by lower valid loss; test never counts."""
        return (valid_acc, -valid_loss) > (self.best_valid_acc, -self.best_valid_loss)


def _cpu_state(model: torch.nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _bar_disabled(progress: bool | None) -> bool | None:
    return None if progress is None else not progress  # None: bars only on a terminal


def batch_starts(n: int, batch_size: int, processes: int = 1) -> range:
    """Start of each (global) training batch. Each of `processes` trains a slice of every batch and
    needs two images (BatchNorm), so a last batch under 2 x processes images is dropped: in one
    process, a last batch of one image."""
    tail = n % batch_size
    last = n - tail if 0 < tail < 2 * processes else n
    return range(0, last, batch_size)


def training_loss(logits: torch.Tensor, labels: torch.Tensor, params: Params) -> torch.Tensor:
    """Cross-entropy with train.label_smoothing; with model.head = softmax, of the softmax of the
    logits, as the seed computed it (its model ended in softmax, and the loss adds log-softmax)."""
    scores = logits.softmax(dim=1) if params.model.head == "softmax" else logits
    return F.cross_entropy(scores, labels, label_smoothing=params.train.label_smoothing)


def train_epoch(model, train: Digits, optimizer, scheduler, params: Params,
                generator: torch.Generator, device: torch.device, precision: Precision,
                progress: bool | None, group: Group = SOLO):
    """One epoch; returns train loss and accuracy over all processes' images."""
    t = params.train
    n = len(train)
    order = torch.randperm(n, generator=generator).to(device)  # the same on every rank
    augment_rng = generator if group.size == 1 else group.augment_generator(generator)
    total_loss = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    loss_is_plain = t.label_smoothing == 0 and params.model.head == "logits"
    model.train()
    for start in tqdm(batch_starts(n, t.batch_size, group.size), desc="batches", leave=False,
                      disable=_bar_disabled(progress)):
        index, weight = group.slice_batch(order[start:start + t.batch_size])
        x, y = as_input(train.images[index]), train.labels[index]
        if t.augment:
            x = random_affine(x, augment_rng)
        with autocast(device, precision):
            logits = model(x)
        logits = logits.float()
        loss = training_loss(logits, y, params)
        optimizer.zero_grad(set_to_none=True)
        # weight != 1 only for an uneven last slice: DDP's mean over ranks is then the global mean.
        (loss if weight == 1.0 else loss * weight).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        optimizer.step()
        scheduler.step()
        # Logged loss is plain cross-entropy, comparable with valid/test whatever the training loss.
        plain = loss.detach() if loss_is_plain else F.cross_entropy(logits.detach(), y)
        total_loss += plain.detach() * len(index)
        correct += (logits.argmax(dim=1) == y).sum()
        seen += len(index)
    total, right, seen = group.sum([total_loss.item(), correct.item(), seen])
    return total / seen, right / seen


def _evaluate(model, digits: Digits, group: Group) -> tuple[float, float]:
    """Loss and accuracy of `digits` (in fp32, as inference.py decides for every evaluation); under
    torchrun each rank evaluates its shard, then they sum."""
    if group.size == 1:
        loss, acc, _ = evaluate(model, digits)
        return loss, acc
    part = group.shard(len(digits))
    shard = Digits(digits.images[part], digits.labels[part])
    loss, _, predicted = evaluate(model, shard)
    right = (predicted == shard.labels.cpu()).sum().item()
    total, right, n = group.sum([loss * len(shard), right, len(shard)])
    return total / n, right / n


def fit(params: Params, train: Digits, valid: Digits, test: Digits, device: torch.device,
        precision: Precision | None = None, checkpoint: Path | None = None, fingerprint: str = "",
        progress: bool | None = None, on_epoch=None, group: Group | None = None) -> FitState:
    """Train MyConvNet; keep the best-on-valid weights; stop after `patience` stale epochs.

    The test set is evaluated each epoch for the curves only: it never influences selection.
    With `checkpoint`, every finished epoch is saved there and a matching one is resumed.
    `on_epoch(state)` is called after each epoch with the FitState so far (the train stage writes
    the live metrics files with it; benchmarks watch the accuracy).
    `group`: the processes training together (default: the initialized process group, else one);
    rank 0 alone loads and saves the checkpoint, prints and calls `on_epoch`.
    """
    group = group or current()
    main = group.is_main
    if not main:
        progress = False
    t = params.train
    if t.batch_size > len(train):
        raise MnistError(f"train.batch_size = {t.batch_size} is larger than the training set "
                         f"({len(train)} images): lower train.batch_size")
    precision = precision or resolve_precision(t.precision, device, warn=False)
    torch.manual_seed(params.seed)
    generator = torch.Generator().manual_seed(params.seed)
    net = MyConvNet().to(device).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(params, net)
    scheduler = make_scheduler(params, optimizer,
                               len(batch_starts(len(train), t.batch_size, group.size)))
    train, valid, test = (Digits(d.images.to(device), d.labels.to(device))
                          for d in (train, valid, test))

    state = FitState()
    blob = None
    if checkpoint:  # rank 0 reads it and hands it to the others: no shared disk needed
        blob = group.share(checkpoints.load(checkpoint, fingerprint) if main else None)
    if blob is not None:
        state = FitState(**blob["state"])
        net.load_state_dict(blob["model"])
        optimizer.load_state_dict(blob["optimizer"])
        scheduler.load_state_dict(blob["scheduler"])
        generator.set_state(blob["generator"])
        if main:
            print(f"resuming from checkpoint {checkpoint} after epoch {state.epoch}")
    model = group.wrap(net)

    epochs = tqdm(range(state.epoch + 1, t.epochs + 1), desc="epochs", initial=state.epoch,
                  total=t.epochs, disable=_bar_disabled(progress))
    for epoch in epochs:
        if state.stale >= t.patience:
            break
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train_loss, train_acc = train_epoch(model, train, optimizer, scheduler, params,
                                            generator, device, precision, progress, group)
        if not math.isfinite(train_loss):
            kept = (f"the best model so far (epoch {state.best_epoch}) is kept in the checkpoint"
                    if checkpoint and state.best_epoch else "no finished epoch was saved")
            raise MnistError(f"training loss became {train_loss} in epoch {epoch}: lower train.lr "
                             f"(now {t.lr}); {kept}")
        group.average_buffers(net)
        valid_loss, valid_acc = _evaluate(net, valid, group)
        test_loss, test_acc = _evaluate(net, test, group)
        state.seconds += time.perf_counter() - started
        record = {"epoch": epoch, "lr": lr, "train_loss": train_loss, "train_acc": train_acc,
                  "valid_loss": valid_loss, "valid_acc": valid_acc,
                  "test_loss": test_loss, "test_acc": test_acc}
        state.history.append(record)
        state.epoch = epoch
        if group.decide(state.is_better(valid_acc, valid_loss)):  # rank 0 decides for all
            state.best_epoch, state.best_valid_acc, state.best_valid_loss = epoch, valid_acc, valid_loss
            state.best_state, state.stale = _cpu_state(net), 0
        else:
            state.stale += 1
        if checkpoint and main:
            checkpoints.save(checkpoint, fingerprint, {
                "state": vars(state), "model": _cpu_state(net),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "generator": generator.get_state()})
        group.barrier()  # no rank starts the next epoch before this one is saved
        if main:
            epochs.write(f"epoch {epoch:3d}  lr {lr:.2e}  train {train_loss:.4f}/{train_acc:.4f}  "
                         f"valid {valid_loss:.4f}/{valid_acc:.4f}  test {test_loss:.4f}/{test_acc:.4f}")
            if on_epoch:
                on_epoch(state)
    return state
