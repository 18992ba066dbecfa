"""The light stages start without importing torch (about 2 s of a cold start, more on a busy
machine): fetch copies and checks files, report writes a page from small JSON/CSV files.

The bug this catches: a module on their import path (cli, atomic, metrics_files, download, ...)
gains a top-level `import torch` again, and every `dvc repro` of a report pays for it.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LIGHT = ["stages.fetch", "stages.report", "mnist_dvc.cli", "mnist_dvc.atomic",
         "mnist_dvc.metrics_files", "mnist_dvc.download", "mnist_dvc.run_report",
         "mnist_dvc.params"]


@pytest.mark.parametrize("module", LIGHT)
def test_light_module_does_not_import_torch(module):
    # A fresh interpreter: this test process has imported torch long ago.
    done = subprocess.run([sys.executable, "-c", f"import sys, {module}; "
                           "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch')[:3])"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"{module} imports torch: {done.stdout.strip()}"
