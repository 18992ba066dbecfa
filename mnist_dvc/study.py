"""The study's statistics: runs grouped into cells (the same params but the seed), each cell's mean,
spread and 95% interval, and paired differences against a baseline cell over the seeds both ran.

Pairing by seed matters: the seed fixes the split, the initialisation, the shuffling and the
augmentation, so two cells run with the same seed differ only by what the cell changes, and their
difference varies much less from seed to seed than either accuracy does.
"""

import math
import statistics
from dataclasses import dataclass

# Two-sided 95% quantiles of Student's t by degrees of freedom; past the table, the last row's
# (slightly wide, never narrow).
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228, 15: 2.131, 20: 2.086, 30: 2.042}


def t975(df: int) -> float:
    return T975[max(d for d in T975 if d <= df)]


@dataclass(frozen=True)
class Interval:
    """Mean of `n` values, their sample standard deviation and the 95% t interval of the mean
    (sd and bounds are NaN for a single value: one run says nothing about the spread)."""

    n: int
    mean: float
    sd: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        """For a difference: is it real at this sample size (the interval lies on one side of 0)?"""
        return self.low > 0 or self.high < 0


def interval(values: list[float]) -> Interval:
    if not values:
        raise ValueError("no values")
    mean = statistics.fmean(values)
    if len(values) < 2:
        return Interval(1, mean, math.nan, math.nan, math.nan)
    sd = statistics.stdev(values)
    half = t975(len(values) - 1) * sd / math.sqrt(len(values))
    return Interval(len(values), mean, sd, mean - half, mean + half)


def cell_of(run: dict, param_keys: list[str]) -> tuple:
    """What makes a cell: every param's value but the seed's."""
    return tuple((k, run.get(k)) for k in param_keys if k != "seed")


def group_cells(runs: list[dict], param_keys: list[str]) -> dict[tuple, list[dict]]:
    """Runs by cell, in the order cells first appear; a seed run twice in a cell counts once
    (the later row wins: a rerun replaces the run it repeats)."""
    cells: dict[tuple, dict] = {}
    for run in runs:
        cells.setdefault(cell_of(run, param_keys), {})[run["seed"]] = run
    return {cell: list(by_seed.values()) for cell, by_seed in cells.items()}


def paired_difference(baseline: list[dict], other: list[dict], metric: str) -> Interval | None:
    """other − baseline in `metric`, seed by seed, over the seeds both ran (None if none)."""
    base = {r["seed"]: r[metric] for r in baseline}
    diffs = [r[metric] - base[r["seed"]] for r in sorted(other, key=lambda r: r["seed"])
             if r["seed"] in base]
    return interval(diffs) if diffs else None
