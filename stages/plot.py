"""Stage plot: PNG curves, confusion heatmap and misclassified digits into figures/."""

import torch

from mnist_dvc import figures, paths, reports
from mnist_dvc.cli import run_stage
from mnist_dvc.digits import load_digits
from mnist_dvc.params import load_params


def main() -> None:
    load_params()
    history = reports.read_csv(paths.HISTORY)
    best_epoch = reports.read_json(paths.TRAIN_METRICS)["best_epoch"]
    rows = reports.read_csv(paths.PREDICTIONS)
    actual = torch.tensor([r["actual"] for r in rows])
    predicted = torch.tensor([r["predicted"] for r in rows])
    test = load_digits(paths.prepared("test"))
    figures.curves(history, best_epoch, paths.FIGURES / "curves.png")
    figures.confusion(reports.confusion_matrix(actual, predicted), paths.FIGURES / "confusion.png")
    figures.misclassified(test.images, actual, predicted, paths.FIGURES / "misclassified.png")
    print(f"plot: figures written to {paths.FIGURES}/")


if __name__ == "__main__":
    run_stage(main)
