"""Read the digits in your own image files with the trained model (a user command).

    python -m commands.predict PATH [PATH ...]     # files (PNG, JPEG, BMP) or folders of them
    python -m commands.predict digits/ --top 3     # the three likeliest digits per image
    python -m commands.predict digits/ --json      # one JSON object per line

Prints one line per image: `PATH: DIGIT (PROBABILITY)`. A file that cannot be read gets one line on
stderr and the others are still answered; the exit status is then 1 (2 if nothing could start).
"""

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from mnist_dvc import paths
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
    parser.add_argument("--json", action="store_true", help="JSON Lines: path, digit, probability, top")
    parser.add_argument("--model", type=Path, default=paths.MODEL, help=f"weights (default {paths.MODEL})")
    args = parser.parse_args()
    if not 1 <= args.top <= 10:
        parser.error(f"--top {args.top}: choose 1 to 10")

    model = load_model(args.model, pick_device())
    files, failed = collect(args.paths)
    for line in failed:
        print(f"error: {line}", file=sys.stderr)
    for answer in classify(model, files, top=args.top):
        if answer.error:
            failed.append(answer.error)
            tqdm.write(f"error: {answer.error}", file=sys.stderr)
        elif args.json:
            tqdm.write(json.dumps({
                "path": str(answer.path), "digit": answer.digit, "probability": answer.probability,
                "top": [{"digit": d, "probability": p} for d, p in answer.top]}), file=sys.stdout)
        else:
            shown = ", ".join(f"{d} ({p:.4f})" for d, p in answer.top)
            tqdm.write(f"{answer.path}: {shown}", file=sys.stdout)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    run_command(main, INTERRUPTED)
