"""Train a documented preset on the full set and report test accuracy of the best-on-valid model
and the training time (no DVC needed, nothing written).

    python -m bench.preset_accuracy AUGMENTED [-S train.epochs=20 ...] [--json ...]
"""

import time

import yaml

from bench import common, presets
from mnist_dvc.model import MyConvNet
from mnist_dvc.training import fit, pick_device, predict


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0])
    parser.add_argument("preset", choices=["FAST", "AUGMENTED"])
    parser.add_argument("-S", dest="overrides", action="append", default=[],
                        help="extra override key=value")
    args = parser.parse_args()
    overrides = dict(getattr(presets, args.preset))
    for item in args.overrides:
        key, value = item.split("=", 1)
        overrides[key] = yaml.safe_load(value)  # as `dvc exp run -S` reads it: 20, 0.1, true
    params = common.with_overrides(common.project_params(), overrides)
    train, valid, test = common.load_splits(params)
    device = pick_device()
    started = time.perf_counter()
    result = fit(params, train, valid, test, device, progress=False)
    seconds = time.perf_counter() - started
    model = MyConvNet().to(device)
    model.load_state_dict(result.best_state)
    test_loss, test_acc, _ = predict(model, test)
    common.report(f"Preset {args.preset} on the full set", [
        ("overrides", presets.as_exp_run(overrides)),
        ("test accuracy (best-on-valid model)", f"{test_acc:.4f}"),
        ("best epoch / epochs run", f"{result.best_epoch} / {result.epochs_run}"),
        ("training seconds (evaluation included)", f"{seconds:.0f}"),
    ], {"preset": args.preset, "overrides": overrides, "test_acc": test_acc, "test_loss": test_loss,
        "best_epoch": result.best_epoch, "epochs_run": result.epochs_run, "seconds": seconds,
        "device": str(device)}, args.json)


if __name__ == "__main__":
    main()
