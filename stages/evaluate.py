"""Stage evaluate: test accuracy (argmax) and what the course's sampling grader would give, before
and after the hand-in's sharpening; calibration (NLL, ECE, reliability bins) of both; loss,
per-class precision/recall/F1, confusion data.

In fp32 whatever train.precision says (inference.py decides that for every evaluation): the course
runs the model in fp32, and the hand-in command must choose the same sharpening factor from the
same numbers.
"""

from mnist_dvc import calibration, handin, metrics_files, paths, results
from mnist_dvc.cli import run_stage
from mnist_dvc.device import pick_device
from mnist_dvc.digits import load_digits
from mnist_dvc.inference import logits_of, loss_and_accuracy
from mnist_dvc.model import load_model
from mnist_dvc.params import load_params


def main() -> None:
    load_params()
    valid, test = load_digits(paths.prepared("valid")), load_digits(paths.prepared("test"))
    model = load_model(paths.MODEL, pick_device())
    valid_logits, test_logits = logits_of(model, valid), logits_of(model, test)
    loss, accuracy = loss_and_accuracy(test_logits, test.labels)
    graded = handin.grade((valid_logits, valid.labels), (test_logits, test.labels))
    handin_logits = test_logits * graded["factor"]  # what the hand-in file's last layer gives
    raw_bins = calibration.reliability_bins(test_logits, test.labels)
    handin_bins = calibration.reliability_bins(handin_logits, test.labels)
    predicted = test_logits.argmax(dim=1)
    classes = metrics_files.per_class(metrics_files.confusion_matrix(test.labels, predicted))
    metrics_files.write_record(paths.TEST_METRICS, results.EvaluateMetrics(
        test_acc=accuracy,
        test_acc_graded=graded["test"]["graded"],
        handin_test_acc_graded=graded["test"]["handin_graded"],
        handin_factor=graded["factor"],
        test_loss=loss,
        test_ece=calibration.ece(raw_bins),
        handin_test_loss=loss_and_accuracy(handin_logits, test.labels)[0],
        handin_test_ece=calibration.ece(handin_bins),
        **metrics_files.macro(classes)))
    metrics_files.write_csv(paths.CALIBRATION, calibration.csv_rows(raw_bins, handin_bins))
    metrics_files.write_records(paths.CLASSES, classes)
    metrics_files.write_records(paths.PREDICTIONS, [
        results.Prediction(a, p) for a, p in zip(test.labels.tolist(), predicted.tolist(), strict=True)])
    print(f"evaluate: test accuracy {accuracy:.4f} (argmax), {graded['test']['graded']:.4f} graded "
          f"the course's way (its expected score), {graded['test']['handin_graded']:.4f} for the "
          f"hand-in (last layer x{graded['factor']:g}); loss {loss:.4f} on {len(test)} images (fp32)")


if __name__ == "__main__":
    run_stage(main)
