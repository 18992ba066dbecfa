"""Compare experiments (not a pipeline stage: it spans experiments).

    python -m stages.compare                 # every experiment in `dvc exp show`
    python -m stages.compare EXP [EXP ...]   # only these (names or revisions)
    python -m stages.compare --rev REV       # experiments based on commit REV (default HEAD)

Writes reports/comparison.md (a table sorted by test accuracy) and PNGs overlaying valid accuracy
and valid loss per epoch, plus a bar chart of test accuracy.
"""

import argparse
from pathlib import Path

import dvc.api

from mnist_dvc import compare, figures, paths, reports
from mnist_dvc.atomic import write_text
from mnist_dvc.cli import run_stage
from mnist_dvc.params import as_dict, load_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="*", help="experiment names or revisions (default: all)")
    parser.add_argument("--rev", action="append", help="baseline commit(s) of the experiments "
                        "(default: HEAD)")
    parser.add_argument("--out", type=Path, default=Path("reports"), help="output folder")
    args = parser.parse_args()

    param_keys = compare.flat_keys(as_dict(load_params()))
    rows, note = compare.with_results(compare.select(dvc.api.exp_show(revs=args.rev), args.experiments))
    if note:
        print(note)
    shown = compare.shown_params(rows, param_keys)
    names = {r["rev"]: compare.legend(r, shown) for r in rows}
    histories = {names[r["rev"]]: reports.parse_csv(dvc.api.read(str(paths.HISTORY), rev=r["rev"]))
                 for r in rows}
    table = compare.markdown_table(rows, shown)
    write_text(args.out / "comparison.md", "# Experiments, best test accuracy first\n\n" + table)
    figures.overlay(histories, "valid_acc", "valid accuracy", args.out / "valid_accuracy.png")
    figures.overlay(histories, "valid_loss", "valid loss", args.out / "valid_loss.png")
    figures.bars({names[r["rev"]]: r.get("test_acc") for r in rows}, "test accuracy",
                 args.out / "test_accuracy.png")
    print(table, end="")
    print(f"compare: {len(rows)} experiments → {args.out}/")


if __name__ == "__main__":
    run_stage(main)
