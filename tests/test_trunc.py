"""Exact truncation with an arithmetic output, and protocols run side by side."""

import numpy as np
import pytest
from harness import run_and_open
from hypothesis import given, settings
from hypothesis import strategies as st
from test_lut import _input

from mpc.ring import DomainMismatch, ring
from net.local import run_local
from protocols import convert as C
from protocols import onehot as O
from protocols import trunc as T
from protocols.steps import run

MODES = st.sampled_from(["live", "dealt"])
SHAPES = st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple)


@settings(max_examples=60, deadline=None)
@given(
    B=st.integers(2, 64),
    a=st.integers(1, 40),
    k=st.sampled_from([None, 1, 2, 3]),
    shape=SHAPES,
    mode=MODES,
    seed=st.integers(0, 2**32),
)
def test_trunc_matches_reference_and_cost(B, a, k, shape, mode, seed):
    a = min(a, B - 1)
    if k is not None and (k > a or -(-a // k) > 12 or (k == 1 and a > 12)):
        k = None
    rng = np.random.default_rng(seed)
    x = ring(B).reduce(rng.integers(0, 2**63, shape, dtype=np.uint64) * np.uint64(2 + B % 2))
    out, cost, _ = run_and_open(
        lambda rt: T.trunc(rt, _input(rt, ring(B), x), a, carry_digits=k), mode
    )
    assert (out == T.reference_trunc(x, B, a)).all()
    assert cost == T.cost_trunc(shape, B, a, carry_digits=k)
    assert cost.rounds == (2 if len(C.carry_plan(a, k)) == 1 else 3)
    xs = ring(B).signed(x)
    assert (ring(B - a).signed(out) == xs >> a).all()  # the signed floor, exact


@settings(max_examples=60, deadline=None)
@given(
    B=st.integers(4, 64),
    a=st.integers(1, 40),
    extra=st.integers(-3, 30),
    unsigned=st.booleans(),
    shape=SHAPES,
    mode=MODES,
    seed=st.integers(0, 2**32),
)
def test_trunc_out_ring_matches_reference(B, a, extra, unsigned, shape, mode, seed):
    """Any output ring: narrower (mod 2^K) or wider (the exact floor, for x within the
    bound: |x| < 2^(B-2), or 0 <= x < 2^(B-1) unsigned); declared cost measured."""
    a = min(a, B - 2)
    K = max(1, min(64, B - a + extra))
    rng = np.random.default_rng(seed)
    if unsigned:
        x = rng.integers(0, 2 ** (B - 1), shape, dtype=np.uint64)
    else:
        h = 2 ** (B - 2)
        x = ring(B).reduce(rng.integers(-h, h, shape, dtype=np.int64))
    x[..., 0] = 0 if unsigned else ring(B).reduce(np.int64(-(2 ** (B - 2))))  # an edge
    out, cost, _ = run_and_open(
        lambda rt: T.trunc(rt, _input(rt, ring(B), x), a, out_bits=K, unsigned=unsigned), mode
    )
    assert (out == T.reference_trunc(x, B, a, out_bits=K, unsigned=unsigned)).all()
    assert cost == T.cost_trunc(shape, B, a, out_bits=K)
    v = x.astype(np.int64) if unsigned else ring(B).signed(x)
    if K > B - a:
        assert (ring(K).signed(out) == v >> a).all()  # the exact floor in the wider ring


def test_side_by_side_rounds_are_the_max():
    """A 3-round truncation and a 2-round one-hot requant in lock-step: 3 rounds, same
    outputs and bytes as one after the other."""
    rng = np.random.default_rng(1)
    x = ring(30).reduce(rng.integers(-(2**29), 2**29, 50))
    y = ring(12).reduce(rng.integers(-(2**11), 2**11, 7))
    t = C.requant_table(None, 8, lo=-100, hi=100)

    def prog(rt):
        xs, ys = _input(rt, ring(30), x), _input(rt, ring(12), y)
        a, (b,) = run(rt, T.trunc_steps(rt, xs, 20), O.requant_steps(rt, ys, 4, [(t, 16)]))
        return [a, b]

    (a, b), cost, _ = run_and_open(prog)
    assert (a == T.reference_trunc(x, 30, 20)).all()
    assert (b == O.reference_requant(y, 12, 4, [(t, 16)])[0]).all()
    side = T.cost_trunc((50,), 30, 20) | O.cost_requant((7,), 12, 4, [(t, 16)])
    assert cost == side and cost.rounds == 3


def test_bad_inputs():
    with pytest.raises(ValueError):
        run_local(lambda rt: T.trunc(rt, _input(rt, ring(8), np.zeros(3, np.uint64)), 8))
    with pytest.raises(DomainMismatch):
        run_local(lambda rt: T.trunc(rt, np.zeros(3, np.uint64), 2))
