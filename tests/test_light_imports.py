"""The light stages start without importing torch (about 2 s of a cold start, more on a busy
machine): fetch copies and checks files, report writes a page from small JSON/CSV files; so do
compare and study, which draw from runs.csv and the histories.

The bug this catches: a module on their import path (cli, atomic, metrics_files, download, ...)
gains a top-level `import torch` again, and every `dvc repro` of a report pays for it.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_dvc import cli

ROOT = Path(__file__).resolve().parents[1]

LIGHT = ["stages.fetch", "stages.report", "mnist_dvc.cli", "mnist_dvc.atomic",
         "mnist_dvc.metrics_files", "mnist_dvc.download", "mnist_dvc.run_report",
         "mnist_dvc.params", "commands.compare", "commands.study", "mnist_dvc.figures"]


def _fresh(code: str, **env: str) -> str:
    """What `python -c code` prints in a fresh interpreter (this test process imported torch long
    ago), with `env` added to the environment."""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("module", LIGHT)
def test_light_module_does_not_import_torch(module):
    imported = _fresh(f"import sys, {module}; "
                      "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch')[:3])")
    assert imported == "[]", f"{module} imports torch: {imported}"


def test_threads_setting_starts_no_torch_in_a_light_stage_yet_reaches_a_later_torch():
    """Bug caught: MNIST_THREADS (set by the tests under xdist and by each queue worker) made
    run_command import torch to set its threads, so fetch and report paid 1.5 s every run; or the
    count, not applied at once, never reached a torch imported later."""
    assert _fresh("import sys\nfrom mnist_dvc import cli\ncli.run_command(lambda: None, '')\n"
                  "print('torch' in sys.modules)\nimport torch\nprint(torch.get_num_threads())",
                  MNIST_THREADS="1", OMP_NUM_THREADS="2") == "False\n1"  # not the shell's 2
    # (1, not 7: torch caps a count read from OMP_NUM_THREADS at the cores)


def test_threads_setting_applies_to_a_torch_already_imported():
    """Bug caught: a heavy stage (torch imported at its top) left with torch's default threads."""
    assert _fresh("import torch\nfrom mnist_dvc import cli\ncli.run_command(lambda: None, '')\n"
                  "print(torch.get_num_threads())", MNIST_THREADS="7",
                  OMP_NUM_THREADS="2") == "7"  # neither the shell's 2 nor the cores


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_bad_threads_setting_is_one_line_and_exit_2(value, monkeypatch, capsys):
    monkeypatch.setenv("MNIST_THREADS", value)
    ran = []
    with pytest.raises(SystemExit) as exit:
        cli.run_command(lambda: ran.append(1), "")
    assert exit.value.code == 2 and not ran
    assert capsys.readouterr().err == (f"error: MNIST_THREADS={value!r} is not a positive whole "
                                       "number: set it to the torch threads per process (e.g. 1 "
                                       "per queue worker) or unset it\n")
