"""Time to 99% test accuracy from a cold process (interpreter start, imports and data loading
included), with the FAST preset; one fresh process per seed (the seed moves the split, the
initialisation and the shuffling, so every seed must reach the target), median over them.

    python -m bench.time_to_accuracy [--seeds 0 1 2] [--target 0.99] [-S key=value ...] [--json ...]
"""

import argparse
import contextlib
import json
import subprocess
import sys
import time

from bench import common, presets


class Reached(Exception):
    pass


def child(target: float, started: float, overrides: dict) -> None:
    from mnist_dvc.device import setup
    from mnist_dvc.training import Run, Splits, fit

    params = common.project_params({**presets.FAST, **overrides})
    train, valid, test = common.load_splits(params)
    result = {"reached": False}

    def check(state):
        record = state.history[-1]
        result.update(epoch=record["epoch"], test_acc=record["test_acc"],
                      seconds=time.time() - started)
        if record["test_acc"] >= target:
            result["reached"] = True
            raise Reached

    with contextlib.suppress(Reached):
        run = Run(*setup(params.train.precision, warn=False), progress=False)
        fit(params, Splits(train, valid, test), run, on_epoch=check)
    print("RESULT " + json.dumps(result))


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], repeats=False)
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("-S", dest="overrides", action="append", default=[],
                        help="params override on top of FAST, key=value")
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    overrides = common.parse_overrides(args.overrides)
    if args.child is not None:
        return child(args.target, args.child, overrides)
    runs = []
    for seed in args.seeds:
        started = time.time()
        out = subprocess.run([sys.executable, "-m", "bench.time_to_accuracy", "--target",
                              str(args.target), "--child", str(started), "-S", f"seed={seed}", *sum(
                                  (["-S", o] for o in args.overrides), [])],
                             capture_output=True, text=True, check=True).stdout
        runs.append({"seed": seed, **json.loads(out.split("RESULT ", 1)[1])})
    seconds = [r["seconds"] for r in runs]
    preset = {**presets.FAST, **overrides}
    common.report(f"Time to {args.target:.1%} test accuracy, cold process (FAST preset)", [
        ("preset", presets.as_exp_run(preset)),
        ("median seconds", f"{common.median(seconds):.1f}"),
        ("runs", ", ".join(f"seed {r['seed']}: {r['seconds']:.1f} s (epoch {r['epoch']}, "
                           f"test {r['test_acc']:.4f}{'' if r['reached'] else ', NOT reached'})"
                           for r in runs)),
    ], {"target": args.target, "preset": preset, "runs": runs,
        "median_seconds": common.median(seconds), "all_reached": all(r["reached"] for r in runs)},
        args.json, common.project_params(preset))


if __name__ == "__main__":
    main()
