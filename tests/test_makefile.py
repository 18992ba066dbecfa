"""The Makefile's test targets, as make would run them (`make -n`: printed, not run)."""

import re
import shlex
import subprocess
import sys
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
    assert " -n 1 --dist loadfile " in pytest_line("test-fast", "TEST_JOBS=1")


def pytest_options(target: str, jobs: str = "1") -> list[str]:
    """The pytest options `make TARGET` passes, with TEST_JOBS=jobs (0: no worker process)."""
    line = pytest_line(target, f"TEST_JOBS={jobs}")
    return shlex.split(re.search(r" -m pytest (.*?) \|\|", line).group(1))


def test_fast_tier_leaves_out_e2e_and_slow_tests_and_the_suite_runs_all(tmp_path):
    """Bugs caught: test-fast running the slow tests (the edit loop back over 90 s), or leaving
    out more than the two marks (a plain test never run before CI); `make test` leaving any out."""
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    e2e: repo\n    slow: slow\n")
    (tmp_path / "test_tiers.py").write_text(
        "import pytest\n\ndef test_plain():\n    pass\n\n@pytest.mark.e2e\ndef test_repo():\n"
        "    pass\n\n@pytest.mark.slow\ndef test_statistics():\n    pass\n")
    ran = {}
    for target in ("test-fast", "test"):
        done = subprocess.run([sys.executable, "-m", "pytest", *pytest_options(target, "0"), "-vv", "-p",
                               "no:cacheprovider"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        ran[target] = sorted(re.findall(r"test_tiers\.py::(test_\w+) PASSED", done.stdout))
    assert ran == {"test-fast": ["test_plain"], "test": ["test_plain", "test_repo", "test_statistics"]}


def test_files_are_handed_out_in_the_order_conftest_sets(tmp_path):
    """With the Makefile's own pytest options, one worker runs the files in the order a conftest
    sorts them (tests/conftest.py: longest first, tests/file_order.py). Bug caught: xdist's default
    (--loadscope-reorder) hands out the files with most tests first, so the long end-to-end files,
    each one or a few tests, went last and ran alone while the other worker sat idle (147 s of a
    401 s suite, docs/testing.md round 6)."""
    options = pytest_options("test")
    (tmp_path / "conftest.py").write_text(
        "def pytest_collection_modifyitems(items):\n"
        "    items.sort(key=lambda item: item.get_closest_marker('e2e') is None)\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    e2e: end to end\n")
    (tmp_path / "test_many.py").write_text("".join(f"def test_{i}():\n    pass\n" for i in range(5)))
    (tmp_path / "test_one_long.py").write_text(
        "import pytest\n\n@pytest.mark.e2e\ndef test_long():\n    pass\n")
    done = subprocess.run([sys.executable, "-m", "pytest", *options, "-vv", "-p",
                           "no:cacheprovider"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    ran = re.findall(r"PASSED (test_\w+)\.py", done.stdout)
    assert ran == ["test_one_long"] + ["test_many"] * 5, done.stdout
