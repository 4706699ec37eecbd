"""Secret-table rotation (private and shared tables), lookups through the rotated table,
costs, the view of the non-owner, bad inputs."""

import numpy as np
import pytest
from gviews import chi2_same, fixed_seeds, received
from harness import measured, run_and_open
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc.ring import DomainMismatch, field, ring
from mpc.shares import ShapeMismatch
from net.local import run_local
from protocols import secret_table as S
from protocols.gmodule import shift_domain

MODES = st.sampled_from(["live", "dealt"])
BATCH = st.lists(st.integers(1, 5), min_size=0, max_size=2).map(tuple)
DOMS = st.sampled_from([ring(1), ring(8), ring(20), ring(64), field(37), field(65537)])


def _table(rng, dom, shape):
    return dom.reduce(rng.integers(0, min(dom.modulus, 2**63), shape, dtype=np.uint64))


@settings(max_examples=20, deadline=None)
@given(
    n=st.sampled_from([2, 5, 8, 16, 37, 64]),
    batch=BATCH,
    per_channel=st.booleans(),
    dom=DOMS,
    owner=st.sampled_from([1, 2]),
    mode=MODES,
    seed=st.integers(0, 99),
)
def test_private_table_rotation_and_lookup(n, batch, per_channel, dom, owner, mode, seed):
    rng = np.random.default_rng(seed)
    shape = batch + ((3,) if per_channel else ())
    table = _table(rng, dom, ((3,) if per_channel else ()) + (n,))  # broadcast over the batch
    x = rng.integers(0, n, shape)
    sdom = shift_domain(n)

    def prog(rt):
        xs = rt.input(1, sdom, shape, x if rt.rank == 1 else None)
        with rt.scope("rotate"):
            rot = S.rotate_private_table(
                rt, table if rt.rank == owner else None, dom, shape, n, owner
            )
        with rt.scope("lookup"):
            out = S.lookup(rt, rot, xs)
        return [rot.table, rot.r, out]

    (tp, r, out), _, run = run_and_open(prog, mode, scope="all")
    assert (tp == S.reference_rotated(table, r, dom)).all()  # T'[j] = T[(j + r) mod n]
    assert (out == S.reference_lookup(table, x, dom)).all()  # T'[x - r] = T[x]
    assert measured(run, "all.rotate") == S.cost_rotate_private_table(shape, n, dom, owner)
    assert measured(run, "all.lookup") == S.cost_lookup(shape, n)


@settings(max_examples=15, deadline=None)
@given(n=st.sampled_from([2, 6, 8, 32]), batch=BATCH, dom=DOMS, mode=MODES, seed=st.integers(0, 99))
def test_shared_table_rotation_and_lookup(n, batch, dom, mode, seed):
    rng = np.random.default_rng(seed)
    table = _table(rng, dom, batch + (n,))
    x = rng.integers(0, n, batch)
    sdom = shift_domain(n)

    def prog(rt):
        ts = rt.input(2, dom, table.shape, table if rt.rank == 2 else None)
        xs = rt.input(1, sdom, batch, x if rt.rank == 1 else None)
        with rt.scope("rotate"):
            rot = S.rotate_shared_table(rt, ts)
        return [rot.table, rot.r, S.lookup(rt, rot, xs)]

    (tp, r, out), _, run = run_and_open(prog, mode, scope="all")
    assert (tp == S.reference_rotated(table, r, dom)).all()
    assert (out == S.reference_lookup(table, x, dom)).all()
    assert measured(run, "all.rotate") == S.cost_rotate_shared_table(batch + (n,), dom)


def test_cost_is_per_table_entry():
    c = S.cost_rotate_private_table((1000,), 256, ring(16), owner=2)
    assert c.online == (1000, 1000 * 256 * 2) and c.offline == (0, 1000 * 256 * 2)
    assert c.rounds == 1
    s = S.cost_rotate_shared_table((1000, 256), ring(16))
    assert s.online == (1000 + 512000,) * 2 and s.offline == (0, 1024000)


def test_non_owner_view_does_not_depend_on_table():
    """P1 (not the owner) receives L_{r2} T - T' for uniform T': the same words for two
    different tables; P0 takes no part online."""
    n, k = 16, 3000
    logs = []
    for table in (np.zeros(n, dtype=np.uint64), np.arange(n, dtype=np.uint64) * 5):

        def prog(rt, table=table):
            rot = S.rotate_private_table(rt, table if rt.rank == 2 else None, ring(8), (k,), n)
            return None if rt.is_dealer else rot.table.data

        with fixed_seeds("table-view"), received() as log:
            run = run_local(prog)
        logs.append(log[1])
        assert run.reports[0]["total"]["online_recv"] == 0
    for (_, va), (_, vb) in zip(*logs, strict=True):
        stat, limit = chi2_same(va, vb)
        assert stat < limit


def test_bad_inputs():
    def run(fn):
        return run_local(fn, timeout=1)

    with pytest.raises(ValueError, match="n >= 2"):
        run(lambda rt: S.rotate_private_table(rt, None, ring(8), (3,), 1))
    with pytest.raises(ValueError, match="party"):
        run(lambda rt: S.rotate_private_table(rt, None, ring(8), (3,), 4, owner=0))
    with pytest.raises(ShapeMismatch):  # the owner's (P1's) table does not fit (3, 4)
        run(
            lambda rt: S.rotate_private_table(
                rt, np.zeros((2, 4), int) if rt.rank == 1 else None, ring(8), (3,), 4, owner=1
            )
        )
    with pytest.raises(ShapeMismatch):
        run(
            lambda rt: S.rotate_shared_table(
                rt, rt.input(1, ring(8), (3, 1), np.zeros((3, 1), int) if rt.rank == 1 else None)
            )
        )

    def bad_lookup(rt, dom=None, shape=(4,)):
        dom = dom or ring(3)
        rot = S.rotate_private_table(rt, np.arange(8) if rt.rank == 2 else None, ring(8), (3,), 8)
        return S.lookup(
            rt, rot, rt.input(1, dom, shape, np.zeros(shape, int) if rt.rank == 1 else None)
        )

    with pytest.raises(ShapeMismatch):
        run(bad_lookup)
    with pytest.raises(DomainMismatch):
        run(lambda rt: bad_lookup(rt, ring(4), (3,)))
