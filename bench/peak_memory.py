"""Peak resident memory of the train stage on the full training set (one epoch of the project's
params, checkpointing included), measured on a child process.

    python -m bench.peak_memory [--epochs 1] [--json ...]
"""

import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import common


def child(epochs: int) -> None:
    import torch

    from mnist_dvc.device import setup
    from mnist_dvc.training import Checkpointing, Run, Splits, fit

    params = common.project_params({"train.epochs": epochs})
    train, valid, test = common.load_splits(params)
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(*setup(params.train.precision, warn=False), progress=False)
        state = fit(params, Splits(train, valid, test), run, Checkpointing(Path(tmp) / "train.pt", "bench"))
        torch.save(state.best_state, Path(tmp) / "model.pt")


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], repeats=False)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.epochs)
    subprocess.run([sys.executable, "-m", "bench.peak_memory", "--child", "--epochs",
                    str(args.epochs)], check=True)
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    common.report("Peak RSS of training on the full set", [
        ("epochs", str(args.epochs)), ("peak RSS", f"{peak_mib:.0f} MiB"),
    ], {"epochs": args.epochs, "peak_rss_mib": peak_mib}, args.json, common.project_params())


if __name__ == "__main__":
    main()
