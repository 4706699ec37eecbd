"""Select / ReLU / max / row max from the cross action: references, costs, views."""

import numpy as np
import pytest
from gviews import chi2_same, fixed_seeds, received
from harness import run_and_open
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc.ring import BOOL, DomainMismatch, field, ring
from mpc.shares import ShapeMismatch
from net.local import run_local
from protocols import relu as R

MODES = st.sampled_from(["live", "dealt"])
SHAPES = st.lists(st.integers(1, 5), min_size=0, max_size=3).map(tuple)
ELLS = st.sampled_from([1, 2, 8, 16, 20, 32, 63, 64])


def _vals(rng, ell, shape):
    return ring(ell).reduce(
        rng.integers(0, 2**63, shape, dtype=np.uint64) * np.uint64(2)
        + rng.integers(0, 2, shape, dtype=np.uint64)
    )


def _in(rt, dom, x, owner=1):
    return rt.input(owner, dom, x.shape, x if rt.rank == owner else None)


@settings(max_examples=25, deadline=None)
@given(ell=ELLS, shape=SHAPES, mode=MODES, seed=st.integers(0, 99), sel=st.booleans())
def test_mul_bit_and_select(ell, shape, mode, seed, sel):
    rng = np.random.default_rng(seed)
    s, x, y = rng.integers(0, 2, shape), _vals(rng, ell, shape), _vals(rng, ell, shape)

    def prog(rt):
        ss, xs, ys = _in(rt, BOOL, s, 2), _in(rt, ring(ell), x), _in(rt, ring(ell), y, 2)
        with rt.scope("proto"):
            return R.select(rt, ss, xs, ys) if sel else R.mul_bit(rt, ss, xs)

    out, cost, _ = run_and_open(prog, mode, scope="outer")
    ref = R.reference_select(s, x, y, ell) if sel else R.reference_mul_bit(s, x, ell)
    assert (out == ref).all() and (out == np.where(s == 1, x, y if sel else 0)).all()
    assert cost == R.cost_select(shape, ell) == R.cost_mul_bit(shape, ell)


@settings(max_examples=20, deadline=None)
@given(ell=ELLS, shape=SHAPES, mode=MODES, seed=st.integers(0, 99))
def test_relu(ell, shape, mode, seed):
    x = _vals(np.random.default_rng(seed), ell, shape)

    def prog(rt):
        xs = _in(rt, ring(ell), x)
        with rt.scope("proto"):
            return R.relu(rt, xs)

    out, cost, _ = run_and_open(prog, mode, scope="outer")
    signed = ring(ell).signed(x)
    assert (out == R.reference_relu(x, ell)).all()
    assert (out == np.where(signed > 0, x, 0)).all()
    assert cost == R.cost_relu(shape, ell) and cost.rounds == (1 if ell == 1 else 5)


@settings(max_examples=15, deadline=None)
@given(
    ell=st.sampled_from([4, 8, 20, 32, 64]),
    batch=SHAPES,
    length=st.integers(1, 13),
    mode=MODES,
    seed=st.integers(0, 99),
)
def test_max2_and_row_max(ell, batch, length, mode, seed):
    rng = np.random.default_rng(seed)
    r = ring(ell)
    half = 1 << (ell - 2)  # differences of these values do not wrap
    x = r.reduce(rng.integers(-half, half, batch + (length,), dtype=np.int64))

    def prog(rt):
        return R.row_max(rt, _in(rt, r, x))

    out, cost, _ = run_and_open(prog, mode)
    assert (out == R.reference_row_max(x, ell)).all()
    assert (r.signed(out) == r.signed(x).max(axis=-1)).all()
    assert cost == R.cost_row_max(batch + (length,), ell)
    if length >= 2:

        def prog2(rt):
            xs = _in(rt, r, x)
            with rt.scope("proto"):
                return R.max2(rt, xs[..., 0], xs[..., 1])

        out, cost, _ = run_and_open(prog2, mode, scope="outer")
        assert (out == R.reference_max2(x[..., 0], x[..., 1], ell)).all()
        assert cost == R.cost_max2(batch, ell)


def test_row_max_rounds_overlap():
    """Levels after the first take 4 rounds: the last one-way step of a level and the
    first exchange of the next overlap (Lamport rounds, see compare.rounds_of)."""
    assert [R.cost_row_max((3, L), 16).rounds for L in (2, 3, 4, 8, 128)] == [5, 9, 9, 13, 29]


def test_view_of_select_does_not_depend_on_bit():
    n_el, ell = 5000, 12
    x = np.full(n_el, 77, dtype=np.uint64)
    logs = []
    for bit in (0, 1):
        s = np.full(n_el, bit)

        def prog(rt, s=s):
            return R.mul_bit(rt, _in(rt, BOOL, s, 2), _in(rt, ring(ell), x))

        with fixed_seeds("select-view"), received() as log:
            run_local(prog)
        logs.append(log)
    for rank in (1, 2):
        for (_, va), (_, vb) in zip(logs[0][rank], logs[1][rank], strict=True):
            stat, limit = chi2_same(va, vb)
            assert stat < limit


def test_bad_inputs():
    def run(fn):
        return run_local(fn, timeout=1)

    z = np.zeros(3, dtype=np.uint64)
    with pytest.raises(ShapeMismatch):
        run(lambda rt: R.mul_bit(rt, _in(rt, BOOL, z), _in(rt, ring(8), np.zeros(4, int))))
    with pytest.raises(DomainMismatch):
        run(lambda rt: R.mul_bit(rt, _in(rt, BOOL, z), _in(rt, field(37), z)))
    with pytest.raises(DomainMismatch):
        run(lambda rt: R.mul_bit(rt, _in(rt, ring(2), z), _in(rt, ring(8), z)))
    with pytest.raises(DomainMismatch):
        run(lambda rt: R.relu(rt, _in(rt, field(37), z)))
    with pytest.raises(ShapeMismatch):
        run(lambda rt: R.row_max(rt, _in(rt, ring(8), np.zeros((3, 0), int))))
