"""`mnist-dvc COMMAND ...`: the user commands as one console script, run from any folder.

    mnist-dvc grade hw7_21000000_zhangsan.pth      # any hw7 file, graded the course's way
    mnist-dvc handin 21000000 zhangsan             # writes hw7_21000000_zhangsan.pth here
    mnist-dvc predict my_digit.png digits/         # your own digit images
    mnist-dvc compare                              # your experiments, as cells
    mnist-dvc study status                         # the study (study.yaml): done, missing
    mnist-dvc serve                                # a page to draw a digit on

`pip install -e .` (make's set-up) puts it in .venv/bin. The model and data are the project's:
the nearest folder at or above the current one holding dvc.yaml and params.yaml, else the clone
mnist-dvc is installed from; the files you name are read and written where you are. compare and
study work in the project's folder (they read its experiments and write its reports there).
"""

import importlib
import os
import sys

from mnist_dvc import paths
from mnist_dvc.cli import run_command

PROG = "mnist-dvc"
# name -> what it does, in `mnist-dvc --help`
COMMANDS = {
    "grade": "grade hw7 files the course's way (its class, its sampling loop)",
    "handin": "write the hw7 hand-in from the trained model",
    "predict": "read the digits in your own image files",
    "compare": "compare your experiments as cells (runs in the project's folder)",
    "study": "run the study (study.yaml) to the end: status, run, report, pin",
    "serve": "a page to draw a digit on, read by the model as you draw",
}
IN_PROJECT = {"compare", "study"}  # commands whose paths are the project's, not the current folder's


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"usage: {PROG} COMMAND [ARGS ...]   ({PROG} COMMAND --help for each)", "", "commands:"]
    lines += [f"  {name:{width}}  {text}" for name, text in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        sys.exit(0 if args else 2)
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"error: {PROG}: unknown command {name!r}: choose one of {', '.join(COMMANDS)} "
              f"({PROG} --help)", file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(f"commands.{name}")
    if name in IN_PROJECT:
        os.chdir(paths.project_root())
    # argparse names the program after argv[0]: each --help then shows the command as typed.
    sys.argv = [f"{PROG} {name}", *rest]
    run_command(module.main, module.INTERRUPTED)
