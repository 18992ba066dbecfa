"""The committed study page is what the committed rows give, and its figures show every cell
whole: reports/comparison.md rebuilds byte for byte from reports/runs.csv and histories.csv."""

import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
from markdown_tables import table_cells

from mnist_dvc import figures, study_page, study_plan
from mnist_dvc.params import as_dict, flatten, load_params

ROOT = Path(__file__).resolve().parents[1]


def test_committed_study_page_rebuilds_from_the_committed_rows(tmp_path):
    """Catches: a page edited by hand, or rows committed without the page they give (the page
    regenerated from one set of runs, runs.csv from another), or a page whose text depends on
    something other than the rows and the plan (the date, the machine it is rebuilt on)."""
    for name in ("runs.csv", "histories.csv"):
        shutil.copy(ROOT / "reports" / name, tmp_path / name)
    done = subprocess.run([sys.executable, "-m", "commands.study", "report", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rebuilt = (tmp_path / "comparison.md").read_bytes()
    assert rebuilt == (ROOT / "reports" / "comparison.md").read_bytes(), (
        "reports/comparison.md differs from what reports/runs.csv gives: rerun "
        "python -m commands.study report and commit reports/")


def _history(errors: list[float]) -> list[dict]:
    return [{"epoch": e, **{f"{s}_acc": 1 - err / 100 for s in ("train", "valid", "test")}}
            for e, err in enumerate(errors, start=1)]


def test_every_cell_has_its_panel_and_no_label_is_cut(tmp_path, monkeypatch):
    """Catches: a cell dropped from the panels (more cells than the grid has axes, or the loop
    stopping early), cell names cut at the figure's left edge, a legend or title drawn past the
    canvas, the error axis's numbers printed over each other. Uses the plan's own names."""
    plan = study_plan.load_plan(ROOT / "study.yaml")
    names = [c.name for c in plan.cells]
    drawn = {}
    monkeypatch.setattr(figures, "save", lambda fig, path: drawn.__setitem__(Path(path).name, fig))
    study_page.study_panels({n: [_history([5, 1, 0.6])] * 2 for n in names}, tmp_path / "c.png")
    # Test errors from 0.3% to 33%, as the page's cells span them.
    spread = {n: 1 - 0.003 * 110 ** (i / (len(names) - 1)) for i, n in enumerate(names)}
    study_page.study_errors({n: {"test, argmax": [a, a - 0.0005, a + 0.0005],
                              "hand-in, graded": [a - 0.001, a, a + 0.001]} for n, a in spread.items()},
                         tmp_path / "e.png")
    panels = drawn["c.png"]
    titles = [ax.get_title().split(" (")[0] for ax in panels.axes if ax.get_title()]
    assert sorted(titles) == sorted(names)
    errors = drawn["e.png"]
    assert sorted(t.get_text() for t in errors.axes[0].get_yticklabels()) == sorted(names)
    for fig in (panels, errors):
        fig.canvas.draw()
        box = fig.get_tightbbox(fig.canvas.get_renderer())
        width, height = fig.get_size_inches()
        assert box.x0 >= -0.01 and box.y0 >= -0.01, "something is cut at the left or bottom edge"
        assert box.x1 <= width + 0.01 and box.y1 <= height + 0.01, "something is cut at the right or top"
    renderer = errors.canvas.get_renderer()
    for ax in errors.axes:
        low, high = ax.get_xlim()
        ticks = [*zip(ax.xaxis.get_majorticklocs(), ax.xaxis.get_majorticklabels(), strict=True),
                 *zip(ax.xaxis.get_minorticklocs(), ax.xaxis.get_minorticklabels(), strict=True)]
        boxes = sorted((label.get_window_extent(renderer) for x, label in ticks
                        if low <= x <= high and label.get_text()), key=lambda box: box.x0)
        for left, right in zip(boxes, boxes[1:], strict=False):
            assert left.x1 <= right.x0, "numbers on the error axis overlap"
    for fig in (panels, errors):
        plt.close(fig)


def test_the_page_shows_only_the_plan_rows_of_the_pinned_code():
    """Catches: rows of other training code (or outside the plan) counted in a cell, and the
    header counting rows it does not show."""
    plan = study_plan.Plan("good", "abc1234", (0, 1), (study_plan.Cell("base", {}, ""),),
                           (study_plan.Claim("x", ()),))
    defaults = as_dict(load_params(ROOT / "params.yaml"))
    row = {**flatten(defaults), "experiment": "e", "rev": "r", "seed": 0, "code": "good",
           "test_acc": 0.99, "test_acc_graded": 0.9, "handin_test_acc_graded": 0.99,
           "best_valid_acc": 0.99, "best_epoch": 4.0, "hardware": "CPU", "precision": "bf16"}
    other = {**row, "experiment": "old", "seed": 1, "code": "other", "test_acc": 0.5}
    page = study_page.markdown(plan, study_page.by_cell(plan, [row, other], defaults), 2)
    assert page.count("| e | r | base | 0 |") == 1 and "| old |" not in page
    assert "1 runs in 1 cells" in page and "rows of other code in runs.csv (1)" in page
    assert "0.9900 (1 seed)" in page


def test_the_verdicts_in_docs_quote_the_page_whole():
    """Catches: docs/study.md's verdicts left behind when the rows change (a number, a verdict or
    a pair count the committed page no longer says), a comparison of the page left out of the
    verdicts (only the ones that suit a story quoted), and a run count the page does not state."""
    page = (ROOT / "reports/comparison.md").read_text()
    docs = (ROOT / "docs/study.md").read_text()
    claims = table_cells(page, "## The starter code's claims")[1:]
    verdicts = table_cells(docs, "## Verdicts on the starter code's claims")[1:]
    assert claims, "reports/comparison.md has no claims table"
    assert sorted(row[:8] for row in verdicts) == sorted(claims), (
        "docs/study.md's verdict table differs from the claims table of reports/comparison.md: "
        "copy its rows")
    plan = study_plan.load_plan(ROOT / "study.yaml")
    assert {row[0] for row in verdicts} == {claim.claim for claim in plan.claims}
    counted = page.split(" runs in ", 1)[0].rsplit("\n", 1)[-1]
    assert f"{counted} of the {len(plan.cells) * len(plan.seeds)} runs" in docs
