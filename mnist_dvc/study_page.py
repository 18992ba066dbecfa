"""The study's page (reports/comparison.md) and figures, from the rows of reports/runs.csv that
count for the plan (study.yaml): cells by the plan's names, each claim as paired differences."""

import math
from pathlib import Path

import matplotlib.ticker

from mnist_dvc import figures, study, study_plan
from mnist_dvc.atomic import write_text
from mnist_dvc.compare import cell_value, mean_ci, points
from mnist_dvc.results import RUN_METRICS

CURVES = "study_curves.png"
ERRORS = "study_errors.png"
# What the page summarises per cell, and the names the figures give them.
GRADED = "test_acc_graded"
HANDIN = "handin_test_acc_graded"


def _changes(cell: study_plan.Cell) -> str:
    return ", ".join(f"{k} {v}" for k, v in cell.overrides.items()) or "(the defaults)"


def by_cell(plan: study_plan.Plan, runs: list[dict], defaults: dict) -> dict[str, list[dict]]:
    """Cell name -> its counted runs, seed order; cells with none are left out."""
    counted = study_plan.counted(plan, runs, defaults)
    cells = {c.name: [counted[(c.name, s)] for s in plan.seeds if (c.name, s) in counted]
             for c in plan.cells}
    return {name: rs for name, rs in cells.items() if rs}


def markdown(plan: study_plan.Plan, cells: dict[str, list[dict]], n_rows: int) -> str:
    """The page: `cells` as by_cell gives them, out of `n_rows` rows in runs.csv."""
    shown = [r for rs in cells.values() for r in rs]
    total = len(plan.cells) * len(plan.seeds)
    machines = sorted({f"{r.get('hardware')} ({r.get('precision')})" for r in shown})
    lines = ["# The study", "",
             f"{len(shown)} runs in {len(cells)} cells, of the {total} runs ({len(plan.cells)} "
             f"cells × seeds {', '.join(map(str, plan.seeds))}) that `study.yaml` plans; "
             f"`python -m commands.study status` lists the missing. Every run shown was trained "
             f"by one code (hash `{plan.code}`, commit {plan.commit}); rows of other code in "
             f"runs.csv ({n_rows - len(shown)}) are not shown. Intervals: 95% t intervals of "
             "the mean over the seeds.", "",
             "Ran on: " + ("; ".join(machines) or "nothing yet") + ". Accuracy does not depend "
             "on the machine's load; time does, so no time is compared here "
             "([docs/performance.md](../docs/performance.md) has the timings).", "",
             f"![Error per epoch per cell]({CURVES})", "", f"![Cells by test error]({ERRORS})", "",
             "## Cells, best mean test accuracy first", "",
             "| cell | changes from params.yaml | seeds | test accuracy (argmax) | graded the "
             "course's way (expected) | hand-in, graded | best valid accuracy | best epoch |",
             "|---|---|---|---|---|---|---|---|"]
    stats = {name: {m: study.interval([r[m] for r in rs]) for m in
                    ("test_acc", GRADED, HANDIN, "best_valid_acc", "best_epoch")}
             for name, rs in cells.items()}
    for name in sorted(cells, key=lambda n: -stats[n]["test_acc"].mean):
        s = stats[name]
        lines.append(f"| {name} | {_changes(plan.cell(name))} | "
                     f"{', '.join(str(r['seed']) for r in cells[name])} | {mean_ci(s['test_acc'])} | "
                     f"{mean_ci(s[GRADED])} | {s[HANDIN].mean:.4f} | "
                     f"{s['best_valid_acc'].mean:.4f} | {s['best_epoch'].mean:.1f} |")
    lines += ["", "## The starter code's claims", "",
              "Each comparison: the first cell minus the second, seed by seed, in accuracy points "
              "(+0.01 = one more test image right in 10,000). **real**: the 95% interval excludes "
              "0; not shown: it does not, at this number of seeds (which is not \"no difference\").",
              "", "| claim | comparison | epochs | pairs | Δ test accuracy | | Δ graded (expected) | |",
              "|---|---|---|---|---|---|---|---|"]
    for claim in plan.claims:
        for a, b in claim.pairs:
            if a not in cells or b not in cells:
                lines.append(f"| {claim.claim} | {a} − {b} | | 0 | not run yet | | | |")
                continue
            acc = study.paired_difference(cells[b], cells[a], "test_acc")
            graded = study.paired_difference(cells[b], cells[a], GRADED)
            epochs = cells[a][0]["train.epochs"]
            lines.append(f"| {claim.claim} | {a} − {b} | {epochs} | {acc.n if acc else 0} | "
                         f"{' | '.join(points(acc))} | {' | '.join(points(graded))} |")
    lines += ["", "## Runs", "", "| experiment | rev | cell | seed | " + " | ".join(RUN_METRICS) +
              " | hardware | trained (UTC) |", "|---|---|---|---|" + "---|" * (len(RUN_METRICS) + 2)]
    for name, rs in cells.items():
        for r in rs:
            lines.append(f"| {r['experiment']} | {r['rev']} | {name} | {r['seed']} | " +
                         " | ".join(cell_value(r.get(k)) for k in RUN_METRICS) +
                         f" | {r.get('hardware')} | {r.get('date_utc') or 'not recorded'} |")
    return "\n".join(lines) + "\n"


def write(plan: study_plan.Plan, runs: list[dict], histories: list[dict], defaults: dict,
          out: Path) -> None:
    """reports/comparison.md and the study's figures, from the counted rows only."""
    cells = by_cell(plan, runs, defaults)
    write_text(out / "comparison.md", markdown(plan, cells, len(runs)))
    if not cells:
        return
    curves: dict[str, list[dict]] = {}
    for h in histories:
        curves.setdefault(h["rev"], []).append(h)
    study_panels({name: [curves.get(r["rev"], []) for r in rs] for name, rs in cells.items()},
                 out / CURVES)
    study_errors({name: {"test, argmax": [r["test_acc"] for r in rs],
                         "hand-in, graded (expected)": [r[HANDIN] for r in rs]}
                  for name, rs in cells.items()}, out / ERRORS)


def _error(acc: float) -> float:
    return 100 * (1 - acc)


def study_panels(curves: dict[str, list[list[dict]]], path: str | Path):
    """One small panel per cell (in the given order): train, valid and test error in % per epoch,
    each seed a thin line, on one shared log scale so every panel reads against the others."""
    cols = min(4, len(curves))
    rows = -(-len(curves) // cols)
    fig, axes = figures.plt.subplots(rows, cols, figsize=(3.3 * cols, 2.5 * rows + 0.8), sharey=True,
                             squeeze=False)
    for ax, (name, runs) in zip(axes.flat, curves.items(), strict=False):
        for history in runs:
            epochs = [int(h["epoch"]) for h in history]
            for split, colour in figures.SPLIT_COLOURS.items():
                ax.plot(epochs, [_error(h[f"{split}_acc"]) for h in history], color=colour,
                        linewidth=0.9, alpha=0.8, marker="." if len(epochs) < 8 else None)
        ax.set_title(f"{name} ({len(runs)} seed{'s' if len(runs) > 1 else ''})", fontsize=9)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.grid(alpha=0.3, which="both")
        ax.xaxis.get_major_locator().set_params(integer=True)
    for ax in axes.flat[len(curves):]:
        ax.axis("off")
    handles = [figures.plt.Line2D([], [], color=c, label=s) for s, c in figures.SPLIT_COLOURS.items()]
    fig.legend(handles=handles, loc="lower right", ncols=3, fontsize=8)
    fig.suptitle("Error per epoch, every seed (test is monitoring only)", x=0.02, ha="left",
                 fontsize=11)
    fig.supxlabel("epoch", fontsize=9)
    fig.supylabel("error, % (log scale)", fontsize=9)
    fig.tight_layout()
    figures.save(fig, path)
    return fig


def _two_and_five(value: float, _position) -> str:
    """A log axis's minor numbers: only 2 and 5 of each decade (0.2, 0.5, 2, 5, 20, ...); all
    eight of them print over each other."""
    mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9)
    return f"{value:g}" if round(mantissa) in (2, 5) else ""


def study_errors(cells: dict[str, dict[str, list[float]]], path: str | Path):
    """Cells compared where their differences show: per metric (a panel), each seed's error in %
    (dots) and the mean with its 95% t interval (bar; none for one seed), on a log axis, the best
    cell on top. `cells`: name -> metric label -> the accuracies of its seeds."""
    metrics = list(next(iter(cells.values())))
    first = metrics[0]
    order = sorted(cells, key=lambda c: -study.interval(cells[c][first]).mean)[::-1]
    fig, axes = figures.plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 0.32 * len(cells) + 1.6),
                             sharey=True, squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for y, name in enumerate(order):
            accs = cells[name][metric]
            iv = study.interval(accs)
            ax.plot([_error(a) for a in accs], [y] * len(accs), "o", color="grey", markersize=3,
                    alpha=0.7)
            if iv.n > 1:  # the interval of the accuracy, as error: its ends swap
                ax.plot([_error(iv.high), _error(iv.low)], [y, y], color="black", linewidth=1.5)
            ax.plot([_error(iv.mean)], [y], "|", color="black", markersize=12, markeredgewidth=2)
        ax.set_xscale("log")
        ax.margins(x=0.15)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(_two_and_five))
        ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.set_xlabel(f"{metric}: error, % (log scale)", fontsize=9)
        ax.grid(alpha=0.3, which="both", axis="x")
    axes[0][0].set_yticks(range(len(order)), order, fontsize=9)
    fig.suptitle("Cells by test error: seeds (dots), mean and 95% interval (bar)", x=0.02,
                 ha="left", fontsize=11)
    fig.tight_layout()
    figures.save(fig, path)
    return fig
