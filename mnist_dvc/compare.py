"""Compare DVC experiments: pick rows of `dvc exp show`, tabulate them, overlay their curves."""

import math

from mnist_dvc.errors import MnistError

METRICS = ("test_acc", "test_acc_sampled", "handin_test_acc_sampled", "test_loss", "best_valid_acc", "best_epoch", "epochs_run", "train_seconds")


def flat_keys(tree: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in tree.items():
        keys += flat_keys(value, f"{prefix}{key}.") if isinstance(value, dict) else [prefix + key]
    return keys


def select(rows: list[dict], names: list[str]) -> list[dict]:
    """The experiment rows of `dvc.api.exp_show()`, or those named (by name or revision)."""
    experiments = [r for r in rows if r.get("Experiment")]
    if not names:
        if not experiments:
            raise MnistError("no experiments found: run some first, e.g. dvc exp run -S optimizer=nadam")
        return experiments
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
        raise MnistError(f"no selected experiment has finished with a test accuracy ({skipped}): "
                         "wait for queued ones (dvc queue status), rerun failed ones, or name "
                         "finished ones")
    return done, f"compare: skipped, no results of their own: {skipped}" if skipped else ""


def varying(rows: list[dict], param_keys: list[str]) -> list[str]:
    """The params whose values differ between the rows."""
    return [k for k in param_keys if len({str(r.get(k)) for r in rows}) > 1]


def shown_params(rows: list[dict], param_keys: list[str]) -> list[str]:
    """optimizer and scheduler always, then every other param that differs between the rows."""
    always = ["optimizer", "scheduler"]
    return always + [k for k in varying(rows, param_keys) if k not in always]


def legend(row: dict, params: list[str]) -> str:
    """What a figure calls an experiment: its name and the shown params' values."""
    return f"{label(row)} ({', '.join(str(row.get(k)) for k in params)})"


def _cell(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.4f}" if abs(value) < 10 and value != int(value) else f"{value:g}"
    return "" if value is None else str(value)


def markdown_table(rows: list[dict], params: list[str]) -> str:
    """One line per experiment, best test accuracy first."""
    ordered = sorted(rows, key=lambda r: -_number(r.get("test_acc")))
    header = ["experiment", *params, *METRICS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in ordered:
        lines.append("| " + " | ".join([label(row)] + [_cell(row.get(k)) for k in header[1:]]) + " |")
    return "\n".join(lines) + "\n"


def _number(value) -> float:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else -math.inf
