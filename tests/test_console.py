"""`mnist-dvc`, the console script pip installs from pyproject.toml (make's set-up installs the
project editable): its subcommands run from any folder and each --help names how it was run."""

import subprocess
import sys
from pathlib import Path

import pytest
from in_process import run_main, run_module
from repo_helpers import mark_project

from commands import cli
from mnist_dvc import paths

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "mnist-dvc"


def run(args, cwd):
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_each_subcommand_help_names_the_real_invocation_from_any_folder(name, tmp_path):
    """In a folder outside the clone, through the console script's main (tests/in_process.py;
    the script itself runs below, once). Catches help that says `usage: grade.py`, a command no
    one can type."""
    done = run_main(lambda: cli.main([name, "--help"]), ["mnist-dvc"], cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith(f"usage: mnist-dvc {name} "), done


@pytest.mark.parametrize("name", ["grade", "handin", "predict", "compare", "study"])
def test_module_help_names_python_m(name):
    """`python -m commands.X --help` in the clone (tests/in_process.py) shows that command, not
    `X.py`."""
    done = run_module(f"commands.{name}", "--help", cwd=ROOT)
    assert done.returncode == 0 and done.stdout.startswith(f"usage: python -m commands.{name} "), done


def test_the_installed_script_runs_a_command_from_any_folder(tmp_path):
    """The script pip installed, outside the clone. Catches the project not installed into the
    venv (no script, or ModuleNotFoundError: mnist_dvc)."""
    done = run([SCRIPT, "grade", "--help"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: mnist-dvc grade "), done.stdout[:200]


def test_listing_and_an_unknown_command(tmp_path):
    """`mnist-dvc` alone lists every command (exit 2: nothing was run); a typo is one line naming
    the choices. Catches a traceback (KeyError, ModuleNotFoundError) for a mistyped command."""
    listing = run([SCRIPT], tmp_path)
    assert listing.returncode == 2 and all(f"  {name} " in listing.stdout for name in cli.COMMANDS)
    typo = run([SCRIPT, "grde", "x.pth"], tmp_path)
    assert typo.returncode == 2 and typo.stdout == ""
    assert typo.stderr == ("error: mnist-dvc: unknown command 'grde': choose one of grade, handin, "
                           "predict, compare, study, serve (mnist-dvc --help)\n")


def test_project_root_is_the_nearest_project_else_the_clone(tmp_path):
    """In a project's root: `.` (what DVC's stages use); below it: that project; anywhere else: the
    clone the code runs from. Catches a root taken from the current folder (a student's folder
    had no model), and one that ignores the project the user stands in (a copy of the clone)."""
    project = mark_project(tmp_path / "copy")
    (project / "deep" / "er").mkdir(parents=True)
    assert paths.project_root(project) == Path(".")
    assert paths.project_root(project / "deep" / "er") == project.resolve()
    (tmp_path / "outside").mkdir()
    assert paths.project_root(tmp_path / "outside") == paths.CODE_ROOT == ROOT
