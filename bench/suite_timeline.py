"""Where a parallel test run's time goes: which worker ran which file when, and how long each sat
idle. A pytest plugin writes one JSON line per test (worker, test id, start, end); this module
then prints each worker's files, its idle time, and the run replayed in another file order.

    SUITE_TIMELINE=/tmp/t.jsonl PYTHONPATH=. make test PYTEST_ARGS="-p bench.suite_timeline"
    python -m bench.suite_timeline /tmp/t.jsonl [--durations tests/durations.json]
"""

import argparse
import json
import os
import time
from collections import defaultdict

import pytest


def _write(row: dict) -> None:
    with open(os.environ.get("SUITE_TIMELINE", "suite_timeline.jsonl"), "a") as out:
        out.write(json.dumps({"worker": os.environ.get("PYTEST_XDIST_WORKER", "main"), **row}) + "\n")


def pytest_sessionstart(session):
    """A line saying what ran the tests, and when, from each process."""
    import torch

    from mnist_dvc.device import hardware

    _write({"machine": hardware(torch.device("cpu")), "torch": torch.__version__,
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    started = time.time()
    yield
    _write({"test": item.nodeid, "start": started, "end": time.time()})


def read(path: str) -> list[dict]:
    """The tests' rows (not the machine's)."""
    with open(path) as lines:
        return [row for line in lines if line.strip() and "test" in (row := json.loads(line))]


def file_seconds(rows: list[dict]) -> dict[str, list[float]]:
    """file -> the seconds of each of its tests, in the order they ran."""
    files = defaultdict(list)
    for row in sorted(rows, key=lambda r: r["start"]):
        files[row["test"].split("::")[0]].append(row["end"] - row["start"])
    return dict(files)


def test_seconds(rows: list[dict]) -> dict[str, float]:
    """test id -> its seconds (setup, call and teardown), to 0.01 s."""
    return {row["test"]: round(row["end"] - row["start"], 2) for row in rows}


def replay(files: dict[str, list[float]], order: list[str], workers: int = 2) -> list[float]:
    """When each worker would finish, pytest-xdist's `--dist loadfile` handing out whole files in
    `order`: one to each worker, then a second at once, then the next file to whichever worker
    has no more than two tests of its files left (xdist's LoadScopeScheduling), as each test
    ends, in the order they end."""
    queue, clock, left = list(order), [0.0] * workers, [[] for _ in range(workers)]

    def hand_out(worker):
        if queue:
            left[worker].extend(files[queue.pop(0)])

    for worker in range(workers):
        hand_out(worker)
    for worker in range(workers):
        if len(left[worker]) <= 2:
            hand_out(worker)
    while any(left):
        worker = min((w for w in range(workers) if left[w]), key=lambda w: clock[w] + left[w][0])
        clock[worker] += left[worker].pop(0)
        if len(left[worker]) <= 2:
            hand_out(worker)
    return clock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("timeline", help="the JSON lines the plugin wrote")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="files shorter are not listed")
    parser.add_argument("--order", help="a file naming test files one a line, in the order to "
                        "replay them in (e.g. conftest's: pytest --collect-only -q, files in order)")
    parser.add_argument("--durations", metavar="JSON", help="also write each test's seconds there "
                        "(tests/durations.json: the order tests/file_order.py hands files out in)")
    args = parser.parse_args()
    rows = read(args.timeline)
    if args.durations:
        with open(args.durations, "w") as out:
            json.dump(test_seconds(rows), out, indent=0, sort_keys=True)
            out.write("\n")
    zero = min(row["start"] for row in rows)
    end = max(row["end"] for row in rows) - zero
    by_worker = defaultdict(list)
    for row in rows:
        by_worker[row["worker"]].append(row)
    for worker, runs in sorted(by_worker.items()):
        runs.sort(key=lambda r: r["start"])
        busy = sum(r["end"] - r["start"] for r in runs)
        last = max(r["end"] for r in runs) - zero
        print(f"{worker}: {len(runs)} tests, {busy:.1f} s in tests, done at {last:.1f} s "
              f"(then idle {end - last:.1f} s)")
        segments = []
        for r in runs:
            name = r["test"].split("::")[0]
            if segments and segments[-1][0] == name:
                segments[-1][2] = r["end"]
            else:
                segments.append([name, r["start"], r["end"]])
        for name, start, stop in segments:
            if stop - start >= args.min_seconds:
                print(f"  {start - zero:7.1f} {stop - zero:7.1f} {stop - start:6.1f}  {name}")
    files = file_seconds(rows)
    ran = list(files)
    print(f"tests took {sum(map(sum, files.values())):.1f} s in all; the run ended at {end:.1f} s")
    orders = [("most tests first (xdist's default)", sorted(ran, key=lambda f: -len(files[f]))),
              ("longest first", sorted(ran, key=lambda f: -sum(files[f])))]
    if args.order:
        with open(args.order) as lines:
            named = [line.strip() for line in lines if line.strip() in files]
        orders.append((f"in the order of {args.order}", named + [f for f in ran if f not in named]))
    for label, order in orders:
        ends = replay(files, order, len(by_worker))
        print(f"replayed, {label}: ends at {max(ends):.1f} s ({', '.join(f'{e:.1f}' for e in ends)})")


if __name__ == "__main__":
    main()
