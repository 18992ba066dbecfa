"""How every stage script starts and fails: one line on stderr, a non-zero exit, no traceback."""

import os
import sys

import torch

from mnist_dvc.errors import MnistError

THREADS_ENV = "MNIST_THREADS"


def _set_threads() -> None:
    value = os.environ.get(THREADS_ENV)
    if not value:
        return
    if not value.isdigit() or int(value) < 1:
        raise MnistError(f"{THREADS_ENV}={value!r} is not a positive whole number: set it to the "
                         "torch threads per process (e.g. 1 per queue worker) or unset it")
    torch.set_num_threads(int(value))


def run_stage(main) -> None:
    # Under DVC, stdout is a pipe or a log file: flush every line so progress shows as it happens.
    sys.stdout.reconfigure(line_buffering=True)
    try:
        _set_threads()
        main()
    except MnistError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: stopped cleanly; finished epochs are kept in the checkpoint, so "
              "`dvc repro` resumes", file=sys.stderr)
        sys.exit(130)
