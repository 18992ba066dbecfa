"""The study's plan (study.yaml): which cells, which seeds, and the training code every row must
come from; which (cell, seed) runs reports/runs.csv already holds, and which are missing.

A cell is the params.yaml defaults with a few overrides, as `dvc exp run -S key=value` sets them.
A row of runs.csv counts for a cell when its params are the cell's (any seed of the plan) and it
was trained by the plan's code: the hash of the code files the train and evaluate stages list as
deps, as dvc.lock recorded them for that run. Rows from other code stay in runs.csv as records but
never count and never show on the page: a cell's seeds all come from one code.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from mnist_dvc.download import md5_of
from mnist_dvc.errors import MnistError
from mnist_dvc.params import as_dict, flatten, parse_params, same_value, with_overrides
from mnist_dvc.provenance import git_show

PLAN = Path("study.yaml")
# The stages whose code makes a row's numbers: train (the weights, the history) and evaluate.
CODE_STAGES = ("train", "evaluate")


@dataclass(frozen=True)
class Cell:
    name: str
    overrides: dict  # dotted key -> value, as `-S key=value`
    about: str


@dataclass(frozen=True)
class Claim:
    claim: str
    pairs: tuple[tuple[str, str], ...]  # (cell, other cell): the difference cell - other is tested


@dataclass(frozen=True)
class Plan:
    code: str    # the code hash every counted row must have
    commit: str  # where that code was pinned (for people: `code` is what is checked)
    seeds: tuple[int, ...]
    cells: tuple[Cell, ...]
    claims: tuple[Claim, ...] = ()

    def cell(self, name: str) -> Cell:
        return next(c for c in self.cells if c.name == name)


def _fail(path: Path, what: str) -> MnistError:
    return MnistError(f"{path}: {what}")


def load_plan(path: Path = PLAN, defaults: dict | None = None) -> Plan:
    """Read and check the plan: every cell's params must pass the params checks (so a typo in a
    cell fails now, not hours into the study)."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise MnistError(f"cannot read {path}: {exc.strerror}: run from the project root, where "
                         "study.yaml lives") from None
    except yaml.YAMLError:
        raise _fail(path, "is not valid YAML: fix the syntax (see git diff study.yaml)") from None
    if not isinstance(raw, dict) or not {"code", "commit", "seeds", "cells"} <= set(raw) or (
            set(raw) - {"code", "commit", "seeds", "cells", "claims"}):
        raise _fail(path, "must have the keys code, commit, seeds, cells (and may have claims): "
                    "restore it from git (git checkout study.yaml)")
    seeds = raw["seeds"]
    if (not isinstance(seeds, list) or not seeds or len(set(seeds)) != len(seeds)
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise _fail(path, f"seeds = {seeds!r}: must be a list of distinct whole numbers >= 0, "
                    "e.g. [0, 1, 2]")
    cells = []
    for entry in raw["cells"] or []:
        if not isinstance(entry, dict) or set(entry) - {"name", "set", "about"} or "name" not in entry:
            raise _fail(path, f"cell {entry!r}: each cell needs a name, and may have set (the "
                        "overrides) and about (one line)")
        name, overrides = str(entry["name"]), entry.get("set") or {}
        if not name.replace("-", "").replace(".", "").isalnum():
            raise _fail(path, f"cell name {name!r}: use letters, digits, '-' and '.' only (it "
                        "names the DVC experiments)")
        if not isinstance(overrides, dict) or "seed" in overrides:
            raise _fail(path, f"cell {name}: set must map params keys to values, without seed "
                        "(the seeds are the plan's)")
        if any(c.name == name for c in cells):
            raise _fail(path, f"cell {name} is named twice: cell names must be unique")
        cells.append(Cell(name, dict(overrides), str(entry.get("about", ""))))
    if not cells:
        raise _fail(path, "has no cells: list at least one under cells")
    names = {c.name for c in cells}
    claims = []
    for entry in raw.get("claims") or []:
        pairs = entry.get("pairs") if isinstance(entry, dict) else None
        if (not isinstance(pairs, list) or "claim" not in entry
                or not all(isinstance(p, list) and len(p) == 2 for p in pairs)):
            raise _fail(path, f"claim {entry!r}: each claim needs claim (its text) and pairs (a "
                        "list of [cell, other cell])")
        unknown = [n for p in pairs for n in p if n not in names]
        if unknown:
            raise _fail(path, f"claim {entry['claim']!r} names {unknown[0]}, which is not a cell: "
                        "use the name of a cell")
        claims.append(Claim(str(entry["claim"]), tuple(tuple(p) for p in pairs)))
    plan = Plan(str(raw["code"]), str(raw["commit"]), tuple(seeds), tuple(cells), tuple(claims))
    if defaults is not None:
        for cell in plan.cells:
            cell_params(cell, defaults, plan.seeds[0], source=f"{path} (cell {cell.name})")
    return plan


def cell_params(cell: Cell, defaults: dict, seed: int, source: str = "study.yaml") -> dict:
    """The flat params of one run of `cell`: the defaults (nested, as params.yaml) with the cell's
    overrides and the seed, checked as params.yaml is."""
    if any(key.split(".")[0] not in defaults for key in cell.overrides):
        bad = next(k for k in cell.overrides if k.split(".")[0] not in defaults)
        raise MnistError(f"{source}: unknown key {bad}: use the keys of params.yaml")
    try:
        raw = with_overrides(defaults, {**cell.overrides, "seed": seed})
    except (KeyError, TypeError):
        raise MnistError(f"{source}: a key of set is not in params.yaml: use the keys of "
                         "params.yaml") from None
    return flatten(as_dict(parse_params(raw, source)))


def run_in(run: dict, params: dict) -> bool:
    return all(same_value(run.get(key), value) for key, value in params.items())


def code_hash(files: dict[str, str]) -> str:
    """The study's code hash: path -> md5 of each code file the train and evaluate stages run."""
    text = "".join(f"{path} {md5}\n" for path, md5 in sorted(files.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def code_of_lock(lock_text: str) -> str:
    """The code hash of a run from its dvc.lock (DVC's md5 of each dep as it ran)."""
    stages = (yaml.safe_load(lock_text) or {}).get("stages", {})
    files = {dep["path"]: dep["md5"] for name in CODE_STAGES
             for dep in stages.get(name, {}).get("deps", []) if dep["path"].endswith(".py")}
    if not files:
        raise MnistError("dvc.lock records no train or evaluate code: run dvc repro first")
    return code_hash(files)


def code_of_workspace(root: Path = Path(".")) -> str:
    """The code hash the next run would have: dvc.yaml's code deps of train and evaluate, hashed
    from the files as they are now (committed or not)."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    paths = {dep for name in CODE_STAGES for dep in stages[name]["deps"] if dep.endswith(".py")}
    return code_hash({p: md5_of(root / p) for p in paths})


def code_at(rev: str, root: Path = Path(".")) -> str:
    """The code hash of commit `rev`: its dvc.yaml's code deps of train and evaluate, hashed from
    the files it holds (what `pin` pins: uncommitted edits are not part of a commit)."""
    stages = yaml.safe_load(git_show(rev, "dvc.yaml", root) or "{}").get("stages", {})
    paths = {dep for name in CODE_STAGES for dep in stages.get(name, {}).get("deps", [])
             if dep.endswith(".py")}
    if not paths:
        raise MnistError(f"commit {rev} has no train and evaluate stages in dvc.yaml: pin a commit "
                         "of this project")
    return code_hash({p: hashlib.md5(git_show(rev, p, root).encode()).hexdigest() for p in paths})


def run_name(cell: Cell, seed: int) -> str:
    """The DVC experiment name of one run of the plan."""
    return f"{cell.name}-s{seed}"


def counted(plan: Plan, runs: list[dict], defaults: dict) -> dict[tuple[str, int], dict]:
    """(cell name, seed) -> the row of runs.csv that counts for it (the last, if several)."""
    found = {}
    for cell in plan.cells:
        for seed in plan.seeds:
            params = cell_params(cell, defaults, seed)
            for run in runs:
                if run.get("code") == plan.code and run_in(run, params):
                    found[(cell.name, seed)] = run
    return found


def missing(plan: Plan, done: dict[tuple[str, int], dict], defaults: dict) -> list[tuple[Cell, int]]:
    """The (cell, seed) runs the plan still needs (`done`: what `counted` found), cheapest first:
    by the cell's epochs, then by seed (every cell's seed 0 before any seed 1, so early rows
    already cover the grid), then in the plan's order."""
    todo = [(cell, seed) for cell in plan.cells for seed in plan.seeds
            if (cell.name, seed) not in done]
    order = {cell.name: i for i, cell in enumerate(plan.cells)}
    return sorted(todo, key=lambda cs: (cell_params(cs[0], defaults, cs[1])["train.epochs"],
                                        cs[1], order[cs[0].name]))
