"""Compare your own experiments, grouped into cells (a user command: it spans experiments).

The project's study has its own runner and page (python -m commands.study, reports/); this
command compares whatever experiments you ran, into comparison/ by default:

    python -m commands.compare                 # every finished experiment in `dvc exp show`
    python -m commands.compare EXP [EXP ...]   # only these (names or revisions)
    python -m commands.compare --rev REV       # experiments based on commit REV (default HEAD)
    python -m commands.compare --from reports/runs.csv   # from the committed rows alone, no DVC

Groups runs into cells (the same params but the seed) and writes comparison/comparison.md: per
cell the mean, sd and 95% interval of test accuracy and of the course's graded accuracy, and
paired differences against the baseline cell (params.yaml as the --rev commit holds it).
Figures: each cell's per-epoch error curves, and the cells' test errors with their intervals.
Reading experiments also merges them into comparison/runs.csv and histories.csv (DVC's
experiment refs stay on the machine that ran them; commit these files to keep the rows).
"""

import argparse
import subprocess
import sys
from pathlib import Path

import dvc.api
import yaml

from mnist_dvc import compare, paths, provenance, study_page
from mnist_dvc.atomic import write_text
from mnist_dvc.cli import run_command
from mnist_dvc.params import as_dict, flatten, load_params

# What Ctrl-C leaves behind, said when it happens.
INTERRUPTED = ("each file in the output folder is its previous version or "
               "the new one, never half-written; run python -m commands.compare again to finish")


def from_experiments(args, defaults: dict) -> tuple[list[dict], list[dict]]:
    shown = dvc.api.exp_show(revs=args.rev)
    rows, note = compare.with_results(compare.pick_experiments(shown, args.experiments))
    if note:
        print(note)
    runs, histories = [], []
    for row in rows:
        if not row.get("Experiment"):  # a baseline commit, shown by branch name: pin its sha
            sha = subprocess.run(["git", "rev-parse", "--short=7", row["rev"]], check=True,
                                 capture_output=True, text=True).stdout.strip()
            row = compare.pin_commit(row, sha)
        run, history = compare.record_at(row["rev"], compare.label(row), defaults,
                                         lambda path, rev=row["rev"]: dvc.api.read(path, rev=rev))
        runs.append(run)
        histories += history
    return runs, histories


def baseline(rev: str) -> dict:
    """The baseline cell's params, flat: params.yaml as commit `rev` holds it (the workspace's may
    hold an experiment's -S changes), for every key this code knows (one the commit lacks keeps
    the workspace's value); outside git, the workspace's."""
    known = flatten(as_dict(load_params()))
    text = provenance.git_show(rev, f"./{paths.PARAMS}")
    at_rev = flatten(yaml.safe_load(text) or {}) if text else {}
    return {key: at_rev.get(key, value) for key, value in known.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="*", help="experiment names or revisions (default: all)")
    parser.add_argument("--rev", action="append", help="baseline commit(s) of the experiments "
                        "(default: HEAD)")
    parser.add_argument("--from", dest="runs_csv", type=Path, metavar="RUNS_CSV",
                        help="compare the rows of this file (and its histories.csv) instead")
    parser.add_argument("--out", type=Path, default=Path("comparison"), help="output folder")
    args = parser.parse_args()

    flat_defaults = baseline(args.rev[0] if args.rev else "HEAD")
    param_keys = list(flat_defaults)
    if args.runs_csv:
        runs = compare.read_runs(args.runs_csv, param_keys)
        histories = compare.read_histories(args.runs_csv.with_name("histories.csv"))
    else:
        new_runs, new_histories = from_experiments(args, flat_defaults)
        runs, histories = compare.keep(args.out, param_keys, new_runs, new_histories)
        if args.experiments:  # the page shows what was asked for
            asked = {r["rev"] for r in new_runs}
            runs = [r for r in runs if r["rev"] in asked]
    page = compare.study_markdown(runs, param_keys, flat_defaults)
    write_text(args.out / "comparison.md", "# The study\n\n" + page)
    study_page.study_panels(compare.cell_curves(runs, histories, param_keys, flat_defaults),
                            args.out / "curves.png")
    study_page.study_errors({label: {"test, argmax": [r["test_acc"] for r in rs]} for label, rs in
                             compare.cell_runs(runs, param_keys, flat_defaults).items()},
                            args.out / "test_errors.png")
    print(page, end="")
    print(f"compare: {len(runs)} runs → {args.out}/comparison.md")


if __name__ == "__main__":
    sys.argv[0] = "python -m commands.compare"  # what --help shows; `mnist-dvc compare` sets its own
    run_command(main, INTERRUPTED)
