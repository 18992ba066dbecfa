"""The course's sampling grader, run the course's way (its class, one image at a time, a label
sampled from the softmax) on hand-in files, for several RNG seeds.

    python -m bench.course_grader hw7_21000000_zhangsan.pth models/model.pt [--seeds 0 1 2]

Uses data/prepared/test.pt (all 10,000 test images after `dvc repro`). Prints each file's argmax
accuracy, its expected graded score (mean true-class probability) and one sampled score per seed.
"""

import argparse
from pathlib import Path

import torch

from mnist_dvc import handin, paths
from mnist_dvc.digits import load_digits
from mnist_dvc.inference import accuracy
from tests.test_handin import CourseConvNet, course_grade


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args()
    test = load_digits(paths.prepared("test"))
    x = test.images.float().div(255).unsqueeze(1)
    for path in args.files:
        net = CourseConvNet()
        net.load_state_dict(torch.load(path, weights_only=True))  # torch >= 2.6: the default
        with torch.no_grad():
            logits = torch.log(net.eval()(x))  # the course's net returns probabilities
        argmax = accuracy(logits, test.labels)
        expected = handin.sampled_accuracy(logits, test.labels)
        sampled = [course_grade(path, test.images, test.labels, seed) for seed in args.seeds]
        print(f"{path}: argmax {argmax:.4f}, expected graded {expected:.4f}, sampled "
              + ", ".join(f"{s:.4f} (seed {seed})" for s, seed in zip(sampled, args.seeds, strict=True)))


if __name__ == "__main__":
    main()
