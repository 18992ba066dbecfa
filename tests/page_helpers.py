"""A project with a small trained model, and `mnist-dvc serve` running on it, for the page's tests."""

import os
import re
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from small_model import SmallModel, small_project

SERVE = [str(Path(sys.executable).parent / "mnist-dvc"), "serve"]  # the console script


def page_project(root: Path, small_model: SmallModel) -> Path:
    """A project holding the session's small model (one epoch, label smoothing 0.1, so the
    hand-in's factor is above 1) and its 1,000 valid digits to choose that factor on."""
    return small_project(root, small_model, valid=small_model.valid)


def ctrl_c_reaches_it() -> None:
    """In the server's process, before it starts: SIGINT back to its default. A test run started
    in the background of a script (`make test &`) ignores SIGINT, its children inherit that, and
    Python then installs no KeyboardInterrupt handler: the Ctrl-C these tests send went unheard
    and each server was killed after 20 s (seen 2026-12-06)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def serving(root: Path, *args: str):
    """`mnist-dvc serve --port 0 ARGS` in `root`: yields (process, base URL, the lines it printed
    before serving); stops it with Ctrl-C (SIGINT) afterwards."""
    env = {**os.environ, "MNIST_THREADS": "1"}
    process = subprocess.Popen([*SERVE, "--port", "0", *args], cwd=root, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=ctrl_c_reaches_it)
    try:
        lines = [process.stdout.readline() for _ in range(2)]
        found = re.search(r"open (http://[\d.]+:\d+)/", lines[-1])
        assert found, f"serve printed no address: {lines} {process.stderr.read() if process.poll() else ''}"
        yield process, found.group(1), lines
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.stdout.close()
        process.stderr.close()
