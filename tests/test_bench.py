"""The benchmarks' own arithmetic (bench/): what their figures are divided by and counted from."""

import re

import torch

from bench import suite_timeline
from bench.denormals import denormal_counts
from bench.suite_timeline import file_seconds, replay
from bench.throughput import training_flops_per_image
from mnist_dvc.model import MyConvNet


def test_training_flops_of_myconvnet_by_hand():
    """Multiply-adds of one image: conv1 64x28x28 outputs x 9 = 451,584; conv2 128x14x14 x 576 =
    14,450,688; the linear layers 6272x784 + 784x98 + 98x10 = 4,995,060; 19,897,332 in all, x2
    FLOPs, x3 a training step. Bugs caught: the forward pass only (39.8 M), a convolution's kernel
    size left out, a layer missed."""
    assert training_flops_per_image(MyConvNet()) == 6 * 19_897_332


def test_counts_denormals_but_not_zeros_or_the_smallest_normal():
    """Bugs caught: zeros counted as denormal; the smallest normal float counted (<= tiny);
    negative denormals missed (no abs); the optimizer's moments not looked at."""
    tiny = torch.finfo(torch.float32).tiny
    weights = torch.tensor([0.0, tiny, -tiny, tiny / 2, -tiny / 4, 1.0])
    blob = {"model": {"w": weights, "steps": torch.tensor(3)},
            "optimizer": {"state": {0: {"exp_avg": torch.tensor([tiny / 8, 0.5]),
                                        "step": torch.tensor(7.0)}}}}
    assert denormal_counts(blob) == {"model": {"values": 6, "denormal": 2},
                                     "optimizer": {"values": 3, "denormal": 1}}


def test_replay_hands_out_files_as_xdist_loadfile_does():
    """A worker with no more than two tests left takes the next file at once (xdist's
    LoadScopeScheduling), so here the 10 s file and the 5 s one both land on the first worker.
    Bug caught: a replay that hands files only to an idle worker ([10, 9]) would promise an
    order's gain that xdist does not deliver."""
    files = {"a.py": [10.0], "b.py": [1.0, 1.0, 1.0, 1.0], "c.py": [5.0]}
    assert replay(files, ["a.py", "b.py", "c.py"]) == [15.0, 4.0]
    # b's four tests keep the first worker from taking more; a's one leaves the second ready for c.
    assert replay(files, ["b.py", "a.py", "c.py"]) == [4.0, 15.0]
    # The next file goes to the worker whose test ends first (the second, at 1 s), not to the one
    # looked at first: a replay out of time order gives [16, 4].
    files = {"a.py": [2.0, 2.0, 2.0], "b.py": [1.0, 1.0, 1.0], "c.py": [10.0], "d.py": [1.0]}
    assert replay(files, ["a.py", "b.py", "c.py", "d.py"]) == [7.0, 13.0]


def test_file_seconds_groups_tests_by_file_in_the_order_they_ran():
    rows = [{"test": "tests/x.py::t2", "start": 5.0, "end": 7.5},
            {"test": "tests/y.py::t", "start": 0.0, "end": 1.0},
            {"test": "tests/x.py::t1", "start": 1.0, "end": 2.0}]
    assert file_seconds(rows) == {"tests/y.py": [1.0], "tests/x.py": [1.0, 2.5]}


def test_a_timeline_names_its_machine_and_date_and_read_keeps_the_tests(tmp_path, monkeypatch):
    """The plugin's own lines: each process first writes what ran it and when (a record every
    figure is read from must name its CPU and date, tests/test_docs.py), then one line a test;
    read() returns the tests'. Bug caught: the machine's line read as a test (a KeyError in the
    summary), or no such line at all."""
    monkeypatch.setenv("SUITE_TIMELINE", str(tmp_path / "t.jsonl"))
    suite_timeline.pytest_sessionstart(None)
    suite_timeline._write({"test": "tests/x.py::t", "start": 1.0, "end": 2.5})
    text = (tmp_path / "t.jsonl").read_text()
    assert re.search(r"20\d\d-\d\d-\d\d", text.splitlines()[0]) and "bf16" in text.splitlines()[0]
    assert [row["test"] for row in suite_timeline.read(str(tmp_path / "t.jsonl"))] == ["tests/x.py::t"]
