"""PNG figures for people without DVC: curves, confusion matrix, misclassified digits and the
reliability diagram (the study's figures are in study_page.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from mnist_dvc.atomic import atomic_path  # noqa: E402
from mnist_dvc.results import Epoch  # noqa: E402

if TYPE_CHECKING:  # torch only where a figure needs it: compare and study draw without it (1.4 s)
    import torch

# The colours of the starter code's report.
SPLIT_COLOURS = {"train": "green", "valid": "blue", "test": "red"}


def save(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)


def curves(history: list[Epoch], best_epoch: int, path: str | Path) -> None:
    """Loss and accuracy per epoch for train, valid and test, with the selected epoch marked."""
    epochs = [row.epoch for row in history]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("loss", "acc"), strict=True):
        for split, colour in SPLIT_COLOURS.items():
            ax.plot(epochs, [getattr(row, f"{split}_{metric}") for row in history], color=colour,
                    marker="o", markersize=3, label=split)
        ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label=f"best (epoch {best_epoch})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("cross-entropy loss" if metric == "loss" else "accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_yscale("log")
    fig.suptitle("MyConvNet on MNIST: per-epoch curves (test is monitoring only)")
    fig.tight_layout()
    save(fig, path)


def confusion(counts: torch.Tensor, path: str | Path) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    image = ax.imshow(counts.log1p().numpy(), cmap="Blues")
    peak = counts.max().item()
    for true in range(counts.shape[0]):
        for pred in range(counts.shape[1]):
            value = counts[true, pred].item()
            if value:
                ax.text(pred, true, str(value), ha="center", va="center", fontsize=7,
                        color="white" if value > peak / 4 else "black")
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Test confusion matrix (colour: log count)")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    save(fig, path)


def misclassified(images: torch.Tensor, labels: torch.Tensor, predicted: torch.Tensor,
                  path: str | Path, limit: int = 40) -> None:
    """A grid of the first `limit` misclassified test digits, titled true → predicted. One image
    of them all, not an axes each: 0.09 s against 0.72 s for 40 axes laid out by tight_layout
    (bench/measured/2026-12-06_suite_round6/light_starts.txt)."""
    import torch

    wrong = torch.nonzero(labels != predicted).flatten()[:limit]
    cols, title, side = 10, 12, 28  # pixels: a title's strip above each 28x28 digit
    rows = max(1, (len(wrong) + cols - 1) // cols)
    cell_height, cell_width = title + side, side + 4
    sheet = torch.zeros(rows * cell_height, cols * cell_width)
    fig, ax = plt.subplots(figsize=(cols * 1.1, rows * 1.3 + 0.4))
    for k, index in enumerate(wrong.tolist()):
        top, left = k // cols * cell_height, k % cols * cell_width
        sheet[top + title:top + cell_height, left + 2:left + 2 + side] = images[index].float()
        ax.text(left + cell_width / 2, top + title - 2, f"{labels[index].item()}→{predicted[index].item()}",
                ha="center", va="bottom", fontsize=9, color="darkred")
    ax.imshow(sheet.numpy(), cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
    ax.axis("off")
    fig.suptitle(f"Misclassified test digits, true→predicted ({len(wrong)} shown of "
                 f"{int((labels != predicted).sum())})", fontsize=10)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.4 / (rows * 1.3 + 0.4))
    save(fig, path)


def reliability(models: dict[str, list], path: str | Path) -> None:
    """The reliability diagram: for each model (label -> its calibration bins, see
    mnist_dvc/calibration.py), the accuracy of each non-empty bin against its mean top probability,
    with the diagonal where the two agree; below it, how many images each bin holds."""
    fig, (ax, counts_ax) = plt.subplots(2, 1, figsize=(6.5, 7), sharex=True,
                                        gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
    for i, (label, bins) in enumerate(models.items()):
        shown = [b for b in bins if b.count]
        line, = ax.plot([b.confidence for b in shown], [b.accuracy for b in shown], marker="o",
                        markersize=4, label=label)
        width = (bins[0].high - bins[0].low) / (len(models) + 1)
        counts_ax.bar([b.low + (i + 1) * width for b in bins], [b.count for b in bins], width=width,
                      color=line.get_color(), label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("accuracy (argmax) in the bin")
    ax.set_title("Reliability on the test set: above the diagonal, right more often than sure")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    counts_ax.set_yscale("log")
    counts_ax.set_xlabel(f"top softmax probability (confidence), {len(bins)} equal-width bins")
    counts_ax.set_ylabel("images")
    counts_ax.grid(alpha=0.3)
    fig.tight_layout()
    save(fig, path)
