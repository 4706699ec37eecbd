"""Benchmarks run (no timings asserted): each protocol workload over two TCP processes,
with the measured cost equal to the declared one."""

import pytest

from benchmarks.bench_protocols import WORKLOADS, measure


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_bench_protocols_quick(name):
    row = measure(name, quick=True, repeats=1)
    assert row["declared==measured"] is True
    assert row["online_s"] > 0
