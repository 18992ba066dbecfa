"""Compare DVC experiments as a study: pick finished rows of `dvc exp show`, keep them as the rows
of reports/runs.csv, and tabulate them by cell (see study.py for the statistics)."""

import csv
import io
import json
import math
from pathlib import Path

import yaml

from mnist_dvc import metrics_files, paths, results, study, study_plan
from mnist_dvc.atomic import write_text
from mnist_dvc.errors import MnistError
from mnist_dvc.params import flatten
from mnist_dvc.results import HISTORY_COLUMNS, RUN_CONTEXT, RUN_METRICS


def pick_experiments(rows: list[dict], names: list[str]) -> list[dict]:
    """The rows of `dvc.api.exp_show()` to compare: those named (by name or revision), else every
    experiment and the baseline commits they branch from (a baseline is a run too: the study's
    seed-0 baseline is the commit itself). Never the uncommitted workspace."""
    experiments = [r for r in rows if r.get("Experiment")]
    if not names:
        if not experiments:
            raise MnistError("no experiments found: run some first, e.g. dvc exp run -S optimizer=nadam")
        return [r for r in rows if r.get("Experiment") or r.get("rev") != "workspace"]
    by_name = {r["Experiment"]: r for r in experiments} | {r["rev"]: r for r in rows}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise MnistError(f"no experiment named {missing[0]}: choose from "
                         f"{', '.join(sorted(r['Experiment'] for r in experiments)) or 'none'} "
                         "(see dvc exp show)")
    return [by_name[n] for n in names]


def label(row: dict) -> str:
    return row.get("Experiment") or row["rev"]


# `State` in `dvc exp show`: None for finished experiments, else Success, Queued, Running, Failed.
FINISHED = (None, "", "Success")


def with_results(rows: list[dict]) -> tuple[list[dict], str]:
    """The finished rows that have a test accuracy, and a one-line note naming the others.

    `dvc exp show` lists queued, running and failed experiments too: queued ones without metrics,
    failed ones with the metrics files of their baseline, which are not theirs."""
    done = [r for r in rows if r.get("State") in FINISHED and _number(r.get("test_acc")) > -math.inf]
    skipped = ", ".join(f"{label(r)} ({r.get('State') or 'no test accuracy'})"
                        for r in rows if not any(r is d for d in done))
    if not done:
        raise MnistError(f"no experiment picked has finished with a test accuracy ({skipped}): "
                         "wait for queued ones (dvc queue status), rerun failed ones, or name "
                         "finished ones")
    return done, f"compare: skipped, no results of their own: {skipped}" if skipped else ""


# The code hash of the train and evaluate stages that made the run (study_plan.code_of_lock).
RUN_CODE = ("code",)


def record_at(rev: str, name: str, defaults: dict, read) -> tuple[dict, list[dict]]:
    """A run's row of runs.csv and its per-epoch curve, from the files commit `rev` holds (a DVC
    experiment's commit, or a baseline commit): `read(path)` gives a file's text at that commit.
    `defaults`: the flat params, whose types the run's params take."""
    params = flatten(yaml.safe_load(read(str(paths.PARAMS))))
    files = (paths.TRAIN_METRICS, paths.TEST_METRICS, paths.TIMING)
    measured = {k: v for f in files for k, v in json.loads(read(str(f))).items()}
    summary = results.parse(results.RunSummary, measured, f"the metrics files of {name}")
    run = {"experiment": name, "rev": rev,
           **{k: _like(params.get(k), default) for k, default in defaults.items()},
           **vars(summary), "code": study_plan.code_of_lock(read(str(paths.DVC_LOCK)))}
    history = [{"rev": rev, **{k: float(getattr(epoch, k)) for k in HISTORY_COLUMNS}}
               for epoch in metrics_files.parse_history(read(str(paths.HISTORY)),
                                                        f"{paths.HISTORY} of {name}")]
    return run, history


def _like(value, default):
    """`dvc exp show` gives whole-number params as floats (seed 0.0, epochs 8.0) and booleans as
    text ("False"): back to the param's type, so a run's cell matches params.yaml's."""
    if isinstance(value, str) and not isinstance(default, str):
        value = yaml.safe_load(value)
    is_int = isinstance(default, int) and not isinstance(default, bool)
    return int(value) if is_int and isinstance(value, float) and value.is_integer() else value


def pin_commit(row: dict, sha: str) -> dict:
    """A baseline commit's row of `dvc exp show` (shown by a branch name such as main, which moves)
    keyed by its commit, so that the next compare finds the same row again."""
    return {**row, "Experiment": f"commit {sha}", "rev": sha}


def merge_runs(kept: list[dict], new: list[dict]) -> list[dict]:
    """The rows of reports/runs.csv updated with new runs: one row per revision, new ones win."""
    by_rev = {r["rev"]: r for r in kept} | {r["rev"]: r for r in new}
    return list(by_rev.values())


def merge_histories(kept: list[dict], new: list[dict], new_revs: set[str]) -> list[dict]:
    """The rows of reports/histories.csv updated with the curves of the runs `new_revs`: each
    replaces its whole kept curve (a rerun that stopped earlier leaves no old epochs behind), and
    a run seen twice among the new ones keeps one curve, the later (one row per run and epoch)."""
    replaced = new_revs | {h["rev"] for h in new}
    latest = {(h["rev"], h["epoch"]): h for h in new}
    return [h for h in kept if h["rev"] not in replaced] + list(latest.values())


def keep(out: Path, param_keys: list[str], new_runs: list[dict],
         new_histories: list[dict]) -> tuple[list[dict], list[dict]]:
    """Merge new runs into out/runs.csv and out/histories.csv (a rerun replaces its row and its
    curve), write both back, and return everything they now hold."""
    runs_csv, histories_csv = out / "runs.csv", out / "histories.csv"
    kept = read_runs(runs_csv, param_keys) if runs_csv.is_file() else []
    kept_histories = read_histories(histories_csv) if histories_csv.is_file() else []
    runs = merge_runs(kept, new_runs)
    histories = merge_histories(kept_histories, new_histories, {r["rev"] for r in new_runs})
    write_runs(runs_csv, runs, param_keys)
    metrics_files.write_csv(histories_csv, histories)
    return runs, histories


def write_runs(path: Path, runs: list[dict], param_keys: list[str]) -> None:
    """reports/runs.csv: params as YAML scalars (so `true`, `0.002`, `adam` read back as they
    were), metrics as numbers, the machine and the date as text."""
    columns = ["experiment", "rev", *param_keys, *RUN_METRICS, *RUN_CONTEXT, *RUN_CODE]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for run in runs:
        writer.writerow({k: _scalar(run.get(k)) if k in param_keys else run.get(k) for k in columns})
    write_text(path, out.getvalue())


def _scalar(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()


def read_runs(path: Path, param_keys: list[str]) -> list[dict]:
    if not path.is_file():
        raise MnistError(f"{path} is missing: run python -m commands.compare once where the "
                         "experiments are, or name the runs.csv that git holds")
    runs = []
    for row in map(results.current_names, csv.DictReader(io.StringIO(path.read_text()))):
        run = {"experiment": row["experiment"], "rev": row["rev"],
               **{k: row.get(k) for k in RUN_CONTEXT + RUN_CODE}}
        run |= {k: yaml.safe_load(row[k]) if row.get(k) else None for k in param_keys}
        run |= {k: float(row[k]) if row.get(k) else math.nan for k in RUN_METRICS}
        runs.append(run)
    return runs


def read_histories(path: Path) -> list[dict]:
    if not path.is_file():
        raise MnistError(f"{path} is missing: it is written beside runs.csv by python -m "
                         "commands.compare; restore it from git")
    return [{"rev": row["rev"], **{k: float(row[k]) for k in HISTORY_COLUMNS}}
            for row in csv.DictReader(io.StringIO(path.read_text()))]


def cell_curves(runs: list[dict], histories: list[dict], param_keys: list[str],
                defaults: dict) -> dict[str, list[list[dict]]]:
    """Cell label -> the per-epoch history of each of its runs."""
    by_rev: dict[str, list[dict]] = {}
    for h in histories:
        by_rev.setdefault(h["rev"], []).append(h)
    return {cell_label(cell, defaults): [by_rev.get(r["rev"], []) for r in rs]
            for cell, rs in study.group_cells(runs, param_keys).items()}


def cell_runs(runs: list[dict], param_keys: list[str], defaults: dict) -> dict[str, list[dict]]:
    """Cell label -> its runs."""
    return {cell_label(cell, defaults): rs for cell, rs in study.group_cells(runs, param_keys).items()}


def cell_label(cell: tuple, defaults: dict) -> str:
    """"adam + warmup", then every other param that differs from the defaults."""
    values = dict(cell)
    extra = [f"{k} {values[k]}" for k in values
             if k not in ("optimizer", "scheduler") and str(values[k]) != str(defaults.get(k))]
    name = f"{values.get('optimizer')} + {values.get('scheduler')}"
    return f"{name} ({', '.join(extra)})" if extra else name


def cell_value(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.4f}" if abs(value) < 10 and value != int(value) else f"{value:g}"
    return "" if value is None else str(value)


def _number(value) -> float:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else -math.inf


def mean_ci(iv: study.Interval) -> str:
    if iv.n < 2:
        return f"{iv.mean:.4f} (1 seed)"
    return f"{iv.mean:.4f} ± {iv.sd:.4f} [{iv.low:.4f}, {iv.high:.4f}]"


def points(iv: study.Interval | None) -> tuple[str, str]:
    """A difference in accuracy points, and whether it is real at this sample size."""
    if iv is None:
        return "no common seed", ""
    if iv.n < 2:
        return f"{100 * iv.mean:+.2f} (1 pair)", "can't tell"
    verdict = "**real**" if iv.excludes_zero else "not shown"
    return f"{100 * iv.mean:+.2f} [{100 * iv.low:+.2f}, {100 * iv.high:+.2f}]", verdict


def study_markdown(runs: list[dict], param_keys: list[str], defaults: dict) -> str:
    """The study's page: cells with mean, sd and 95% interval; paired differences against the
    baseline cell (the defaults); every run."""
    cells = study.group_cells(runs, param_keys)
    base_key = study.cell_of(defaults, param_keys)
    stats = {cell: {m: study.interval([r[m] for r in rs]) for m in
                    ("test_acc", "test_acc_graded", "handin_test_acc_graded", "best_valid_acc",
                     "best_epoch", "train_seconds")} for cell, rs in cells.items()}
    order = sorted(cells, key=lambda c: -stats[c]["test_acc"].mean)
    machines = sorted({f"{r.get('hardware')} ({r.get('precision')})" for r in runs})
    shown = sum(len(rs) for rs in cells.values())
    repeats = (f" ({len(runs) - shown} not shown: a seed run again in its cell counts once, "
               "the later row)" if len(runs) > shown else "")
    lines = [f"{shown} runs in {len(cells)} cells{repeats} (a cell: the same params, seeds differ). "
             "Intervals are 95% t intervals of the mean over the seeds (mean ± sd [low, high]).",
             "", "Ran on: " + "; ".join(machines) + ". Accuracy does not depend on the machine's "
             "load; time does: `train s` is each run's wall time, and study runs are queued at low "
             "priority beside other work, so it is not a timing figure (docs/performance.md has "
             "those).", "",
             "## Cells, best mean test accuracy first", "",
             "| cell | seeds | test accuracy (argmax) | graded the course's way (expected) | "
             "hand-in, graded | best valid accuracy | best epoch | train s |",
             "|---|---|---|---|---|---|---|---|"]
    for cell in order:
        s = stats[cell]
        name = cell_label(cell, defaults) + (" **(baseline)**" if cell == base_key else "")
        seeds = ", ".join(str(r["seed"]) for r in sorted(cells[cell], key=lambda r: r["seed"]))
        lines.append(f"| {name} | {seeds} | {mean_ci(s['test_acc'])} | "
                     f"{mean_ci(s['test_acc_graded'])} | {s['handin_test_acc_graded'].mean:.4f} | "
                     f"{s['best_valid_acc'].mean:.4f} | {s['best_epoch'].mean:.1f} | "
                     f"{s['train_seconds'].mean:.0f} |")
    lines += ["", "## Paired differences against the baseline, seed by seed", ""]
    if base_key not in cells:
        lines.append("No run of the baseline cell (the params.yaml defaults) yet: nothing to pair.")
    else:
        lines += [f"Each cell minus {cell_label(base_key, defaults)} on the seeds both ran, in "
                  "accuracy points (0.01 = one test image in 10,000). **real**: the 95% "
                  "interval excludes 0; not shown: it does not, at this number of seeds.", "",
                  "| cell | pairs | Δ test accuracy | | Δ graded (expected) | |",
                  "|---|---|---|---|---|---|"]
        for cell in order:
            if cell == base_key:
                continue
            acc = study.paired_difference(cells[base_key], cells[cell], "test_acc")
            graded = study.paired_difference(cells[base_key], cells[cell], "test_acc_graded")
            lines.append(f"| {cell_label(cell, defaults)} | {acc.n if acc else 0} | "
                         f"{' | '.join(points(acc))} | {' | '.join(points(graded))} |")
    lines += ["", "## Runs", "", "| experiment | cell | seed | " + " | ".join(RUN_METRICS) +
              " | hardware |", "|---|---|---|" + "---|" * (len(RUN_METRICS) + 1)]
    for cell in order:
        for r in sorted(cells[cell], key=lambda r: r["seed"]):
            lines.append(f"| {r['experiment']} | {cell_label(cell, defaults)} | {r['seed']} | " +
                         " | ".join(cell_value(r.get(k)) for k in RUN_METRICS) + f" | {r.get('hardware')} |")
    return "\n".join(lines) + "\n"
