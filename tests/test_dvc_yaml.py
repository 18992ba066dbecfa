"""dvc.yaml tells the truth: each stage's deps are exactly the project code its script runs.

The bug this catches: a stage imports a module that is not among its deps, someone edits that
module, and `dvc repro` says "up to date" over stale outputs (or a stage lists code it does not
run, and reruns for nothing: editing the split code re-downloaded MNIST).
"""

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def project_imports(path: Path) -> set[str]:
    """The mnist_dvc modules a file imports (as repo-relative paths), however it spells the import."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "mnist_dvc":
            found |= {f"mnist_dvc/{alias.name}.py" for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mnist_dvc."):
            found.add(node.module.replace(".", "/") + ".py")
        elif isinstance(node, ast.Import):
            found |= {a.name.replace(".", "/") + ".py" for a in node.names
                      if a.name.startswith("mnist_dvc.")}
    return found


def code_closure(script: str) -> set[str]:
    seen, todo = {script}, [script]
    while todo:
        for module in project_imports(ROOT / todo.pop()):
            assert (ROOT / module).is_file(), f"{module} is imported but does not exist"
            if module not in seen:
                seen.add(module)
                todo.append(module)
    return seen


def code_deps(stage: dict) -> set[str]:
    return {d for d in stage["deps"] if d.endswith(".py")}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_are_exactly_the_code_it_imports(name):
    stage = STAGES[name]
    module = stage["cmd"].removeprefix("python -m ").split()[0]
    script = module.replace(".", "/") + ".py"
    assert code_deps(stage) == code_closure(script)


def test_package_markers_hold_no_code():
    # __init__.py files run on every import but are not deps: they must stay empty of code.
    for marker in (ROOT / "mnist_dvc/__init__.py", ROOT / "stages/__init__.py",
                   ROOT / "commands/__init__.py"):
        body = ast.parse(marker.read_text()).body
        assert all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body), marker


def test_closure_follows_imports_through_other_modules(tmp_path, monkeypatch):
    # The checker itself must see an indirect import (stage → a → b), or it proves nothing.
    (tmp_path / "stages").mkdir()
    (tmp_path / "mnist_dvc").mkdir()
    (tmp_path / "stages/s.py").write_text("from mnist_dvc import a\n")
    (tmp_path / "mnist_dvc/a.py").write_text("import mnist_dvc.b\n")
    (tmp_path / "mnist_dvc/b.py").write_text("from mnist_dvc.c import x\n")
    (tmp_path / "mnist_dvc/c.py").write_text("x = 1\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    assert code_closure("stages/s.py") == {"stages/s.py", "mnist_dvc/a.py", "mnist_dvc/b.py",
                                           "mnist_dvc/c.py"}
