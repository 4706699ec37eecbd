"""Precision conversion (stochastic and exact requant) and ring extension / dual views."""

import numpy as np
import pytest
from harness import run_and_open
from hypothesis import given, settings
from hypothesis import strategies as st
from test_lut import _chi2_crit, _input, deterministic_seeds, record_exchanges

from mpc.ring import DomainMismatch, field, ring
from mpc.shares import Dual, Shared
from net.local import run_local
from net.runtime import Runtime
from protocols import convert as C
from protocols import lut as L
from protocols.steps import run

MODES = st.sampled_from(["live", "dealt"])
SHAPES = st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple)


def _acc(rng, B, shape):
    """Signed accumulator values with |acc| < 2^(B-1), canonical in Z_2^B."""
    half = 1 << (B - 1)
    return ring(B).reduce(
        rng.integers(-half, half, shape, dtype=np.int64)
        if B <= 63
        else rng.integers(0, 2**63, shape, dtype=np.uint64)
    )


def _delta(log, B):
    """The opened delta of the first exchange of P1 (the acc - r opening)."""
    (sent,), (got,) = [(s, g) for r, s, g in log if r == 1][0]
    return ring(B).add(sent, got)


def _tables(rng, hb, m):
    t1 = C.requant_table(lambda v: np.maximum(v, 0), hb, out_scale=0.5, lo=-128, hi=127)
    t2 = rng.integers(0, 1 << min(m, 62), 1 << hb, dtype=np.int64)
    return [(t1, ring(8)), (t2, ring(m))]


# -- requant --------------------------------------------------------------------------------
@settings(max_examples=100, deadline=None)
@given(
    B=st.integers(2, 64),
    hb=st.integers(1, 9),
    m=st.integers(1, 64),
    shape=SHAPES,
    mode=MODES,
    seed=st.integers(0, 2**32),
)
def test_requant_stochastic_matches_reference(B, hb, m, shape, mode, seed):
    hb = min(hb, B - 1)
    c = B - hb
    rng = np.random.default_rng(seed)
    acc = _acc(rng, B, shape)
    tables = _tables(rng, hb, m)
    with record_exchanges() as log:
        out, cost, _ = run_and_open(
            lambda rt: C.requant(rt, _input(rt, ring(B), acc), c, tables), mode
        )
    r_low = ring(c).reduce(ring(B).sub(acc, _delta(log, B)))  # recompute the mask's low bits
    for o, want in zip(out, C.reference_requant(acc, B, c, tables, r_low=r_low), strict=True):
        assert (o == want).all()
    assert cost == C.cost_requant(shape, B, c, [ring(8), ring(m)])


@st.composite
def exact_params(draw):
    hb = draw(st.integers(1, 7))
    c = draw(st.integers(1, 40))
    k = draw(st.sampled_from([None, 1, 2, 3, 4, 6]))
    if k is not None and (k > c or -(-c // k) > 12 or (k == 1 and c > 12)):
        k = None
    return hb + c, c, k


@settings(max_examples=100, deadline=None)
@given(p=exact_params(), m=st.integers(1, 64), shape=SHAPES, mode=MODES, seed=st.integers(0, 2**32))
def test_requant_exact_matches_reference(p, m, shape, mode, seed):
    B, c, k = p
    rng = np.random.default_rng(seed)
    acc = _acc(rng, B, shape)
    tables = _tables(rng, B - c, m)
    out, cost, _ = run_and_open(
        lambda rt: C.requant(rt, _input(rt, ring(B), acc), c, tables, exact=True, carry_digits=k),
        mode,
    )
    for o, want in zip(out, C.reference_requant(acc, B, c, tables, exact=True), strict=True):
        assert (o == want).all()
    assert cost == C.cost_requant(shape, B, c, [ring(8), ring(m)], exact=True, carry_digits=k)
    assert cost.rounds == (2 if len(C.carry_plan(c, k)) == 1 else 3)


def test_requant_exact_carry_edges():
    """Carry chains through propagate digits: low bits all ones, zero, and 2^c - 1 + 1."""
    B, c = 22, 15
    vals = [
        0,
        1,
        (1 << c) - 1,
        1 << c,
        (1 << c) + 1,
        -1,
        -(1 << c),
        -(1 << c) - 1,
        (1 << (B - 1)) - 1,
        -(1 << (B - 1)),
        12345,
        -54321,
    ]
    acc = ring(B).reduce(np.array(vals * 20))
    t = C.requant_table(None, B - c, lo=-64, hi=63)
    for k in (1, 2, 3, 5):
        out, _, _ = run_and_open(
            lambda rt, k=k: C.requant(
                rt,
                _input(rt, ring(B), acc, owner=2),
                c,
                [(t, ring(7))],
                exact=True,
                carry_digits=k,
                max_index_bits=15,
            )
        )
        assert (out == C.reference_requant(acc, B, c, [(t, ring(7))], exact=True)[0]).all()
    assert (ring(7).signed(out[:12]) == np.array(vals) >> c).all()


def test_requant_stochastic_rounding_is_unbiased():
    """P(round up) = (acc mod 2^c) / 2^c: mean output index equals acc / 2^c."""
    B, c, n = 12, 4, 8000
    lows = np.array([0, 1, 5, 8, 15])
    acc = ring(B).reduce(np.repeat(lows - 3 * 16, n))  # floor(acc/16) = -3
    t = C.requant_table(None, B - c)
    with deterministic_seeds("requant-bias"):
        out, _, _ = run_and_open(
            lambda rt: C.requant(rt, _input(rt, ring(B), acc), c, [(t, ring(B - c))])
        )
    got = ring(B - c).signed(out).reshape(len(lows), n).mean(axis=1)
    want = (lows - 48) / 16
    assert np.abs(got - want).max() < 4 * np.sqrt(0.25 / n)
    assert (ring(B - c).signed(out).reshape(len(lows), n)[0] == -3).all()  # exact when low=0


def test_requant_exact_views_uniform():
    """The opened delta, masked carry-state codes z and masked carry bit t are uniform and look
    the same whatever acc is (low bits all zero vs all ones: carry never vs often)."""
    B, c, n = 20, 14, 6000
    t = C.requant_table(None, B - c, lo=-32, hi=31)
    views = {}
    for v in (0, (1 << c) - 1):
        acc = np.full(n, v, dtype=np.uint64)
        with deterministic_seeds(f"exact-view-{v}"), record_exchanges() as log:
            run_local(
                lambda rt, acc=acc: C.requant(
                    rt, _input(rt, ring(B), acc), c, [(t, ring(6))], exact=True, carry_digits=2
                )
            )
        _, (zs, zo), (ts, to) = [(s[0], g[0]) for r, s, g in log if r == 1]

        def codes(bits):  # per digit 2 ge + eq of the opened (ge, eq) bit pairs
            return 2 * bits[:, 0::2].astype(np.int64) + bits[:, 1::2]

        views[v] = {
            "z": codes(zs ^ zo),
            "t": ts ^ to,
            "dlow": ring(8).reduce(_delta(log, B)),
            "recv": codes(zo),
        }
    crit = _chi2_crit
    for name, bins in (("z", 4), ("t", 2), ("dlow", 256), ("recv", 4)):
        h0, h1 = (
            np.bincount(views[v][name].ravel().astype(np.int64), minlength=bins) for v in views
        )
        e = h0.sum() / bins
        assert ((h0 - e) ** 2 / e).sum() < crit(bins - 1), name
        assert ((h1 - e) ** 2 / e).sum() < crit(bins - 1), name
        assert ((h0 - h1) ** 2 / np.maximum(h0 + h1, 1)).sum() < crit(bins - 1), name


def test_requant_table_semantics():
    t = C.requant_table(None, 4, in_scale=2.0, out_scale=3.0, zero_point=1, lo=-4, hi=5)
    h = np.array(list(range(8)) + list(range(-8, 0)))
    assert t.tolist() == np.clip(np.rint(h * 2.0 / 3.0) + 1, -4, 5).astype(int).tolist()
    g = C.requant_table(np.tanh, 6, in_scale=1 / 8, out_scale=1 / 127, lo=-100, hi=127)
    hs = np.array(list(range(32)) + list(range(-32, 0)))
    assert g.tolist() == np.clip(np.rint(np.tanh(hs / 8) * 127), -100, 127).astype(int).tolist()


# -- extend / dual --------------------------------------------------------------------------
@settings(max_examples=100, deadline=None)
@given(
    k=st.integers(1, 12),
    extra=st.integers(1, 52),
    signed=st.booleans(),
    shape=SHAPES,
    mode=MODES,
    seed=st.integers(0, 2**32),
)
def test_extend_matches_reference(k, extra, signed, shape, mode, seed):
    B = min(64, k + extra)
    rng = np.random.default_rng(seed)
    x = ring(k).reduce(rng.integers(0, 1 << k, shape))
    out, cost, _ = run_and_open(lambda rt: C.extend(rt, _input(rt, ring(k), x), B, signed), mode)
    assert (out == C.reference_extend(x, k, B, signed)).all()
    assert cost == C.cost_extend(shape, k, B)


@pytest.mark.parametrize("mode", ["live", "dealt"])
def test_to_dual_both_directions(mode):
    rng = np.random.default_rng(3)
    x8 = ring(8).reduce(rng.integers(-128, 128, (5, 4)))
    w = ring(24).reduce(rng.integers(-(2**23), 2**23, (5, 4)))

    def prog(rt):
        d1 = C.to_dual(rt, _input(rt, ring(8), x8), 8, 24)
        d2 = C.to_dual(rt, _input(rt, ring(24), w), 8, 24)
        assert isinstance(d1, Dual) and d1.wide.dom == ring(24) and d2.narrow.dom == ring(8)
        return [d1.narrow, d1.wide, d2.narrow, d2.wide]

    (n1, w1, n2, w2), cost, _ = run_and_open(prog, mode)
    assert (n1 == x8).all() and (w1 == C.reference_extend(x8, 8, 24)).all()
    assert (n2 == w & 255).all() and (w2 == w).all()
    assert cost == C.cost_extend((5, 4), 8, 24)  # the wide -> narrow direction is free


@settings(max_examples=100, deadline=None)
@given(
    k=st.integers(2, 63),
    extra=st.integers(1, 62),
    shape=SHAPES,
    mode=MODES,
    seed=st.integers(0, 2**32),
)
def test_extend_bounded_matches_reference(k, extra, shape, mode, seed):
    B = min(64, k + extra)
    if B <= k:
        return
    rng = np.random.default_rng(seed)
    q = 1 << (k - 2)
    x = rng.integers(-q, q, shape, dtype=np.int64)
    x.reshape(-1)[0] = rng.choice([-q, q - 1])  # the range's ends
    x = ring(k).reduce(x)
    out, cost, _ = run_and_open(lambda rt: C.extend_bounded(rt, _input(rt, ring(k), x), B), mode)
    assert (out == C.reference_extend_bounded(x, k, B)).all()
    assert cost == C.cost_extend_bounded(shape, k, B)


def test_extend_bounded_view_uniform():
    """The opened delta (top 4 bits) is uniform whatever x: 0, the range's top, its bottom."""
    k, n = 34, 6000
    hs = []
    for v in (0, (1 << (k - 2)) - 1, -(1 << (k - 2))):
        x = ring(k).reduce(np.full(n, v, dtype=np.int64))
        with deterministic_seeds(f"extend-view-{v}"), record_exchanges() as log:
            run_local(lambda rt, x=x: C.extend_bounded(rt, _input(rt, ring(k), x), 48))
        hs.append(np.bincount((_delta(log, k) >> np.uint64(k - 4)).astype(np.int64), minlength=16))
    for h in hs:
        e = h.sum() / 16
        assert ((h - e) ** 2 / e).sum() < _chi2_crit(15)
    with pytest.raises(ValueError, match="2\\^32"):
        C.reference_extend_bounded(np.array([1 << 32], dtype=np.uint64), k, 48)


# -- bad inputs -----------------------------------------------------------------------------
def test_bad_inputs_raise_before_any_message():
    rt = Runtime(1, None, session=0)  # no transport, no seeds: using either would fail
    acc = Shared(ring(20), np.zeros(3, dtype=np.uint64), 1)
    t12 = np.zeros(1 << 12, dtype=np.int64)
    with pytest.raises(ValueError, match="shape"):
        C.requant(rt, acc, 8, [(np.zeros(1000, dtype=np.int64), ring(8))])
    with pytest.raises(ValueError, match="shape"):
        C.requant(rt, acc, 9, [(t12, ring(8))])  # 2^11 expected
    with pytest.raises(ValueError, match="shift"):
        C.requant(rt, acc, 20, [(np.zeros(1), ring(8))])
    with pytest.raises(ValueError, match="2\\^13"):
        C.requant(rt, acc, 8, [(t12, ring(8))], exact=True)  # 2-column table of 2^13
    with pytest.raises(ValueError, match="2\\^17"):
        C.requant(
            rt,
            Shared(ring(30), np.zeros(3, dtype=np.uint64), 1),
            13,
            [(np.zeros(1 << 17, dtype=np.int64), ring(8))],
        )
    with pytest.raises(ValueError, match="range"):
        C.requant(rt, acc, 12, [(np.full(256, 300), ring(8))])
    with pytest.raises(ValueError, match="carry digits"):
        C.requant(
            rt, acc, 14, [(np.zeros(64, dtype=np.int64), ring(8))], exact=True, carry_digits=1
        )
    with pytest.raises(DomainMismatch):
        C.requant(rt, Shared.phantom(field(131), (3,)), 2, [(np.zeros(128), ring(8))])
    with pytest.raises(DomainMismatch):
        C.extend(rt, Shared(ring(8), np.zeros(3, dtype=np.uint64), 1), 8)
    with pytest.raises(ValueError, match="2\\^17"):
        C.extend(rt, Shared.phantom(ring(17), (3,)), 30)
    with pytest.raises(DomainMismatch):
        C.extend_bounded(rt, acc, 20)
    with pytest.raises(DomainMismatch):
        C.extend_bounded(rt, Shared(ring(1), np.zeros(3, dtype=np.uint64), 1), 8)
    with pytest.raises(DomainMismatch):
        C.to_dual(rt, acc, 8, 16)
    with pytest.raises(DomainMismatch):
        C.to_dual(rt, acc, 20, 8)
    assert L.MAX_INDEX_BITS == 16


# -- exact requant revealed under dealer masks ------------------------------------------------
def _masked(B, c, k, acc, t, dom, owner=1):
    def prog(rt):
        x = _input(rt, ring(B), acc, owner=owner)
        y = run(rt, C.requant_masked_steps(rt, x, c, t, dom, carry_digits=k))[0]
        return y.shared(rt, acc.shape)

    return prog


@settings(max_examples=60, deadline=None)
@given(p=exact_params(), m=st.integers(1, 64), shape=SHAPES, mode=MODES, seed=st.integers(0, 2**32))
def test_requant_masked_matches_reference(p, m, shape, mode, seed):
    """pub[t] - lam[t] reconstructs T[floor(acc / 2^c)] exactly; declared cost measured."""
    B, c, k = p
    rng = np.random.default_rng(seed)
    acc = _acc(rng, B, shape)
    t = rng.integers(0, 1 << min(m, 62), 1 << (B - c), dtype=np.int64)
    out, cost, _ = run_and_open(_masked(B, c, k, acc, t, ring(m)), mode)
    assert (out == C.reference_requant(acc, B, c, [(t, ring(m))], exact=True)[0]).all()
    assert cost == C.cost_requant_masked(shape, B, c, ring(m), carry_digits=k)
    assert cost.rounds == (2 if len(C.carry_plan(c, k)) == 1 else 3)


def test_requant_masked_views_uniform():
    """The masked candidates a party receives are uniform whatever acc is (one table entry
    everywhere vs a table whose neighbours differ), as are the carry bit and delta."""
    B, c, n, m = 14, 8, 6000, 6
    views = {}
    for v, t in ((0, np.zeros(1 << (B - c), np.int64)), ((1 << c) - 1, np.arange(1 << (B - c)))):
        acc = np.full(n, v, dtype=np.uint64)
        with deterministic_seeds(f"masked-view-{v}"), record_exchanges() as log:
            run_local(_masked(B, c, 1, acc, t % (1 << m), ring(m)))
        (ds,), (do,) = [(s, g) for r, s, g in log if r == 1][0]
        (ts, cs), (to, co) = [(s, g) for r, s, g in log if r == 1][1]
        views[v] = {"cand": co.ravel() % (1 << m), "t": to.ravel() & 1, "dlow": do % 64}
    crit = _chi2_crit
    for name, bins in (("cand", 1 << m), ("t", 2), ("dlow", 64)):
        h0, h1 = (np.bincount(views[v][name].astype(np.int64), minlength=bins) for v in views)
        e = h0.sum() / bins
        assert ((h0 - e) ** 2 / e).sum() < crit(bins - 1), name
        assert ((h1 - e) ** 2 / e).sum() < crit(bins - 1), name
        assert ((h0 - h1) ** 2 / np.maximum(h0 + h1, 1)).sum() < crit(bins - 1), name
