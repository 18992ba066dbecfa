"""`python -m MODULE ARGS` run in the test's own process: the module's `__main__` block through
runpy, as `python -m` runs it (the same cli.run_command or run_stage, exit code, stdout and
stderr), without a second interpreter importing torch again (1.5 s a run). Each file that uses it
keeps one case of each kind in a real process of its own: the contract end to end."""

import runpy
import subprocess
import sys
import warnings
from pathlib import Path


def run_module(module: str, *args, cwd: Path, monkeypatch, capsys,
               env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess:
    """Run `module` in `cwd` with `args`; `env` sets variables (None unsets one) for the run only."""
    with monkeypatch.context() as patch:
        patch.chdir(cwd)
        patch.setattr(sys, "argv", [module, *map(str, args)])
        patch.delenv("MNIST_THREADS", raising=False)  # the test process keeps its threads
        for name, value in (env or {}).items():
            if value is None:
                patch.delenv(name, raising=False)
            else:
                patch.setenv(name, value)
        capsys.readouterr()
        with warnings.catch_warnings():  # the module is imported already (by the tests): rerun
            warnings.filterwarnings("ignore", "'.*' found in sys.modules", RuntimeWarning)
            try:
                runpy.run_module(module, run_name="__main__", alter_sys=True)
                code = 0
            except SystemExit as exit:
                code = exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 1
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess([module, *map(str, args)], code, out, err)
