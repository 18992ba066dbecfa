"""House rules that a reader cannot see broken from one file: checked over the whole source."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for folder in ("mnist_dvc", "stages", "bench", "tests")
                 for p in (ROOT / folder).rglob("*.py"))


def calls_to(tree: ast.AST, dotted: str):
    module, name = dotted.rsplit(".", 1)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == name and isinstance(node.func.value, ast.Name)
                and node.func.value.id == module):
            yield node


def test_every_torch_load_says_weights_only():
    """Bug caught: a `torch.load` relying on the default, which was False before torch 2.6 (any
    pickle runs code) and may differ again; every load states what it trusts."""
    assert SOURCES
    missing = [f"{path.relative_to(ROOT)}:{call.lineno}" for path in SOURCES
               for call in calls_to(ast.parse(path.read_text()), "torch.load")
               if not any(k.arg == "weights_only" for k in call.keywords)]
    assert missing == []


def test_project_code_loads_only_with_weights_only_true():
    """Bug caught: a `torch.load(..., weights_only=False)` in the code that reads users' and
    downloaded files (the commands included), which would run any pickled code in them. Only
    tests may load their own files with False."""
    code = sorted(p for folder in ("mnist_dvc", "stages", "bench", "commands")
                  for p in (ROOT / folder).rglob("*.py"))
    unsafe = [f"{path.relative_to(ROOT)}:{call.lineno}" for path in code
              for call in calls_to(ast.parse(path.read_text()), "torch.load")
              if not any(k.arg == "weights_only" and isinstance(k.value, ast.Constant)
                         and k.value.value is True for k in call.keywords)]
    assert code
    assert unsafe == []
