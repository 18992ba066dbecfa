"""A command line run in the test's own process, as its own process would run it (exit code,
stdout, stderr, a traceback and exit 1 for an uncaught exception), without a second interpreter
importing torch again (1.5 s a run). Each file that uses it keeps one case of each kind in a real
process of its own: the contract end to end."""

import io
import runpy
import subprocess
import sys
import traceback
import warnings
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest


def run_main(main: Callable[[], object], argv: list[str], *, cwd: Path,
             env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess:
    """`main()` with `argv` as sys.argv, in `cwd`; `env` sets variables (None unsets one) for the
    run only."""
    # Real text streams, not StringIO: run_command reconfigures stdout's buffering.
    out, err = (io.TextIOWrapper(io.BytesIO(), encoding="utf-8") for _ in range(2))
    with pytest.MonkeyPatch.context() as patch, redirect_stdout(out), redirect_stderr(err):
        patch.chdir(cwd)
        patch.setattr(sys, "argv", list(argv))
        patch.delenv("MNIST_THREADS", raising=False)  # the test process keeps its threads
        for name, value in (env or {}).items():
            if value is None:
                patch.delenv(name, raising=False)
            else:
                patch.setenv(name, value)
        try:
            main()
            code = 0
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 1
            if isinstance(exit.code, str):
                print(exit.code, file=sys.stderr)
        except Exception:
            traceback.print_exc()
            code = 1
    out, err = (stream.flush() or stream.buffer.getvalue().decode() for stream in (out, err))
    return subprocess.CompletedProcess(argv, code, out, err)


def run_module(module: str, *args, cwd: Path,
               env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess:
    """`python -m MODULE ARGS`: its `__main__` block through runpy, as `python -m` runs it."""
    def main():
        with warnings.catch_warnings():  # the module is imported already (by the tests): rerun
            warnings.filterwarnings("ignore", "'.*' found in sys.modules", RuntimeWarning)
            runpy.run_module(module, run_name="__main__", alter_sys=True)
    return run_main(main, [module, *map(str, args)], cwd=cwd, env=env)
