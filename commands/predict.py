"""Read the digits in your own image files with the trained model (a user command).

    mnist-dvc predict PATH [PATH ...]     # files (PNG, JPEG, BMP) or folders of them
    mnist-dvc predict digits/ --top 3     # the three likeliest digits per image
    mnist-dvc predict digits/ --json      # one JSON object per line

Prints which probabilities it gives, then one line per image: `PATH: DIGIT (PROBABILITY)`, and
`doubtful: ...` after it where the image seems to hold two digits or none. The probabilities are
calibrated: the softmax of the logits times the hand-in's factor (the model's own softmax, trained
with label smoothing, says about 0.92 where it is right 99% of the time); --raw gives the model's
own. A file that cannot be read gets one line on stderr and the others are still answered; the
exit status is then 1 (2 if nothing could start).
"""

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from mnist_dvc import paths
from mnist_dvc.calibrated import hand_in_factor
from mnist_dvc.classify import classify
from mnist_dvc.cli import run_command
from mnist_dvc.device import pick_device
from mnist_dvc.images import collect
from mnist_dvc.model import load_model

# What Ctrl-C leaves behind, said when it happens.
INTERRUPTED = ("the answers printed above stand, the other images were not "
               "read; nothing was written; run it again on those")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders of them")
    parser.add_argument("--top", type=int, default=1, metavar="K",
                        help="also show the next likeliest digits, K in all (1-10, default 1)")
    parser.add_argument("--json", action="store_true",
                        help="JSON Lines: path, digit, probability, top, doubt, calibration")
    parser.add_argument("--raw", action="store_true",
                        help="the model's own softmax instead of the calibrated probabilities")
    parser.add_argument("--model", type=Path, metavar="FILE",
                        help=f"weights (default: the project's {paths.MODEL})")
    args = parser.parse_args()
    if not 1 <= args.top <= 10:
        parser.error(f"--top {args.top}: choose 1 to 10")

    root = paths.project_root()
    model_path, missing = paths.model_choice(args.model, root)
    model = load_model(model_path, pick_device(), missing)
    factor, source = (1.0, "--raw") if args.raw else hand_in_factor(model, model_path, root)
    files, failed = collect(args.paths)
    if not args.json:
        print("predict: the model's own softmax (--raw: label-smoothed, under-confident)" if args.raw
              else f"predict: calibrated probabilities: softmax of the logits x{factor:g}, the hand-in's "
                   f"factor ({source})")
    for line in failed:
        print(f"error: {line}", file=sys.stderr)
    for answer in classify(model, files, top=args.top, factor=factor):
        if answer.error:
            failed.append(answer.error)
            tqdm.write(f"error: {answer.error}", file=sys.stderr)
        elif args.json:
            tqdm.write(json.dumps({
                "path": str(answer.path), "digit": answer.digit, "probability": answer.probability,
                "top": [{"digit": d, "probability": p} for d, p in answer.top],
                "doubt": answer.doubt, "calibration": factor}), file=sys.stdout)
        else:
            shown = ", ".join(f"{d} ({p:.4f})" for d, p in answer.top)
            doubt = f" doubtful: {answer.doubt}" if answer.doubt else ""
            tqdm.write(f"{answer.path}: {shown}{doubt}", file=sys.stdout)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    sys.argv[0] = "python -m commands.predict"  # what --help shows; `mnist-dvc predict` sets its own
    run_command(main, INTERRUPTED)
