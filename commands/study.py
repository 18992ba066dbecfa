"""Run the study (study.yaml) to the end, one missing run at a time, resuming from reports/runs.csv.

    python -m commands.study status            # what is done, what is missing, time left
    python -m commands.study run [--dry-run]   # run the missing runs as DVC experiments
    python -m commands.study report            # rebuild reports/comparison.md and the figures
    python -m commands.study pin               # make the workspace's code the study's code

`run` runs each missing (cell, seed) as `dvc exp run --temp` in a git worktree of the plan's
commit (.study/COMMIT, sharing this repo's DVC cache), so the study trains the pinned code while
main moves on and your files stay yours (`dvc exp show --rev COMMIT` lists the runs); it merges
each run's row and per-epoch curve into reports/runs.csv and reports/histories.csv and rebuilds
the page: `git commit reports/` at any
moment keeps every finished run. A killed run leaves no row; the next `run` starts it again, or
takes its result if its experiment finished after all. Runs are ordered cheapest first.
"""

import argparse
import json
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from mnist_dvc import compare, paths, provenance, study_page, study_plan
from mnist_dvc.atomic import write_text
from mnist_dvc.cli import run_command
from mnist_dvc.errors import MnistError
from mnist_dvc.params import as_dict, flatten, load_params, parse_params

INTERRUPTED = ("the run in progress left no row (reports/ holds every finished run); "
               "run python -m commands.study run again to resume")
# What a run costs besides training: dvc, the evaluate, plot and report stages.
OVERHEAD_SECONDS = 40.0
STUDY_DIR = Path(".study")  # the worktrees the study runs in (ignored by git and DVC)


def rows(out: Path, param_keys: list[str]) -> tuple[list[dict], list[dict]]:
    runs_csv = out / "runs.csv"
    if not runs_csv.is_file():
        return [], []
    return compare.read_runs(runs_csv, param_keys), compare.read_histories(out / "histories.csv")


def with_known_code(runs: list[dict]) -> list[dict]:
    """Rows whose run is a commit of this repo (a baseline commit) get their code hash from its
    dvc.lock; a DVC experiment made on another machine is not here and stays unknown."""
    out = []
    for run in runs:
        if not run.get("code"):
            lock = provenance.git_show(run["rev"], str(paths.DVC_LOCK))
            if lock:
                run = {**run, "code": study_plan.code_of_lock(lock)}
        out.append(run)
    return out


def seconds_left(todo, runs, defaults) -> float:
    """Time left on a machine like the ones that ran the counted rows: their median seconds per
    epoch times each missing run's epochs, plus each run's fixed overhead."""
    per_epoch = [r["train_seconds"] / r["epochs_run"] for r in runs
                 if r.get("epochs_run") and r["train_seconds"] == r["train_seconds"]]
    rate = statistics.median(per_epoch) if per_epoch else 35.0
    return sum(rate * study_plan.cell_params(c, defaults, s)["train.epochs"] + OVERHEAD_SECONDS
               for c, s in todo)


def status(plan, runs, defaults) -> list:
    done = study_plan.counted(plan, runs, defaults)
    todo = study_plan.missing(plan, done, defaults)
    width = max(len(c.name) for c in plan.cells)
    print(f"study: code {plan.code} (pinned at {plan.commit}); seeds {list(plan.seeds)}")
    for cell in plan.cells:
        have = [s for s in plan.seeds if (cell.name, s) in done]
        need = [s for s in plan.seeds if (cell.name, s) not in done]
        print(f"  {cell.name:<{width}}  done {have or '-'}  missing {need or '-'}")
    other = len(runs) - len({id(r) for r in done.values()})
    left = seconds_left(todo, list(done.values()), defaults) / 60
    print(f"study: {len(done)} of {len(plan.cells) * len(plan.seeds)} runs done, {len(todo)} "
          f"missing (about {left:.0f} min); {other} other rows in runs.csv (other code or params) "
          "do not count")
    return todo


def experiment_revs(name: str) -> list[str]:
    """Commits of the DVC experiments named `name` on this machine (any baseline), newest first."""
    done = subprocess.run(["git", "for-each-ref", "--sort=-committerdate", "--format=%(objectname)",
                           f"refs/exps/*/*/{name}"], capture_output=True, text=True, check=True)
    return done.stdout.split()


def harvest(name: str, plan, defaults: dict):
    """The row and curve of a finished experiment `name` trained by the plan's code, or None."""
    for rev in experiment_revs(name):
        run, history = compare.record_at(rev[:7], name, flatten(defaults),
                                         lambda path, rev=rev: _show(rev, path))
        if run["code"] == plan.code:
            return run, history
    return None


def _show(rev: str, path: str) -> str:
    text = provenance.git_show(rev, path)
    if text is None:
        raise MnistError(f"experiment {rev[:7]} has no {path}: remove it (dvc exp remove "
                         f"{rev[:7]}) and run again")
    return text


def dvc_command(cell, seed: int) -> list[str]:
    sets = [f"{k}={json.dumps(v) if isinstance(v, bool) else v}" for k, v in cell.overrides.items()]
    return ["dvc", "exp", "run", "--temp", "-n", study_plan.run_name(cell, seed),
            "-S", f"seed={seed}", *[a for s in sets for a in ("-S", s)]]


def worktree(plan) -> Path:
    """The study's workspace: a git worktree at the plan's commit, with this repo's DVC cache."""
    where = STUDY_DIR / plan.commit
    if not (where / "dvc.yaml").is_file():
        added = subprocess.run(["git", "worktree", "add", "--detach", str(where), plan.commit],
                               capture_output=True, text=True)
        if added.returncode != 0:
            raise MnistError(f"cannot check out the study's commit {plan.commit} in {where}: "
                             f"{added.stderr.strip().splitlines()[-1]}: fetch it (git fetch) or "
                             "re-pin (python -m commands.study pin)")
        cache = Path(".dvc/cache").resolve()
        cache.mkdir(parents=True, exist_ok=True)
        (where / ".dvc" / "cache").symlink_to(cache)
    code = study_plan.code_of_workspace(where)
    if code != plan.code:
        raise MnistError(f"the code in {where} ({code}) is not the study's ({plan.code}): remove "
                         f"the folder (git worktree remove --force {where}) and run again")
    return where


def run(args, plan, runs, histories, defaults, param_keys) -> None:
    todo = status(plan, runs, defaults)
    if args.dry_run:
        for cell, seed in todo:
            print("would run: " + " ".join(dvc_command(cell, seed)))
        return
    failed = []
    for cell, seed in todo:
        name = study_plan.run_name(cell, seed)
        found = harvest(name, plan, defaults)
        if found is None:
            where = worktree(plan)
            start = time.monotonic()
            print(f"study: {name}: " + " ".join(dvc_command(cell, seed)) + f" (in {where})",
                  flush=True)
            done = subprocess.run(dvc_command(cell, seed), cwd=where)
            if done.returncode != 0:
                print(f"study: {name} failed (exit {done.returncode}); going on with the next run",
                      flush=True)
                failed.append(name)
                continue
            found = harvest(name, plan, defaults)
            if found is None:
                raise MnistError(f"experiment {name} finished but was trained by other code: was "
                                 f"{where} edited while it ran? remove it (git worktree remove "
                                 f"--force {where}) and run again")
            print(f"study: {name} done in {time.monotonic() - start:.0f} s: test "
                  f"{found[0]['test_acc']:.4f}", flush=True)
        else:
            print(f"study: {name}: its experiment had finished; its row is taken from it", flush=True)
        runs, histories = compare.keep(args.out, param_keys, [found[0]], found[1])
        runs = with_known_code(runs)
        study_page.write(plan, runs, histories, defaults, args.out)
    if failed:
        raise MnistError(f"{len(failed)} runs failed ({', '.join(failed)}): see their output "
                         "above, fix the cause, and run again")
    status(plan, runs, defaults)


def pin(plan_path: Path) -> None:
    """Pin the code of HEAD (committed code only: the study checks that commit out)."""
    commit = subprocess.run(["git", "rev-parse", "--short=7", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    code = study_plan.code_at(commit)
    if study_plan.code_of_workspace() != code:
        print("study: note: uncommitted changes to the training code are not pinned; commit "
              "them and pin again to study them")
    text = re.sub(r"^code: \S+", f"code: {code}", plan_path.read_text(), count=1, flags=re.M)
    write_text(plan_path, re.sub(r"^commit: \S+", f"commit: {commit}", text, count=1, flags=re.M))
    print(f"study: pinned code {code} (workspace at {commit}); rows of other code no longer count")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("status", "run", "report", "pin"))
    parser.add_argument("--dry-run", action="store_true", help="run: list the runs, run nothing")
    parser.add_argument("--plan", type=Path, default=study_plan.PLAN, help="the plan (study.yaml)")
    parser.add_argument("--out", type=Path, default=paths.REPORTS,
                        help="where runs.csv, histories.csv and the page live")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    param_keys = list(flatten(as_dict(load_params())))
    if args.action == "pin":
        return pin(args.plan)
    plan = study_plan.load_plan(args.plan)
    # A cell is the pinned commit's defaults with its overrides (main's params.yaml may move on).
    pinned = provenance.git_show(plan.commit, str(paths.PARAMS))
    if pinned is None:
        raise MnistError(f"{args.plan}: commit {plan.commit} is not in this repository: fetch it "
                         "or re-pin (python -m commands.study pin)")
    defaults = as_dict(parse_params(yaml.safe_load(pinned), f"params.yaml at {plan.commit}"))
    plan = study_plan.load_plan(args.plan, defaults)
    runs, histories = rows(args.out, param_keys)
    known = with_known_code(runs)
    if known != runs and args.action == "run":
        compare.write_runs(args.out / "runs.csv", known, param_keys)
    runs = known
    if args.action == "status":
        status(plan, runs, defaults)
    elif args.action == "report":
        study_page.write(plan, runs, histories, defaults, args.out)
        print(f"study: {args.out}/comparison.md and figures rebuilt from {args.out}/runs.csv")
    else:
        run(args, plan, runs, histories, defaults, param_keys)


if __name__ == "__main__":
    sys.argv[0] = "python -m commands.study"  # what --help shows; `mnist-dvc study` sets its own
    run_command(main, INTERRUPTED)
