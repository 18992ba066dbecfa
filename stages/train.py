"""Stage train: fit MyConvNet, save the best-on-valid weights, the per-epoch history and metrics.

With train.processes > 1 it relaunches itself under torchrun (see mnist_dvc/distributed.py); every
process trains, rank 0 alone writes.
"""

from mnist_dvc import distributed, metrics_files, paths, provenance, results
from mnist_dvc.atomic import restored_on_failure, torch_save
from mnist_dvc.checkpoint import run_fingerprint
from mnist_dvc.cli import run_stage
from mnist_dvc.device import machine_record, setup
from mnist_dvc.digits import load_digits
from mnist_dvc.params import load_params
from mnist_dvc.training import Checkpointing, FitState, Run, Splits, fit


def main() -> None:
    params = load_params()
    processes = params.train.processes
    if processes > 1 and not distributed.under_torchrun():
        distributed.launch(processes, "stages.train")  # does not return
    with distributed.session(processes) as group:
        train_on(params, group)


def write_live_metrics(state: FitState) -> None:
    """history.csv and train.json as they stand after the last finished epoch, rewritten
    atomically every epoch: `dvc plots show` and `dvc exp show` follow a running experiment."""
    metrics_files.write_records(paths.HISTORY, state.history)
    metrics_files.write_record(paths.TRAIN_METRICS, results.TrainMetrics(
        best_valid_acc=state.best_valid_acc, best_valid_loss=state.best_valid_loss,
        best_epoch=state.best_epoch, epochs_run=state.epoch))


def train_on(params, group: distributed.Group) -> None:
    main = group.is_main
    splits = ("train", "valid", "test")
    train, valid, test = (load_digits(paths.prepared(s)) for s in splits)
    device, precision = setup(params.train.precision, group.device, warn=main)
    if main:
        where = f"{device}" if group.size == 1 else f"{group.size} processes ({device.type})"
        print(f"train: {len(train)} images, {params.optimizer} + {params.scheduler}, "
              f"{params.train.epochs} epochs at most, on {where} in {precision.dtype} "
              f"({precision.reason})")
    fingerprint = run_fingerprint(params, [paths.prepared(s) for s in splits], device)
    live = (paths.HISTORY, paths.TRAIN_METRICS) if main else ()
    with restored_on_failure(*live):
        state = fit(params, Splits(train, valid, test), Run(device, precision, group),
                    Checkpointing(paths.CHECKPOINT, fingerprint),
                    on_epoch=write_live_metrics if main else None)
    if main:
        torch_save(state.best_state, paths.MODEL)
        write_live_metrics(state)
        # Wall time of the epoch loop (per-epoch evaluation included), the machine it ran on (the
        # only outputs that depend on it), and when and from which commit.
        metrics_files.write_record(paths.TIMING, results.Timing(
            train_seconds=state.seconds, seconds_per_epoch=state.seconds / len(state.history),
            processes=group.size, **machine_record(device, precision), **provenance.record()))
        paths.CHECKPOINT.unlink(missing_ok=True)
        print(f"train: best valid accuracy {state.best_valid_acc:.4f} at epoch {state.best_epoch} "
              f"of {state.epoch}, {state.seconds:.0f} s")
    group.barrier()  # the others end only once rank 0 has written everything


if __name__ == "__main__":
    run_stage(main)
