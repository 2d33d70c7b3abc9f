"""The benchmark's pure helpers (bench/stats.py): no root, no processes."""
from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import stats


# --- interleaving --------------------------------------------------------------

def test_schedule_runs_one_of_each_per_round() -> None:
    order = stats.interleaved_schedule(["a", "b", "c"], 4)
    assert len(order) == 12
    for r in range(4):
        assert sorted(order[3 * r:3 * r + 3]) == ["a", "b", "c"]


def test_schedule_rotates_the_first_runtime() -> None:
    assert stats.interleaved_schedule(["a", "b", "c"], 4) == [
        "a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c"]


def test_schedule_without_rotation_is_plain_abab() -> None:
    assert stats.interleaved_schedule(["a", "b"], 3, rotate=False) == ["a", "b"] * 3


def test_schedule_never_runs_one_runtime_twice_in_a_row_for_two() -> None:
    # With rotation, two runtimes meet at round boundaries (a b | b a); that is
    # the price of not always running a first.  Each still runs once a round.
    order = stats.interleaved_schedule(["a", "b"], 5)
    assert order.count("a") == order.count("b") == 5


def test_schedule_edge_cases() -> None:
    assert stats.interleaved_schedule([], 3) == []
    assert stats.interleaved_schedule(["a"], 0) == []
    with pytest.raises(ValueError):
        stats.interleaved_schedule(["a"], -1)


# --- summaries -----------------------------------------------------------------

def test_median_odd_and_even() -> None:
    assert stats.median([3.0, 1.0, 2.0]) == 2.0
    assert stats.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert stats.median([7]) == 7.0


def test_median_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        stats.median([])


def test_summarize() -> None:
    s = stats.summarize([0.010, 0.030, 0.020, 0.100])
    assert (s.n, s.min, s.max) == (4, 0.010, 0.100)
    assert s.median == pytest.approx(0.025)
    assert s.as_dict() == {"n": 4, "median": s.median, "min": 0.010, "max": 0.100}


def test_ratio() -> None:
    assert stats.ratio(20.0, 10.0) == 2.0
    assert stats.ratio(None, 10.0) is None
    assert stats.ratio(5.0, None) is None
    assert stats.ratio(5.0, 0.0) is None


def test_formatting() -> None:
    assert stats.format_ratio(0.456) == "0.46x"
    assert stats.format_ratio(None) == "-"
    assert stats.format_ms(0.0123) == "12.3"
    assert stats.format_ms(None) == "-"


def test_pid_file_as_runc_writes_it() -> None:
    assert stats.parse_pid_file("4242") == 4242          # runc: no newline
    assert stats.parse_pid_file("4242\n") == 4242


@pytest.mark.parametrize("text", ["", "\n", "0", "-5", " 42", "42\n\n", "4 2", "42x", "\u0664\u0662"])
def test_pid_file_that_is_not_one_is_an_error(text: str) -> None:
    with pytest.raises(ValueError):
        stats.parse_pid_file(text)


def test_median_by_key_keeps_order_and_sums_repeats() -> None:
    runs = [
        [("clone", 2.0), ("state", 5.0), ("clone", 1.0)],
        [("clone", 4.0), ("state", 3.0)],
        [("clone", 2.0), ("state", 4.0), ("extra", 9.0)],
    ]
    assert stats.median_by_key(runs) == [("clone", 3.0), ("state", 4.0), ("extra", 9.0)]


# --- subnets -------------------------------------------------------------------

def test_free_subnet_skips_used_networks_and_addresses() -> None:
    used = ["default", "10.213.47.0/24", "10.199.83.7/16", "fe80::/64", "garbage", ""]
    assert stats.choose_free_subnet(used) == ipaddress.IPv4Network("172.30.241.0/24")


def test_free_subnet_overlap_with_a_wide_route() -> None:
    used = ["10.0.0.0/8", "172.16.0.0/12"]
    assert stats.choose_free_subnet(used) == ipaddress.IPv4Network("192.168.231.0/24")


def test_no_free_subnet() -> None:
    with pytest.raises(LookupError):
        stats.choose_free_subnet(["0.0.0.0/1", "128.0.0.0/1"])


# --- nsinit's reports ------------------------------------------------------------

def test_parse_trace() -> None:
    text = ("nsinit: trace: stdio: 0.02 ms\n"
            "nsinit: trace: wait for parent: 2.99 ms\n"
            "nsinit: warning: something else\n"
            "nsinit: trace: prepare rootfs: 0.34 ms\n")
    assert stats.parse_trace(text) == [("stdio", 0.02), ("wait for parent", 2.99), ("prepare rootfs", 0.34)]


IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       265 |        265 |   _io
import time:       392 |       1101 | _frozen_importlib_external
import time:       857 |       1729 | encodings
import time:      1217 |      10526 |     pathlib
import time:       571 |      16639 |   __editable___nsinit_0_1_0_finder
import time:       248 |      13809 |   certifi
import time:      1674 |      39673 | site
import time:       249 |        443 | nsinit.cli
import time:      1496 |       1686 | docopt
import time:      3287 |       3287 |   nsinit.identity
import time:      3707 |      50610 | nsinit.container
import time:     90000 |     300000 | pyroute2
import time:       100 |        200 | ipaddress
"""


def test_parse_importtime_depths() -> None:
    records = stats.parse_importtime(IMPORTTIME)
    assert [(r.name, r.depth) for r in records][:4] == [
        ("_io", 1), ("_frozen_importlib_external", 0), ("encodings", 0), ("pathlib", 2)]
    assert records[-1] == stats.ImportRecord("ipaddress", 100, 200, 0)


def test_import_groups() -> None:
    groups = stats.import_groups(stats.parse_importtime(IMPORTTIME))
    assert groups["interpreter bootstrap (encodings, io, ...)"] == pytest.approx(1.101 + 1.729)
    assert groups["site (.pth files, sitecustomize)"] == pytest.approx(39.673)
    assert groups["nsinit modules (+ stdlib they import)"] == pytest.approx(0.443 + 50.610)
    assert groups["docopt"] == pytest.approx(1.686)
    assert groups["pyroute2"] == pytest.approx(300.0)
    assert groups["other (imported inside functions)"] == pytest.approx(0.2)


def test_top_self() -> None:
    top = stats.top_self(stats.parse_importtime(IMPORTTIME), 2)
    assert top == [("pyroute2", 90.0), ("nsinit.container", 3.707)]
