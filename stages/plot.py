"""Stage plot: PNG curves, confusion heatmap and misclassified digits into figures/."""

import torch

from mnist_dvc import figures, metrics_files, paths
from mnist_dvc.cli import run_stage
from mnist_dvc.digits import load_digits
from mnist_dvc.params import load_params


def main() -> None:
    load_params()
    history = metrics_files.read_csv(paths.HISTORY)
    best_epoch = metrics_files.read_json(paths.TRAIN_METRICS)["best_epoch"]
    rows = metrics_files.read_csv(paths.PREDICTIONS)
    actual = torch.tensor([r["actual"] for r in rows])
    predicted = torch.tensor([r["predicted"] for r in rows])
    test = load_digits(paths.prepared("test"))
    figures.curves(history, best_epoch, paths.CURVES)
    figures.confusion(metrics_files.confusion_matrix(actual, predicted), paths.CONFUSION)
    figures.misclassified(test.images, actual, predicted, paths.MISCLASSIFIED)
    print(f"plot: figures written to {paths.FIGURES}/")


if __name__ == "__main__":
    run_stage(main)
