"""The committed study page is what the committed rows give: reports/comparison.md can be rebuilt
byte for byte from reports/runs.csv and reports/histories.csv alone (no DVC experiments)."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_committed_study_page_rebuilds_from_the_committed_rows(tmp_path):
    """Catches: a page edited by hand, or rows committed without the page they give (the page
    regenerated from one set of runs, runs.csv from another), or a page whose text depends on
    something other than the rows (the date, the machine it is rebuilt on, DVC's experiments)."""
    rows = tmp_path / "rows"
    rows.mkdir()
    for name in ("runs.csv", "histories.csv"):
        shutil.copy(ROOT / "reports" / name, rows / name)
    done = subprocess.run([sys.executable, "-m", "commands.compare", "--from", str(rows / "runs.csv"),
                           "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    rebuilt = (tmp_path / "out" / "comparison.md").read_bytes()
    assert rebuilt == (ROOT / "reports" / "comparison.md").read_bytes(), (
        "reports/comparison.md differs from what reports/runs.csv gives: rerun "
        "python -m commands.compare --from reports/runs.csv and commit reports/")
