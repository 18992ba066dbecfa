"""How every stage and user command starts and fails: one line on stderr, a non-zero exit, no
traceback; Ctrl-C says what the interrupted script leaves behind."""

import os
import sys

from mnist_dvc.errors import MnistError

THREADS_ENV = "MNIST_THREADS"


def _set_threads() -> None:
    value = os.environ.get(THREADS_ENV)
    if not value:
        return
    if not value.isdigit() or int(value) < 1:
        raise MnistError(f"{THREADS_ENV}={value!r} is not a positive whole number: set it to the "
                         "torch threads per process (e.g. 1 per queue worker) or unset it")
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(int(value))
    else:  # a light stage (fetch, report): torch, if ever imported, reads this; importing it costs 1.5 s
        os.environ["OMP_NUM_THREADS"] = value


# The train stage checkpoints every epoch; the other stages replace their outputs whole or not at all.
STAGE_INTERRUPTED = ("stopped cleanly; finished epochs are kept in the checkpoint and unfinished "
                     "outputs keep their previous version, so `dvc repro` resumes")


def run_command(main, interrupted: str) -> None:
    """Run a stage's or a command's `main`: a MnistError becomes `error: ...` and exit 2, Ctrl-C
    becomes `interrupted: <interrupted>` (what the script leaves behind) and exit 130."""
    # Under DVC, stdout is a pipe or a log file: flush every line so progress shows as it happens.
    sys.stdout.reconfigure(line_buffering=True)
    try:
        _set_threads()
        main()
    except MnistError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"interrupted: {interrupted}", file=sys.stderr)
        sys.exit(130)


def run_stage(main) -> None:
    """A DVC stage's `main` (stages/): an interrupted stage is resumed or rerun by `dvc repro`."""
    run_command(main, STAGE_INTERRUPTED)
