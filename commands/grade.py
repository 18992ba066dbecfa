"""Grade hw7 files the course's way (a user command): any file, from this project or elsewhere.

    python -m commands.grade hw7_21000000_zhangsan.pth            # 3 sampled runs (seeds 0, 1, 2)
    python -m commands.grade hw7_*.pth models/model.pt --runs 5

Each file is loaded into the course's MyConvNet (softmax in forward) and scored on the MNIST test
set (data/prepared/test.pt after `dvc repro`, else the raw test files from $MNIST_LOCAL_DIR, data/raw
or the project's download): argmax accuracy, the expected graded score ± its standard deviation,
and N runs of the course's own loop (one image at a time, a label sampled from the softmax), each
seeded with torch.manual_seed(seed). Every file is checked before any is graded; nothing is written.
"""

import argparse
from pathlib import Path

from mnist_dvc import course
from mnist_dvc.cli import run_command
from mnist_dvc.errors import MnistError
from mnist_dvc.find_mnist import test_set

# What Ctrl-C leaves behind, said when it happens.
INTERRUPTED = "grading stopped; the scores printed above stand; nothing was written"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="hw7 .pth files")
    parser.add_argument("--runs", type=int, default=3, metavar="N",
                        help="sampled runs of the course's loop per file, seeds 0 to N-1 (default 3)")
    args = parser.parse_args()
    if args.runs < 0:
        raise MnistError(f"--runs {args.runs} is negative: pass 0 (expected score only) or more")
    checked = {path: course.load_checked(path) for path in args.files}  # every file, before any work
    test, source = test_set(Path("."))
    print(f"grade: {len(test)} test images from {source}, graded by the course's MyConvNet and loop")
    for path, file in checked.items():
        if file.ddp_prefix:
            print(f"{path}: note: its keys start with `module.` (a DistributedDataParallel model): "
                  "graded without it, but the course's strict load_state_dict refuses it; save "
                  "model.module.state_dict() instead")
        s = course.score(file.net, test, list(range(args.runs)))
        runs = ", ".join(f"{v:.4f} (seed {seed})" for seed, v in s.sampled.items())
        print(f"{path}: argmax {s.argmax:.4f}, expected graded {s.expected:.4f} ± {s.expected_sd:.4f}"
              + (f", sampled {runs}" if runs else ""))


if __name__ == "__main__":
    run_command(main, INTERRUPTED)
