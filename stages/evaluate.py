"""Stage evaluate: test accuracy (argmax), loss, per-class precision/recall/F1, confusion data."""

from mnist_dvc import paths, reports
from mnist_dvc.cli import run_stage
from mnist_dvc.data import load_digits
from mnist_dvc.model import load_model
from mnist_dvc.params import load_params
from mnist_dvc.training import pick_device, predict


def main() -> None:
    load_params()
    test = load_digits(paths.prepared("test"))
    model = load_model(paths.MODEL, pick_device())
    loss, accuracy, predicted = predict(model, test)
    classes = reports.per_class(reports.confusion_matrix(test.labels, predicted))
    reports.write_json(paths.TEST_METRICS, {"test_acc": accuracy, "test_loss": loss,
                                            **reports.macro(classes)})
    reports.write_csv(paths.CLASSES, classes)
    reports.write_csv(paths.PREDICTIONS, [{"actual": a, "predicted": p} for a, p in
                                          zip(test.labels.tolist(), predicted.tolist())])
    print(f"evaluate: test accuracy {accuracy:.4f}, loss {loss:.4f} on {len(test)} images")


if __name__ == "__main__":
    run_stage(main)
