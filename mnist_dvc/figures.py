"""PNG figures for people without DVC: curves, confusion matrix, misclassified digits, reliability
diagram, and the study's overlays."""

from pathlib import Path

import matplotlib
import matplotlib.ticker

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
    for ax, metric in zip(axes, ("loss", "acc"), strict=True):
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
    for ax, index in zip(axes.flat, wrong.tolist(), strict=False):  # the grid may have spare cells
        ax.imshow(images[index].numpy(), cmap="gray_r")
        ax.set_title(f"{labels[index].item()}→{predicted[index].item()}", fontsize=9, color="darkred")
    fig.suptitle(f"Misclassified test digits, true→predicted ({len(wrong)} shown of "
                 f"{int((labels != predicted).sum())})", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


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
    _save(fig, path)


def _error(acc: float) -> float:
    return 100 * (1 - acc)


def study_panels(curves: dict[str, list[list[dict]]], path: str | Path):
    """One small panel per cell (in the given order): train, valid and test error in % per epoch,
    each seed a thin line, on one shared log scale so every panel reads against the others."""
    cols = min(4, len(curves))
    rows = -(-len(curves) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.5 * rows + 0.8), sharey=True,
                             squeeze=False)
    for ax, (name, runs) in zip(axes.flat, curves.items(), strict=False):
        for history in runs:
            epochs = [int(h["epoch"]) for h in history]
            for split, colour in SPLIT_COLOURS.items():
                ax.plot(epochs, [_error(h[f"{split}_acc"]) for h in history], color=colour,
                        linewidth=0.9, alpha=0.8, marker="." if len(epochs) < 8 else None)
        ax.set_title(f"{name} ({len(runs)} seed{'s' if len(runs) > 1 else ''})", fontsize=9)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.grid(alpha=0.3, which="both")
        ax.xaxis.get_major_locator().set_params(integer=True)
    for ax in axes.flat[len(curves):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], color=c, label=s) for s, c in SPLIT_COLOURS.items()]
    fig.legend(handles=handles, loc="lower right", ncols=3, fontsize=8)
    fig.suptitle("Error per epoch, every seed (test is monitoring only)", x=0.02, ha="left",
                 fontsize=11)
    fig.supxlabel("epoch", fontsize=9)
    fig.supylabel("error, % (log scale)", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return fig


def study_errors(cells: dict[str, dict[str, list[float]]], path: str | Path):
    """Cells compared where their differences show: per metric (a panel), each seed's error in %
    (dots) and the mean with its 95% t interval (bar; none for one seed), on a log axis, the best
    cell on top. `cells`: name -> metric label -> the accuracies of its seeds."""
    from mnist_dvc import study

    metrics = list(next(iter(cells.values())))
    first = metrics[0]
    order = sorted(cells, key=lambda c: -study.interval(cells[c][first]).mean)[::-1]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 0.32 * len(cells) + 1.6),
                             sharey=True, squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for y, name in enumerate(order):
            accs = cells[name][metric]
            iv = study.interval(accs)
            ax.plot([_error(a) for a in accs], [y] * len(accs), "o", color="grey", markersize=3,
                    alpha=0.7)
            if iv.n > 1:  # the interval of the accuracy, as error: its ends swap
                ax.plot([_error(iv.high), _error(iv.low)], [y, y], color="black", linewidth=1.5)
            ax.plot([_error(iv.mean)], [y], "|", color="black", markersize=12, markeredgewidth=2)
        ax.set_xscale("log")
        ax.margins(x=0.15)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.set_xlabel(f"{metric}: error, % (log scale)", fontsize=9)
        ax.grid(alpha=0.3, which="both", axis="x")
    axes[0][0].set_yticks(range(len(order)), order, fontsize=9)
    fig.suptitle("Cells by test error: seeds (dots), mean and 95% interval (bar)", x=0.02,
                 ha="left", fontsize=11)
    fig.tight_layout()
    _save(fig, path)
    return fig
