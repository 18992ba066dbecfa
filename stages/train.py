"""Stage train: fit MyConvNet, save the best-on-valid weights, the per-epoch history and metrics."""

from mnist_dvc import paths, reports
from mnist_dvc.atomic import torch_save
from mnist_dvc.checkpoint import run_fingerprint
from mnist_dvc.cli import run_stage
from mnist_dvc.data import load_digits
from mnist_dvc.device import machine_record, pick_device, resolve_precision
from mnist_dvc.params import load_params
from mnist_dvc.training import fit


def main() -> None:
    params = load_params()
    splits = ("train", "valid", "test")
    train, valid, test = (load_digits(paths.prepared(s)) for s in splits)
    device = pick_device()
    precision = resolve_precision(params.train.precision, device)
    print(f"train: {len(train)} images, {params.optimizer} + {params.scheduler}, "
          f"{params.train.epochs} epochs at most, on {device} in {precision.dtype} ({precision.reason})")
    fingerprint = run_fingerprint(params, [paths.prepared(s) for s in splits], device)
    state = fit(params, train, valid, test, device, precision, checkpoint=paths.CHECKPOINT,
                fingerprint=fingerprint)

    torch_save(state.best_state, paths.MODEL)
    reports.write_csv(paths.HISTORY, state.history)
    reports.write_json(paths.TRAIN_METRICS, {
        "best_valid_acc": state.best_valid_acc, "best_valid_loss": state.best_valid_loss,
        "best_epoch": state.best_epoch, "epochs_run": state.epoch})
    # Wall time of the epoch loop (per-epoch evaluation included) and the machine it ran on:
    # the only outputs that depend on the machine.
    reports.write_json(paths.TIMING, {"train_seconds": state.seconds,
                                      "seconds_per_epoch": state.seconds / len(state.history),
                                      **machine_record(device, precision)})
    paths.CHECKPOINT.unlink(missing_ok=True)
    print(f"train: best valid accuracy {state.best_valid_acc:.4f} at epoch {state.best_epoch} "
          f"of {state.epoch}, {state.seconds:.0f} s")


if __name__ == "__main__":
    run_stage(main)
