"""The training loop: epochs of shuffled batches, valid/test measured after each, best-on-valid
weights kept, early stopping, a checkpoint after every epoch.

`fit` (the epochs) and `train_epoch` (the batches) come first and read as the plain PyTorch loop;
the helpers below them hold the details. The whole dataset lives as tensors on the device and is
batched by index: no per-sample Python. Under torchrun (see distributed.py) the same loop runs in
every process: one shared permutation per epoch, each process trains its slice of every global
batch, DDP averages the gradients, and metrics, evaluation and decisions are combined so they
mean what they mean in one process.
"""

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from mnist_dvc import checkpoint as checkpoints
from mnist_dvc.augment import random_affine
from mnist_dvc.device import Precision, autocast
from mnist_dvc.digits import Digits
from mnist_dvc.distributed import SOLO, Group
from mnist_dvc.errors import MnistError
from mnist_dvc.inference import correct_count, evaluate
from mnist_dvc.model import MyConvNet, as_input
from mnist_dvc.optimizers import make_optimizer, make_scheduler
from mnist_dvc.params import Params
from mnist_dvc.results import Epoch


@dataclass(frozen=True)
class Splits:
    """The three prepared sets a fit reads: it trains on `train`, selects on `valid`, and only
    records `test`."""

    train: Digits
    valid: Digits
    test: Digits

    def to(self, device: torch.device) -> "Splits":
        return Splits(*(Digits(d.images.to(device), d.labels.to(device))
                        for d in (self.train, self.valid, self.test)))


@dataclass(frozen=True)
class Run:
    """Where and how a fit runs, as the caller decided it (what it trains is Params): the device,
    the training precision (device.setup; evaluation is fp32 whatever this says), the
    processes training together (SOLO: one), and progress bars (None: only on a terminal)."""

    device: torch.device
    precision: Precision
    group: Group = SOLO
    progress: bool | None = None

    @property
    def bars_disabled(self) -> bool | None:
        if not self.group.is_main:
            return True
        return None if self.progress is None else not self.progress


@dataclass(frozen=True)
class Checkpointing:
    """Save every finished epoch to `path`; resume from it only if it carries `fingerprint`."""

    path: Path
    fingerprint: str = ""


@dataclass
class Trainer:
    """What the epochs step: the network (`model` is it, or its DDP wrapper), the optimizer and
    its schedule, and the generator behind shuffling and augmentation."""

    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator
    model: torch.nn.Module | None = None

    def __post_init__(self):
        self.model = self.model or self.net


@dataclass
class FitState:
    """Where a run stands after its last finished epoch: what a resumed run continues from, and
    what `fit` returns."""

    epoch: int = 0
    history: list = field(default_factory=list)  # Epoch rows as dicts: a checkpoint holds plain data
    best_epoch: int = 0
    best_valid_acc: float = -1.0
    best_valid_loss: float = math.inf
    best_state: dict | None = None
    stale: int = 0
    seconds: float = 0.0

    def is_better(self, valid_acc: float, valid_loss: float) -> bool:
        """Selection is on valid accuracy, ties broken by lower valid loss; test never counts."""
        return (valid_acc, -valid_loss) > (self.best_valid_acc, -self.best_valid_loss)


def fit(params: Params, splits: Splits, run: Run, checkpoint: Checkpointing | None = None,
        on_epoch=None) -> FitState:
    """Train MyConvNet; keep the best-on-valid weights; stop after `patience` stale epochs.

    The test set is evaluated each epoch for the curves only: it never influences selection.
    With `checkpoint`, every finished epoch is saved there and a matching one is resumed.
    `on_epoch(state)` is called after each epoch with the FitState so far (the train stage writes
    the live metrics files with it; benchmarks watch the accuracy). Under torchrun (`run.group`),
    rank 0 alone loads and saves the checkpoint, prints and calls `on_epoch`.
    """
    t, group = params.train, run.group
    check_batch_size(t.batch_size, len(splits.train))
    trainer = build(params, len(splits.train), run)
    data = splits.to(run.device)
    state = resume(trainer, checkpoint, group)
    trainer.model = group.wrap(trainer.net)
    epochs = tqdm(range(state.epoch + 1, t.epochs + 1), desc="epochs", initial=state.epoch,
                  total=t.epochs, disable=run.bars_disabled)
    for epoch in epochs:
        if state.stale >= t.patience:
            break
        started = time.perf_counter()
        lr = trainer.optimizer.param_groups[0]["lr"]
        train_loss, train_acc = train_epoch(trainer, data.train, params, run)
        stop_if_diverged(train_loss, epoch, t.lr, state, checkpoint)
        record = asdict(Epoch(epoch=epoch, lr=lr, train_loss=train_loss, train_acc=train_acc,
                              **measure(trainer.net, data, group)))
        state.seconds += time.perf_counter() - started
        record_epoch(state, record, trainer.net, group)
        save_checkpoint(trainer, state, checkpoint, group)
        if group.is_main:
            epochs.write(epoch_line(record))
            if on_epoch:
                on_epoch(state)
    return state


def train_epoch(trainer: Trainer, train: Digits, params: Params, run: Run) -> tuple[float, float]:
    """One epoch; returns train loss and accuracy over all processes' images."""
    model, optimizer, scheduler = trainer.model, trainer.optimizer, trainer.scheduler
    tally = Tally(params, run.device)
    model.train()
    for x, y, weight in shuffled_batches(train, trainer.generator, params, run):
        with autocast(run.device, run.precision):
            logits = model(x).float()
        loss = training_loss(logits, y, params)
        optimizer.zero_grad(set_to_none=True)
        (loss * weight).backward()  # weight: 1, but for an uneven last slice under torchrun
        clip_gradients(model, params.train.grad_clip)
        optimizer.step()
        scheduler.step()
        tally.add(loss, logits, y)
    return tally.mean(run.group)


# The details, in the order the loop above meets them.

def check_batch_size(batch_size: int, n_train: int) -> None:
    if batch_size > n_train:
        raise MnistError(f"train.batch_size = {batch_size} is larger than the training set "
                         f"({n_train} images): lower train.batch_size")


def build(params: Params, n_train: int, run: Run) -> Trainer:
    """A fresh MyConvNet, its optimizer and schedule, all seeded from params.seed."""
    torch.manual_seed(params.seed)
    generator = torch.Generator().manual_seed(params.seed)
    net = MyConvNet().to(run.device).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(params, net)
    steps = len(batch_starts(n_train, params.train.batch_size, run.group.size))
    return Trainer(net, optimizer, make_scheduler(params, optimizer, steps), generator)


def resume(trainer: Trainer, checkpoint: Checkpointing | None, group: Group) -> FitState:
    """The state after the checkpoint's last epoch, loaded into `trainer`; a fresh FitState when
    there is no matching checkpoint. Rank 0 reads it and hands it to the others: no shared disk."""
    if checkpoint is None:
        return FitState()
    blob = group.share(checkpoints.load(checkpoint.path, checkpoint.fingerprint)
                       if group.is_main else None)
    if blob is None:
        return FitState()
    restore(trainer, blob)
    state = FitState(**blob["state"])
    if group.is_main:
        print(f"resuming from checkpoint {checkpoint.path} after epoch {state.epoch}")
    return state


def restore(trainer: Trainer, blob: dict) -> None:
    """Load a checkpoint's model, optimizer, schedule and shuffling state into `trainer`."""
    trainer.net.load_state_dict(blob["model"])
    trainer.optimizer.load_state_dict(blob["optimizer"])
    trainer.scheduler.load_state_dict(blob["scheduler"])
    trainer.generator.set_state(blob["generator"])


def stop_if_diverged(train_loss: float, epoch: int, lr: float, state: FitState,
                     checkpoint: Checkpointing | None) -> None:
    if math.isfinite(train_loss):
        return
    kept = (f"the best model so far (epoch {state.best_epoch}) is kept in the checkpoint"
            if checkpoint and state.best_epoch else "no finished epoch was saved")
    raise MnistError(f"training loss became {train_loss} in epoch {epoch}: lower train.lr "
                     f"(now {lr}); {kept}")


def measure(net: torch.nn.Module, data: Splits, group: Group) -> dict:
    """Valid and test loss and accuracy after an epoch (in fp32, as inference.py decides for every
    evaluation); under torchrun the ranks first average their BatchNorm statistics."""
    group.average_buffers(net)
    valid_loss, valid_acc = _evaluate(net, data.valid, group)
    test_loss, test_acc = _evaluate(net, data.test, group)
    return {"valid_loss": valid_loss, "valid_acc": valid_acc, "test_loss": test_loss, "test_acc": test_acc}


def _evaluate(model, digits: Digits, group: Group) -> tuple[float, float]:
    """Loss and accuracy of `digits`; under torchrun each rank evaluates its shard, then they sum."""
    if group.size == 1:
        loss, acc, _ = evaluate(model, digits)
        return loss, acc
    part = group.shard(len(digits))
    shard = Digits(digits.images[part], digits.labels[part])
    loss, _, predicted = evaluate(model, shard)
    right = (predicted == shard.labels.cpu()).sum().item()
    total, right, n = group.sum([loss * len(shard), right, len(shard)])
    return total / n, right / n


def record_epoch(state: FitState, record: dict, net: torch.nn.Module, group: Group) -> None:
    """Append the epoch's record to the history; keep its weights if it is the best on valid so far
    (rank 0 decides for all), else count it stale."""
    state.history.append(record)
    state.epoch = record["epoch"]
    valid_acc, valid_loss = record["valid_acc"], record["valid_loss"]
    if group.decide(state.is_better(valid_acc, valid_loss)):
        state.best_epoch, state.best_valid_acc, state.best_valid_loss = state.epoch, valid_acc, valid_loss
        state.best_state, state.stale = _cpu_state(net), 0
    else:
        state.stale += 1


def save_checkpoint(trainer: Trainer, state: FitState, checkpoint: Checkpointing | None,
                    group: Group) -> None:
    """Rank 0 saves the finished epoch (with `checkpoint`); no rank starts the next epoch before."""
    if checkpoint and group.is_main:
        checkpoints.save(checkpoint.path, checkpoint.fingerprint, {
            "state": vars(state), "model": _cpu_state(trainer.net),
            "optimizer": trainer.optimizer.state_dict(), "scheduler": trainer.scheduler.state_dict(),
            "generator": trainer.generator.get_state()})
    group.barrier()


def epoch_line(r: dict) -> str:
    return (f"epoch {r['epoch']:3d}  lr {r['lr']:.2e}  "
            f"train {r['train_loss']:.4f}/{r['train_acc']:.4f}  "
            f"valid {r['valid_loss']:.4f}/{r['valid_acc']:.4f}  "
            f"test {r['test_loss']:.4f}/{r['test_acc']:.4f}")


def shuffled_batches(train: Digits, generator: torch.Generator, params: Params, run: Run):
    """This epoch's batches in a new shuffled order: images (in [0, 1], augmented with
    train.augment), labels, and the weight of this process's slice of the global batch (1.0 in one
    process; see Group.slice_batch). The permutation is the same on every rank."""
    t, group = params.train, run.group
    order = torch.randperm(len(train), generator=generator).to(run.device)
    augment_rng = generator if group.size == 1 else group.augment_generator(generator)
    for start in tqdm(batch_starts(len(train), t.batch_size, group.size), desc="batches",
                      leave=False, disable=run.bars_disabled):
        index, weight = group.slice_batch(order[start:start + t.batch_size])
        x, y = as_input(train.images[index]), train.labels[index]
        if t.augment:
            x = random_affine(x, augment_rng)
        yield x, y, weight


def batch_starts(n: int, batch_size: int, processes: int = 1) -> range:
    """Start of each (global) training batch. Each of `processes` trains a slice of every batch and
    needs two images (BatchNorm), so a last batch under 2 x processes images is dropped: in one
    process, a last batch of one image."""
    tail = n % batch_size
    last = n - tail if 0 < tail < 2 * processes else n
    return range(0, last, batch_size)


def clip_gradients(model: torch.nn.Module, max_norm: float) -> None:
    """torch's clip_grad_norm_, bit for bit, without its pass over every gradient when the norm is
    under max_norm: that pass multiplies by exactly 1.0 (torch skips the test only to spare a GPU a
    sync), and it is a read and a write of all 5 million gradient values."""
    parameters = [p for p in model.parameters() if p.grad is not None]
    total = torch.nn.utils.get_total_norm([p.grad for p in parameters])
    # Asked on the CPU only: on a GPU the question is the sync. A NaN norm answers False.
    if total.device.type == "cpu" and max_norm / (total + 1e-6) >= 1:
        return
    torch.nn.utils.clip_grads_with_norm_(parameters, max_norm, total)


def training_loss(logits: torch.Tensor, labels: torch.Tensor, params: Params) -> torch.Tensor:
    """Cross-entropy with train.label_smoothing; with model.head = softmax, of the softmax of the
    logits, as the starter code computed it (its model ended in softmax, and the loss adds log-softmax)."""
    scores = logits.softmax(dim=1) if params.model.head == "softmax" else logits
    return F.cross_entropy(scores, labels, label_smoothing=params.train.label_smoothing)


class Tally:
    """An epoch's train loss and accuracy, summed on the device (no sync per batch). The loss is
    plain cross-entropy, comparable with valid/test whatever the training loss."""

    def __init__(self, params: Params, device: torch.device):
        self.loss_is_plain = params.train.label_smoothing == 0 and params.model.head == "logits"
        self.loss = torch.zeros((), device=device, dtype=torch.float64)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.seen = 0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        plain = loss.detach() if self.loss_is_plain else F.cross_entropy(logits.detach(), labels)
        self.loss += plain * len(labels)
        self.correct += correct_count(logits, labels)
        self.seen += len(labels)

    def mean(self, group: Group) -> tuple[float, float]:
        """Loss and accuracy over all processes' images."""
        total, right, seen = group.sum([self.loss.item(), self.correct.item(), self.seen])
        return total / seen, right / seen


def _cpu_state(model: torch.nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
