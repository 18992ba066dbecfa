"""The Makefile's test targets, as make would run them (`make -n`: printed, not run)."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pytest_line(*make_args: str) -> str:
    done = subprocess.run(["make", "-n", *make_args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stdout.splitlines() if " -m pytest " in line]
    return line


def test_tests_run_on_every_core_unless_told_otherwise():
    """Bugs caught: TEST_JOBS ignored (a developer cannot get one process for pdb), and the suite's
    files split across workers (module fixtures built twice) or run serially by default."""
    assert " -n auto --dist loadfile " in pytest_line("test")
    assert " -n 0 " in pytest_line("test", "TEST_JOBS=0")
    fast = pytest_line("test-fast", "TEST_JOBS=1")
    assert " -n 1 --dist loadfile " in fast and '-m "not e2e"' in fast
