"""Train a documented preset on the full set and report test accuracy of the best-on-valid model
and the training time (no DVC needed, nothing written).

    python -m bench.preset_accuracy DEFAULTS|FAST|AUGMENTED [-S train.epochs=20 ...] [--json ...]
"""

import time

from bench import common, presets
from mnist_dvc.device import setup
from mnist_dvc.inference import evaluate
from mnist_dvc.model import MyConvNet
from mnist_dvc.training import Run, Splits, fit


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], repeats=False)
    parser.add_argument("preset", choices=["DEFAULTS", "FAST", "AUGMENTED"])
    parser.add_argument("-S", dest="overrides", action="append", default=[],
                        help="extra override key=value")
    args = parser.parse_args()
    overrides = {**getattr(presets, args.preset), **common.parse_overrides(args.overrides)}
    params = common.project_params(overrides)
    train, valid, test = common.load_splits(params)
    device, precision = setup(params.train.precision, warn=False)
    started = time.perf_counter()
    run = Run(device, precision, progress=False)
    state = fit(params, Splits(train, valid, test), run)
    seconds = time.perf_counter() - started
    model = MyConvNet().to(device)
    model.load_state_dict(state.best_state)
    # As the evaluate stage computes it (fp32), so the figure is the pipeline's.
    test_loss, test_acc, _ = evaluate(model, test)
    common.report(f"Preset {args.preset} on the full set", [
        ("overrides", presets.as_exp_run(overrides)),
        ("test accuracy (best-on-valid model)", f"{test_acc:.4f}"),
        ("best epoch / epochs run", f"{state.best_epoch} / {state.epoch}"),
        ("training seconds (evaluation included)", f"{seconds:.0f}"),
    ], {"preset": args.preset, "overrides": overrides, "test_acc": test_acc, "test_loss": test_loss,
        "best_epoch": state.best_epoch, "epochs_run": state.epoch, "seconds": seconds,
        "device": str(device)}, args.json, params)


if __name__ == "__main__":
    main()
