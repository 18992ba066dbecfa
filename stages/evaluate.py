"""Stage evaluate: test accuracy (argmax), loss, per-class precision/recall/F1, confusion data."""

from mnist_dvc import paths, reports
from mnist_dvc.cli import run_stage
from mnist_dvc.digits import load_digits
from mnist_dvc.device import pick_device, resolve_precision
from mnist_dvc.inference import evaluate
from mnist_dvc.model import load_model
from mnist_dvc.params import load_params


def main() -> None:
    params = load_params()
    test = load_digits(paths.prepared("test"))
    device = pick_device()
    precision = resolve_precision(params.train.precision, device, warn=False)
    model = load_model(paths.MODEL, device)
    loss, accuracy, predicted = evaluate(model, test, precision)
    classes = reports.per_class(reports.confusion_matrix(test.labels, predicted))
    reports.write_json(paths.TEST_METRICS, {"test_acc": accuracy, "test_loss": loss,
                                            **reports.macro(classes)})
    reports.write_csv(paths.CLASSES, classes)
    reports.write_csv(paths.PREDICTIONS, [{"actual": a, "predicted": p} for a, p in
                                          zip(test.labels.tolist(), predicted.tolist())])
    print(f"evaluate: test accuracy {accuracy:.4f}, loss {loss:.4f} on {len(test)} images "
          f"({precision.dtype})")


if __name__ == "__main__":
    run_stage(main)
