"""The README's result line is the committed baseline's: every figure in it comes from
metrics/test.json and metrics/timing.json, so a retrain that forgets the README fails here."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def result_paragraph() -> str:
    text = (ROOT / "README.md").read_text()
    found = re.search(r"^\*\*Result\*\*.*?(?=\n\n)", text, flags=re.S | re.M)
    assert found, "README.md has no paragraph starting with **Result**"
    return " ".join(found.group(0).split())


def test_readme_result_line_matches_the_committed_metrics():
    """Catches: a retrained baseline whose README still quotes the previous run's accuracy,
    graded scores, training time, date, CPU or precision."""
    line = result_paragraph()
    test = json.loads((ROOT / "metrics/test.json").read_text())
    timing = json.loads((ROOT / "metrics/timing.json").read_text())
    expected = {
        "argmax test accuracy": f"**{test['test_acc']:.4f}**",
        "graded, raw model": f"**{test['test_acc_graded']:.4f}**",
        "graded, hand-in": f"**{test['handin_test_acc_graded']:.4f}**",
        "training seconds": f"{round(timing['train_seconds'])} s of training",
        "date": timing["date_utc"][:10],
        "CPU model": timing["hardware"].split(",")[0],
        "precision": f"in {timing['precision']}",
    }
    for what, text in expected.items():
        assert text in line, f"README's result line lacks the {what} {text!r}: {line}"


def test_committed_baseline_records_a_clean_commit():
    """Catches: a baseline committed from a run of uncommitted code (its commit ends in -dirty)
    or one whose provenance was never recorded."""
    timing = json.loads((ROOT / "metrics/timing.json").read_text())
    commit = timing.get("git_commit", "")
    assert re.fullmatch(r"[0-9a-f]{7,40}", commit), f"timing.json records git_commit {commit!r}"
