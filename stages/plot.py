"""Stage plot: PNG curves, confusion heatmap, misclassified digits and the reliability diagram
into figures/."""

import torch

from mnist_dvc import calibration, figures, metrics_files, paths, results
from mnist_dvc.cli import run_stage
from mnist_dvc.digits import load_digits
from mnist_dvc.params import load_params


def main() -> None:
    load_params()
    history = metrics_files.read_records(paths.HISTORY, results.Epoch)
    best_epoch = metrics_files.read_record(paths.TRAIN_METRICS, results.TrainMetrics).best_epoch
    rows = metrics_files.read_records(paths.PREDICTIONS, results.Prediction)
    actual = torch.tensor([r.actual for r in rows])
    predicted = torch.tensor([r.predicted for r in rows])
    test = load_digits(paths.prepared("test"))
    figures.curves(history, best_epoch, paths.CURVES)
    figures.confusion(metrics_files.confusion_matrix(actual, predicted), paths.CONFUSION)
    figures.misclassified(test.images, actual, predicted, paths.MISCLASSIFIED)
    scores = metrics_files.read_record(paths.TEST_METRICS, results.EvaluateMetrics)
    bins = metrics_files.read_csv(paths.CALIBRATION)
    raw = f"raw model (ECE {scores.test_ece:.4f})"
    handed_in = f"hand-in, last layer x{scores.handin_factor:g} (ECE {scores.handin_test_ece:.4f})"
    figures.reliability({raw: calibration.bins_from_rows(bins, "raw"),
                         handed_in: calibration.bins_from_rows(bins, "handin")}, paths.RELIABILITY)
    print(f"plot: figures written to {paths.FIGURES}/")


if __name__ == "__main__":
    run_stage(main)
