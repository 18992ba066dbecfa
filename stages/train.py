"""Stage train: fit MyConvNet, save the best-on-valid weights, the per-epoch history and metrics."""

from mnist_dvc import paths, reports
from mnist_dvc.atomic import torch_save
from mnist_dvc.cli import run_stage
from mnist_dvc.data import load_digits
from mnist_dvc.params import load_params
from mnist_dvc.training import fit, pick_device, run_fingerprint


def main() -> None:
    params = load_params()
    splits = ("train", "valid", "test")
    train, valid, test = (load_digits(paths.prepared(s)) for s in splits)
    device = pick_device()
    print(f"train: {len(train)} images, {params.optimizer} + {params.scheduler}, "
          f"{params.train.epochs} epochs at most, on {device}")
    fingerprint = run_fingerprint(params, [paths.prepared(s) for s in splits], device)
    result = fit(params, train, valid, test, device, checkpoint=paths.CHECKPOINT,
                 fingerprint=fingerprint)

    torch_save(result.best_state, paths.MODEL)
    reports.write_csv(paths.HISTORY, result.history)
    reports.write_json(paths.TRAIN_METRICS, {
        "best_valid_acc": result.best_valid_acc, "best_valid_loss": result.best_valid_loss,
        "best_epoch": result.best_epoch, "epochs_run": result.epochs_run})
    # Wall time of the epoch loop (per-epoch evaluation included): the only non-deterministic output.
    reports.write_json(paths.TIMING, {"train_seconds": result.seconds,
                                      "seconds_per_epoch": result.seconds / len(result.history)})
    paths.CHECKPOINT.unlink(missing_ok=True)
    print(f"train: best valid accuracy {result.best_valid_acc:.4f} at epoch {result.best_epoch} "
          f"of {result.epochs_run}, {result.seconds:.0f} s")


if __name__ == "__main__":
    run_stage(main)
