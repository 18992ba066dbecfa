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


# What only mnist_dvc/device.py may do: ask torch about CUDA or native bf16, enter torch.autocast,
# make a Precision, cast a model or tensor to a low precision. Tests may name FP32 (setup's own
# answer for fp32); the code goes through device.setup.
PRECISION_HOME = ROOT / "mnist_dvc" / "device.py"
PRECISION_TESTS = ROOT / "tests" / "test_device.py"  # tests the rule itself
BY_HAND = {"autocast": "torch.autocast", "is_available": "torch.cuda.is_available",
           "is_bf16_supported": "torch.cuda.is_bf16_supported",
           "_is_mkldnn_bf16_supported": "oneDNN's bf16 check", "half": ".half()",
           "bfloat16": ".bfloat16()"}


def precision_by_hand(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Attribute) and node.attr == "autocast" and isinstance(node.value, ast.Name) \
                and node.value.id == "torch":
            found.append(f"{where} torch.autocast")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name == "Precision":
                found.append(f"{where} Precision(...)")
            elif isinstance(func, ast.Attribute) and name in BY_HAND and name != "autocast":
                found.append(f"{where} {BY_HAND[name]}")
        elif isinstance(node, ast.Name | ast.alias) and path.parent.name != "tests" \
                and (getattr(node, "id", None) or getattr(node, "name", None)) == "FP32":
            found.append(f"{where} FP32")
    return found


def test_precision_is_set_up_only_in_device_py():
    """Bugs caught: a stage, benchmark or command picking its device or precision by hand
    (pick_device plus a hard-coded Precision, its own torch.autocast, a model cast with .half())
    instead of device.setup / device.autocast / device.fp32_evaluation, so `auto` or the
    fp32-evaluation rule silently does not hold there."""
    code = sorted(p for folder in ("mnist_dvc", "stages", "bench", "commands", "tests")
                  for p in (ROOT / folder).rglob("*.py") if p not in (PRECISION_HOME, PRECISION_TESTS))
    assert code
    assert [hit for path in code for hit in precision_by_hand(path)] == []
    assert precision_by_hand(PRECISION_HOME)  # the scan sees what device.py itself does
