"""Grade hw7 files the course's way (a user command): any file, from this project or elsewhere.

    mnist-dvc grade hw7_21000000_zhangsan.pth            # 3 sampled runs (seeds 0, 1, 2)
    mnist-dvc grade hw7_*.pth models/model.pt --runs 5   # (or python -m commands.grade in the clone)

Each file is loaded into the course's MyConvNet (softmax in forward) and scored on the MNIST test
set (the project's data/prepared/test.pt after `dvc repro`, else the raw test files from
$MNIST_LOCAL_DIR, the project's data/raw or its download): argmax accuracy and the expected graded
score ± its standard deviation first (a second's work), then N runs of the course's own loop (one
image at a time, a label sampled from the softmax, a progress bar on the terminal), each seeded
with torch.manual_seed(seed). Every file is checked before any is graded; nothing is written.
"""

import argparse
import sys
from pathlib import Path

from mnist_dvc import course, paths
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
    test, source = test_set(paths.project_root())
    print(f"grade: {len(test)} test images from {source}, graded by the course's MyConvNet and loop")
    for path, file in checked.items():
        if file.ddp_prefix:
            print(f"{path}: note: its keys start with `module.` (a DistributedDataParallel model): "
                  "graded without it, but the course's strict load_state_dict refuses it; save "
                  "model.module.state_dict() instead")
        s = course.score(file.net, test, [])  # a second: printed before the minutes of sampling
        print(f"{path}: argmax {s.argmax:.4f}, expected graded {s.graded:.4f} ± {s.graded_sd:.4f}")
        if args.runs:
            runs = [f"{course.course_grade(file.net, test.images, test.labels, seed, f'seed {seed}'):.4f}"
                    f" (seed {seed})" for seed in range(args.runs)]
            print(f"{path}: sampled {', '.join(runs)} (the course's loop, one image at a time)")


if __name__ == "__main__":
    sys.argv[0] = "python -m commands.grade"  # what --help shows; `mnist-dvc grade` sets its own
    run_command(main, INTERRUPTED)
