"""The training loop, shared evaluation, optimizers, schedules and resumable checkpoints.

The whole dataset lives as tensors on the device and is batched by index: no per-sample Python.
"""

import contextlib
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from mnist_dvc.atomic import torch_save
from mnist_dvc.data import Digits, md5_of
from mnist_dvc.errors import MnistError
from mnist_dvc.model import MyConvNet
from mnist_dvc.params import Params, as_dict

# Inference batch: on this 2-core CPU batch 128 ran 2x faster than 1000 (cache-bound); GPUs like big ones.
EVAL_BATCH = {"cpu": 128, "cuda": 2048}
CHECKPOINT_VERSION = 1


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def as_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) → float (N, 1, 28, 28) in [0, 1], channels_last (faster convs on CPU)."""
    x = images.unsqueeze(1).float().div_(255)
    return x.contiguous(memory_format=torch.channels_last)


def autocast(device: torch.device, bf16: bool):
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@torch.inference_mode()
def predict(model: torch.nn.Module, digits: Digits, bf16: bool = False,
            batch_size: int | None = None) -> tuple[float, float, torch.Tensor]:
    """Mean cross-entropy, accuracy (argmax) and the predicted labels of `digits`."""
    device = next(model.parameters()).device
    batch_size = batch_size or EVAL_BATCH.get(device.type, 128)
    was_training = model.training
    model.eval()
    total_loss = torch.zeros((), device=device, dtype=torch.float64)
    predictions = []
    for start in range(0, len(digits), batch_size):
        images = digits.images[start:start + batch_size].to(device, non_blocking=True)
        labels = digits.labels[start:start + batch_size].to(device, non_blocking=True)
        with autocast(device, bf16):
            logits = model(as_input(images))
        total_loss += F.cross_entropy(logits.float(), labels, reduction="sum")
        predictions.append(logits.argmax(dim=1))
    model.train(was_training)
    predicted = torch.cat(predictions).cpu() if predictions else torch.zeros(0, dtype=torch.long)
    n = max(len(digits), 1)
    accuracy = (predicted == digits.labels.cpu()).sum().item() / n
    return total_loss.item() / n, accuracy, predicted


def make_optimizer(params: Params, model: torch.nn.Module) -> torch.optim.Optimizer:
    t = params.train
    if params.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    if params.optimizer == "nadam":
        return torch.optim.NAdam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum,
                           weight_decay=t.weight_decay)


def lr_factor(params: Params, step: int, steps_per_epoch: int) -> float:
    """Multiplier of train.lr before optimizer step `step` (0-based), per the chosen schedule."""
    epoch = step / steps_per_epoch
    if params.scheduler == "constant":
        return 1.0
    if params.scheduler == "steplr":
        return params.steplr.gamma ** (int(epoch) // params.steplr.step_size)
    warm = params.warmup
    if epoch < warm.epochs:
        return (step + 1) / (warm.epochs * steps_per_epoch)
    if warm.decay == "exponential":
        return warm.gamma ** (epoch - warm.epochs)
    progress = (epoch - warm.epochs) / max(params.train.epochs - warm.epochs, 1e-9)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def make_scheduler(params: Params, optimizer, steps_per_epoch: int):
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(params, step, steps_per_epoch))


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random affine per image (rotation ±10°, scale 0.9-1.1, shift ±2 px), on the whole batch."""
    n = x.shape[0]
    u = torch.rand(n, 4, generator=generator).to(x.device) * 2 - 1
    angle = u[:, 0] * math.radians(10)
    scale = 1 + u[:, 1] * 0.1
    shift = u[:, 2:] * (2 / 14)  # affine_grid works in [-1, 1]: 14 px per unit
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)


@dataclass
class FitState:
    """Everything a resumed run needs to continue exactly where the last finished epoch left it."""

    epoch: int = 0
    history: list = field(default_factory=list)
    best_epoch: int = 0
    best_valid_acc: float = -1.0
    best_valid_loss: float = math.inf
    best_state: dict | None = None
    stale: int = 0
    seconds: float = 0.0


def _is_better(valid_acc: float, valid_loss: float, state: FitState) -> bool:
    return (valid_acc, -valid_loss) > (state.best_valid_acc, -state.best_valid_loss)


def _cpu_state(model: torch.nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def run_fingerprint(params: Params, data_files, device: torch.device) -> str:
    """Identifies what a checkpoint was made from: all params, the data's bytes and the device."""
    digest = hashlib.sha256(json.dumps(as_dict(params), sort_keys=True).encode())
    digest.update(device.type.encode())
    for path in data_files:
        digest.update(md5_of(path).encode())
    return digest.hexdigest()


def save_checkpoint(path: Path, fingerprint: str, state: FitState, model, optimizer, scheduler,
                    generator: torch.Generator) -> None:
    blob = {
        "version": CHECKPOINT_VERSION, "fingerprint": fingerprint,
        "state": {k: v for k, v in vars(state).items()},
        "model": _cpu_state(model), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(), "generator": generator.get_state(),
    }
    torch_save(blob, path)


def load_checkpoint(path: Path, fingerprint: str) -> dict | None:
    """The checkpoint at `path` if it belongs to these params and data, else None (with a message)."""
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        ok = blob.get("version") == CHECKPOINT_VERSION and blob.get("fingerprint") == fingerprint
    except Exception as exc:
        tqdm.write(f"ignoring checkpoint {path}: unreadable ({type(exc).__name__}); training from epoch 1")
        return None
    if not ok:
        tqdm.write(f"ignoring checkpoint {path}: it was made with other params or data; "
                   "training from epoch 1")
        return None
    return blob


@dataclass
class FitResult:
    best_state: dict
    history: list
    best_epoch: int
    best_valid_acc: float
    best_valid_loss: float
    epochs_run: int
    seconds: float


def _bar_disabled(progress: bool | None) -> bool | None:
    return None if progress is None else not progress  # None: bars only on a terminal


def batch_starts(n: int, batch_size: int) -> range:
    """Start of each training batch; a last batch of one image is dropped (BatchNorm cannot train on it)."""
    last = n - 1 if n % batch_size == 1 else n
    return range(0, last, batch_size)


def train_epoch(model, train: Digits, optimizer, scheduler, params: Params,
                generator: torch.Generator, device: torch.device, progress: bool | None):
    t = params.train
    n = len(train)
    order = torch.randperm(n, generator=generator).to(device)
    total_loss = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    model.train()
    for start in tqdm(batch_starts(n, t.batch_size), desc="batches", leave=False,
                      disable=_bar_disabled(progress)):
        index = order[start:start + t.batch_size]
        x, y = as_input(train.images[index]), train.labels[index]
        if t.augment:
            x = augment(x, generator)
        with autocast(device, t.bf16):
            logits = model(x)
        logits = logits.float()
        loss = F.cross_entropy(logits, y, label_smoothing=t.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        optimizer.step()
        scheduler.step()
        # Logged loss is plain cross-entropy, comparable with valid/test even with label smoothing.
        plain = loss if not t.label_smoothing else F.cross_entropy(logits.detach(), y)
        total_loss += plain.detach() * len(index)
        correct += (logits.argmax(dim=1) == y).sum()
        seen += len(index)
    return total_loss.item() / seen, correct.item() / seen


def fit(params: Params, train: Digits, valid: Digits, test: Digits, device: torch.device,
        checkpoint: Path | None = None, fingerprint: str = "", progress: bool | None = None,
        on_epoch=None) -> FitResult:
    """Train MyConvNet; keep the best-on-valid weights; stop after `patience` stale epochs.

    The test set is evaluated each epoch for the curves only: it never influences selection.
    With `checkpoint`, every finished epoch is saved there and a matching one is resumed.
    `on_epoch(record)` is called after each epoch (benchmarks use it).
    """
    t = params.train
    if t.batch_size > len(train):
        raise MnistError(f"train.batch_size = {t.batch_size} is larger than the training set "
                         f"({len(train)} images): lower train.batch_size")
    torch.manual_seed(params.seed)
    generator = torch.Generator().manual_seed(params.seed)
    model = MyConvNet().to(device).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(params, model)
    scheduler = make_scheduler(params, optimizer, len(batch_starts(len(train), t.batch_size)))
    train, valid, test = (Digits(d.images.to(device), d.labels.to(device))
                          for d in (train, valid, test))

    state = FitState()
    blob = load_checkpoint(checkpoint, fingerprint) if checkpoint else None
    if blob is not None:
        state = FitState(**blob["state"])
        model.load_state_dict(blob["model"])
        optimizer.load_state_dict(blob["optimizer"])
        scheduler.load_state_dict(blob["scheduler"])
        generator.set_state(blob["generator"])
        tqdm.write(f"resuming from checkpoint {checkpoint} after epoch {state.epoch}")

    epochs = tqdm(range(state.epoch + 1, t.epochs + 1), desc="epochs", initial=state.epoch,
                  total=t.epochs, disable=_bar_disabled(progress))
    for epoch in epochs:
        if state.stale >= t.patience:
            break
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train_loss, train_acc = train_epoch(model, train, optimizer, scheduler, params,
                                            generator, device, progress)
        if not math.isfinite(train_loss):
            kept = (f"the best model so far (epoch {state.best_epoch}) is kept in the checkpoint"
                    if checkpoint and state.best_epoch else "no finished epoch was saved")
            raise MnistError(f"training loss became {train_loss} in epoch {epoch}: lower train.lr "
                             f"(now {t.lr}); {kept}")
        valid_loss, valid_acc, _ = predict(model, valid, t.bf16)
        test_loss, test_acc, _ = predict(model, test, t.bf16)
        state.seconds += time.perf_counter() - started
        record = {"epoch": epoch, "lr": lr, "train_loss": train_loss, "train_acc": train_acc,
                  "valid_loss": valid_loss, "valid_acc": valid_acc,
                  "test_loss": test_loss, "test_acc": test_acc}
        state.history.append(record)
        state.epoch = epoch
        if _is_better(valid_acc, valid_loss, state):
            state.best_epoch, state.best_valid_acc, state.best_valid_loss = epoch, valid_acc, valid_loss
            state.best_state, state.stale = _cpu_state(model), 0
        else:
            state.stale += 1
        if checkpoint:
            save_checkpoint(checkpoint, fingerprint, state, model, optimizer, scheduler, generator)
        epochs.write(f"epoch {epoch:3d}  lr {lr:.2e}  train {train_loss:.4f}/{train_acc:.4f}  "
                     f"valid {valid_loss:.4f}/{valid_acc:.4f}  test {test_loss:.4f}/{test_acc:.4f}")
        if on_epoch:
            on_epoch(record)
    return FitResult(best_state=state.best_state, history=state.history,
                     best_epoch=state.best_epoch, best_valid_acc=state.best_valid_acc,
                     best_valid_loss=state.best_valid_loss, epochs_run=state.epoch,
                     seconds=state.seconds)
