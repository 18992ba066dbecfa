"""The order the test files are handed to the xdist workers: longest first. A file handed out last
runs alone while the other worker sits idle, so a long one there costs its whole length (with
xdist's own order, most tests first, one worker idled for the last 147 s of a 401 s suite:
docs/testing.md, round 6).

A file's length is the sum of its selected tests' seconds in tests/durations.json, a quiet run's
record (`python -m bench.suite_timeline TIMELINE --durations tests/durations.json`); it sets only
the order, so an old record costs time, never a result. A test not in it counts as UNKNOWN_S: more
if it builds a DVC repo (marked e2e), as those take tens of seconds."""

import json
from collections import defaultdict
from pathlib import Path

DURATIONS = Path(__file__).with_name("durations.json")
UNKNOWN_S = {"e2e": 20.0, "other": 0.5}


def recorded(path: Path = DURATIONS) -> dict[str, float]:
    return json.loads(path.read_text()) if path.exists() else {}


def seconds_of(item, durations: dict[str, float]) -> float:
    if item.nodeid in durations:
        return durations[item.nodeid]
    return UNKNOWN_S["e2e" if item.get_closest_marker("e2e") else "other"]


def longest_files_first(items: list, durations: dict[str, float]) -> None:
    """Sort `items` (pytest's, in place) by their file's total seconds, longest first; within a
    file, and between files of equal length, they keep their order."""
    total = defaultdict(float)
    for item in items:
        total[item.path] += seconds_of(item, durations)
    items.sort(key=lambda item: -total[item.path])
