"""tests/file_order.py: the files handed to the xdist workers longest first."""

from pathlib import Path

from file_order import UNKNOWN_S, longest_files_first


class Item:
    """What longest_files_first reads of a pytest item."""

    def __init__(self, nodeid: str, e2e: bool = False):
        self.nodeid, self.path, self.e2e = nodeid, Path(nodeid.split("::")[0]), e2e

    def get_closest_marker(self, name):
        return name == "e2e" and self.e2e or None


def test_files_go_longest_first_by_the_sum_of_their_tests_keeping_their_own_order():
    """Bugs caught: files sorted by their longest test (one 8 s test would go before four of
    3 s), shortest first, or a file's tests reordered or split up."""
    items = [Item("a.py::one"), Item("b.py::x1"), Item("b.py::x2"), Item("b.py::x3"),
             Item("b.py::x4"), Item("c.py::slow")]
    durations = {"a.py::one": 1.0, "b.py::x1": 3.0, "b.py::x2": 3.0, "b.py::x3": 3.0,
                 "b.py::x4": 3.0, "c.py::slow": 8.0}
    longest_files_first(items, durations)
    assert [item.nodeid for item in items] == ["b.py::x1", "b.py::x2", "b.py::x3", "b.py::x4",
                                               "c.py::slow", "a.py::one"]


def test_a_test_not_on_record_counts_by_its_kind():
    """A new end-to-end file (not in tests/durations.json) goes before short files on record, a
    new unit test after them. Bug caught: unknown tests counted as 0 s, so a new file that builds
    DVC repos went last and ran alone."""
    items = [Item("known.py::t"), Item("new_unit.py::t"), Item("new_e2e.py::t", e2e=True)]
    longest_files_first(items, {"known.py::t": 2.0})
    assert [item.nodeid for item in items] == ["new_e2e.py::t", "known.py::t", "new_unit.py::t"]
    assert UNKNOWN_S["other"] < 2.0 < UNKNOWN_S["e2e"]
