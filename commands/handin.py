"""Write the hw7 hand-in from the trained model (a user command: it needs your id and name).

    mnist-dvc handin 21000000 zhangsan            # -> ./hw7_21000000_zhangsan.pth
    mnist-dvc handin 21000000 zhangsan --out ~/hw7

The file is a plain state_dict of the project's models/model.pt for the course's MyConvNet, its last layer
sharpened by a factor chosen on the valid set (see mnist_dvc/handin.py): the argmax of every image
stays, and the course's sampling grader scores close to the argmax accuracy. Prints argmax and
graded accuracy on valid and test before and after. The same model gives the same bytes.
"""

import argparse
import sys
from pathlib import Path

from mnist_dvc import handin, paths
from mnist_dvc.atomic import torch_save
from mnist_dvc.cli import run_command
from mnist_dvc.digits import load_digits
from mnist_dvc.inference import logits_of
from mnist_dvc.model import MyConvNet, load_model

# What Ctrl-C leaves behind, said when it happens.
INTERRUPTED = ("no hand-in file was written (it is written whole or not at "
               "all); run the command again")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("student_id", help="your student number, digits only")
    parser.add_argument("name", help="your name in pinyin, ASCII letters only (e.g. zhangsan)")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder to write to (default .)")
    parser.add_argument("--model", type=Path, metavar="FILE",
                        help=f"weights (default: the project's {paths.MODEL})")
    args = parser.parse_args()
    target = handin.output_path(args.out, args.student_id, args.name)  # bad input fails first

    root = paths.project_root()
    model_path, missing = paths.model_choice(args.model, root)
    model = load_model(model_path, "cpu", missing)  # on the CPU, in fp32: as the course runs it
    valid, test = load_digits(root / paths.prepared("valid")), load_digits(root / paths.prepared("test"))
    graded = handin.grade((logits_of(model, valid), valid.labels),
                          (logits_of(model, test), test.labels))
    state = handin.sharpened(model.state_dict(), graded["factor"])
    MyConvNet().load_state_dict(state)  # strict, exactly as the course loads it

    print(f"handin: last layer ({handin.LAST_LAYER}) sharpened x{graded['factor']:g}, chosen on "
          f"valid (the smallest factor within {handin.TOLERANCE} of argmax)")
    print(f"{'':6} {'argmax':>8} {'graded before':>20} {'graded after':>20}")
    for split in ("valid", "test"):
        g = graded[split]
        print(f"{split:6} {g['argmax']:8.4f} {g['graded']:12.4f} ± {g['graded_sd']:.4f} "
              f"{g['handin_graded']:12.4f} ± {g['handin_graded_sd']:.4f}")
    torch_save(state, target)
    print(f"handin: wrote {target} (graded = expected score of the course's sampling grader, "
          "± its standard deviation)")


if __name__ == "__main__":
    sys.argv[0] = "python -m commands.handin"  # what --help shows; `mnist-dvc handin` sets its own
    run_command(main, INTERRUPTED)
