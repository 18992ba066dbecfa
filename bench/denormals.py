"""Training speed late in a run, with and without flushing denormal floats to zero.

Late in a run some weights and optimizer moments drift towards zero (units that stopped firing,
under weight decay; momenta of gradients that became exactly 0). Below 1.2e-38 a float is
denormal, and an x86 CPU takes a slow path for every operation on one. This loads a train
checkpoint (checkpoints/train.pt, which a stopped `dvc repro` leaves behind), counts its denormal
values, and times training steps from it with the flag off and on, each in a fresh process (the
flag must be set before torch starts its threads, which inherit it), interleaved, medians.

    python -m bench.denormals CHECKPOINT [--images 3840] [--repeats 3] [--json FILE] [-S key=value]
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from bench import common
from mnist_dvc import torch_files
from mnist_dvc.device import setup
from mnist_dvc.inference import evaluate
from mnist_dvc.training import Run, build, restore, train_epoch

FIX = "point to a checkpoints/train.pt that a stopped `dvc repro` left"


def load_checkpoint(path: Path) -> dict:
    return torch_files.load(path, what="a training checkpoint", missing=FIX, fix=FIX)


def denormal_counts(blob: dict) -> dict:
    """Per part of the checkpoint (the model, the optimizer's state): values, and how many are
    denormal (non-zero, smaller in magnitude than the smallest normal float32)."""
    tiny = torch.finfo(torch.float32).tiny
    parts = {"model": list(blob["model"].values()),
             "optimizer": [t for state in blob["optimizer"]["state"].values() for t in state.values()]}
    counts = {}
    for part, tensors in parts.items():
        floats = [t for t in tensors if torch.is_tensor(t) and t.dtype == torch.float32]
        counts[part] = {"values": sum(t.numel() for t in floats),
                        "denormal": sum(int(((t != 0) & (t.abs() < tiny)).sum()) for t in floats)}
    return counts


def images_per_second(checkpoint: Path, overrides: dict, flush: bool, images: int) -> dict:
    """Train `images` images from the checkpoint's state, then evaluate as many (fp32, as every
    epoch does): images/s of each. Called first thing in a fresh process."""
    if flush:
        torch.set_flush_denormal(True)  # x86 FTZ and DAZ; threads started from now inherit them
    params = common.project_params(overrides)
    device, precision = setup(params.train.precision, warn=False)
    run = Run(device, precision, progress=False)
    train, _, _ = common.load_splits(params)
    trainer = build(params, len(train), run)  # the schedule's steps per epoch, as in the run
    restore(trainer, load_checkpoint(checkpoint))
    digits = train.take(torch.arange(images))
    train_epoch(trainer, digits.take(torch.arange(2 * params.train.batch_size)), params, run)
    started = time.perf_counter()
    train_epoch(trainer, digits, params, run)
    trained = time.perf_counter()
    evaluate(trainer.net, digits)
    return {"train": images / (trained - started), "evaluate": images / (time.perf_counter() - trained)}


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="a train checkpoint (checkpoints/train.pt)")
    parser.add_argument("--images", type=int, default=3840, help="images per timed run")
    parser.add_argument("-S", dest="overrides", action="append", default=[],
                        help="params override key=value: the run's own params, as dvc exp run -S")
    # How the parent starts each timed run, in a process of its own.
    parser.add_argument("--child", choices=("on", "off"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    overrides = common.parse_overrides(args.overrides)
    if args.child:
        print(json.dumps(images_per_second(args.checkpoint, overrides, args.child == "on", args.images)))
        return
    counts = denormal_counts(load_checkpoint(args.checkpoint))
    runs = {"off": [], "on": []}
    for _ in range(args.repeats):
        for mode in runs:
            child = subprocess.run([sys.executable, "-m", "bench.denormals", str(args.checkpoint),
                                    "--child", mode, "--images", str(args.images),
                                    *(f"-S{item}" for item in args.overrides)],
                                   check=True, capture_output=True, text=True, cwd=common.ROOT)
            runs[mode].append(json.loads(child.stdout.splitlines()[-1]))
    rows, results = [], {}
    for phase in ("train", "evaluate"):
        off, on = ([r[phase] for r in runs[mode]] for mode in ("off", "on"))
        ratio = common.median(on) / common.median(off)
        rows += [(f"{phase}: denormals kept (a CPU's default)",
                  f"{common.median(off):8.0f}   runs {[round(v) for v in off]}"),
                 (f"{phase}: denormals flushed to zero",
                  f"{common.median(on):8.0f}   runs {[round(v) for v in on]}"),
                 (f"{phase}: ratio", f"{ratio:8.2f}x")]
        results[phase] = {"kept_images_per_second": off, "flushed_images_per_second": on,
                          "ratio_of_medians": ratio}
    common.report("Late in a run: denormals kept vs flushed (images/s, median)", [
        *((f"denormal values in the {part}", f"{c['denormal']:,} of {c['values']:,} "
           f"({c['denormal'] / c['values']:.2%})") for part, c in counts.items()), *rows,
    ], {"checkpoint": str(args.checkpoint), "denormal_counts": counts, **results,
        "images_per_run": args.images, "overrides": overrides}, args.json,
        common.project_params(overrides))


if __name__ == "__main__":
    main()
