"""PNG figures for people without DVC: curves, confusion matrix, misclassified digits."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import torch  # noqa: E402

from mnist_dvc.atomic import atomic_path  # noqa: E402

# The seed report's colours.
SPLIT_COLOURS = {"train": "green", "valid": "blue", "test": "red"}


def _save(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)


def curves(history: list[dict], best_epoch: int, path: str | Path) -> None:
    """Loss and accuracy per epoch for train, valid and test, with the selected epoch marked."""
    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("loss", "acc")):
        for split, colour in SPLIT_COLOURS.items():
            ax.plot(epochs, [row[f"{split}_{metric}"] for row in history], color=colour,
                    marker="o", markersize=3, label=split)
        ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label=f"best (epoch {best_epoch})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("cross-entropy loss" if metric == "loss" else "accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_yscale("log")
    fig.suptitle("MyConvNet on MNIST: per-epoch curves (test is monitoring only)")
    fig.tight_layout()
    _save(fig, path)


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
    _save(fig, path)


def misclassified(images: torch.Tensor, labels: torch.Tensor, predicted: torch.Tensor,
                  path: str | Path, limit: int = 40) -> None:
    """A grid of the first `limit` misclassified test digits, titled true → predicted."""
    wrong = torch.nonzero(labels != predicted).flatten()[:limit]
    cols = 10
    rows = max(1, (len(wrong) + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, wrong.tolist()):
        ax.imshow(images[index].numpy(), cmap="gray_r")
        ax.set_title(f"{labels[index].item()}→{predicted[index].item()}", fontsize=9, color="darkred")
    fig.suptitle(f"Misclassified test digits, true→predicted ({len(wrong)} shown of "
                 f"{int((labels != predicted).sum())})", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def overlay(histories: dict[str, list[dict]], column: str, name: str, path: str | Path) -> None:
    """One line per experiment: `column` of its history against the epoch."""
    fig, ax = plt.subplots(figsize=(8, 5))
    for label, history in sorted(histories.items()):
        ax.plot([r["epoch"] for r in history], [r[column] for r in history], marker="o",
                markersize=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(name)
    ax.set_title(f"{name} per epoch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def bars(values: dict[str, float], name: str, path: str | Path) -> None:
    """A horizontal bar per experiment, best on top, with the value written on each bar."""
    ordered = sorted(values.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(ordered) + 1.2))
    ax.barh([k for k, _ in ordered], [v for _, v in ordered], color="steelblue")
    for i, (_, value) in enumerate(ordered):
        ax.text(value, i, f" {value:.4f}", va="center", fontsize=8)
    low = min(v for _, v in ordered)
    ax.set_xlim(max(0.0, low - (1 - low)), 1.0)
    ax.set_xlabel(name)
    ax.set_title(f"{name} per experiment")
    fig.tight_layout()
    _save(fig, path)
