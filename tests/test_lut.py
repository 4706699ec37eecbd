"""Lookup tables: one-input, multi-input, dual output, one-hot variant; costs; views."""

import collections
import hashlib
import sys
import threading
from contextlib import contextmanager

import numpy as np
import pytest
from harness import run_and_open
from hypothesis import given, settings
from hypothesis import strategies as st

import net.runtime as runtime_mod
from mpc.ring import DomainMismatch, Ring, field, ring
from mpc.shares import Dual, ShapeMismatch, Shared
from net.local import run_local
from net.runtime import Runtime
from protocols import lut as L

MODES = st.sampled_from(["live", "dealt"])
SHAPES = st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple)


def _outs(out):
    return out if isinstance(out, list) else [out]


def _table(rng, b, dom):
    if dom.bits == 64 and rng.integers(2):
        return rng.integers(0, 2**63, 1 << b, dtype=np.uint64) * np.uint64(2)
    if isinstance(dom, Ring) and dom.bits < 63 and rng.integers(2):  # negative entries
        return rng.integers(-(dom.modulus // 2), dom.modulus // 2, 1 << b, dtype=np.int64)
    return rng.integers(0, min(dom.modulus, 2**62), 1 << b, dtype=np.int64)


@st.composite
def out_doms(draw):
    return draw(st.sampled_from([ring(draw(st.integers(1, 64))), field(131), field(65537)]))


@contextmanager
def deterministic_seeds(tag: str):
    """Make fresh seeds deterministic for statistical tests: each seed is derived from the
    calling function, the caller's party and a per-caller counter, so the party threads'
    scheduling does not matter."""
    import protocols.convert as convert_mod

    lock, counts = threading.Lock(), collections.Counter()

    def seed():
        loc = sys._getframe(1).f_locals
        owner = loc.get("rt") or getattr(loc.get("self"), "rt", None) or loc.get("self")
        key = (sys._getframe(1).f_code.co_name, getattr(owner, "rank", None), loc.get("party"))
        with lock:
            i = counts[key]
            counts[key] += 1
        return hashlib.blake2b(f"{tag}/{key}/{i}".encode(), digest_size=16).digest()

    mods = (runtime_mod, convert_mod)
    old = [m.fresh_seed for m in mods]
    for m in mods:
        m.fresh_seed = seed
    try:
        yield
    finally:
        for m, o in zip(mods, old, strict=True):
            m.fresh_seed = o


@contextmanager
def record_exchanges():
    """Record (rank, sent arrays, received arrays) of every exchange."""
    log, old = [], Runtime.exchange

    def wrapped(self, items):
        got = old(self, items)
        log.append((self.rank, [a.copy() for _, a in items], [g.copy() for g in got]))
        return got

    Runtime.exchange = wrapped
    try:
        yield log
    finally:
        Runtime.exchange = old


def _input(rt, dom, x, owner=1):
    return rt.input(owner, dom, x.shape, x if rt.rank == owner else None)


# -- one-input ------------------------------------------------------------------------------
@settings(max_examples=100, deadline=None)
@given(
    b=st.integers(1, 10),
    extra=st.integers(0, 10),
    shape=SHAPES,
    doms=st.lists(out_doms(), min_size=1, max_size=3),
    mode=MODES,
    seed=st.integers(0, 2**32),
)
def test_lut_matches_reference_and_cost(b, extra, shape, doms, mode, seed):
    rng = np.random.default_rng(seed)
    k = b + extra
    x = ring(k).reduce(rng.integers(0, 2**63, shape, dtype=np.uint64))
    tables = [(_table(rng, b, d), d) for d in doms]

    def prog(rt):
        return L.lut(rt, _input(rt, ring(k), x), tables, bits=b)

    out, cost, _ = run_and_open(prog, mode)
    for o, r in zip(_outs(out), L.reference_lut(x, tables, b), strict=True):
        assert o.dtype == np.uint64 and (o == r).all()
    assert cost == L.cost_lut(shape, b, doms)


def test_signed_table_indexing():
    t = L.signed_table(lambda s: 2 * s + 1, 4)
    assert t.tolist() == [2 * s + 1 for s in list(range(8)) + list(range(-8, 0))]
    assert L.unsigned_table(lambda j: j * j, 3).tolist() == [j * j for j in range(8)]
    with pytest.raises(TypeError):
        L.signed_table(lambda s: s / 2, 4)
    x = np.array([0, 1, 127, 128, 255], dtype=np.uint64)  # int8 0, 1, 127, -128, -1
    tab = L.signed_table(lambda s: np.maximum(s, 0), 8)
    out, _, _ = run_and_open(lambda rt: L.lut(rt, _input(rt, ring(8), x), [(tab, ring(16))]))
    assert out.tolist() == [0, 1, 127, 0, 0]


@pytest.mark.parametrize("mode", ["live", "dealt"])
def test_lut_dual(mode):
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (9, 7)).astype(np.uint64)
    t = L.signed_table(lambda s: np.clip(3 * s, -128, 127), 8)
    t2 = L.signed_table(lambda s: np.clip(s // 2, -128, 127), 8)
    for narrow_table in (None, t2):

        def prog(rt, nt=narrow_table):
            d = L.lut_dual(rt, _input(rt, ring(8), x), t, 8, 20, narrow_table=nt)
            assert isinstance(d, Dual) and d.narrow.dom == ring(8) and d.wide.dom == ring(20)
            return [d.narrow, d.wide]

        (nar, wide), cost, _ = run_and_open(prog, mode)
        assert (wide == L.reference_lut(x, [(t, ring(20))], 8)[0]).all()
        want_n = L.reference_lut(x, [(t if narrow_table is None else t2, ring(8))], 8)[0]
        assert (nar == want_n).all()
        assert cost == L.cost_lut_dual(x.shape, 8, 8, 20, two_tables=narrow_table is not None)


# -- multi-input ----------------------------------------------------------------------------
@settings(max_examples=80, deadline=None)
@given(
    bits=st.lists(st.integers(1, 5), min_size=1, max_size=3).filter(lambda b: sum(b) <= 12),
    shape=SHAPES,
    m=st.integers(1, 64),
    mode=MODES,
    seed=st.integers(0, 2**32),
)
def test_lut_multi_matches_reference_and_cost(bits, shape, m, mode, seed):
    rng = np.random.default_rng(seed)
    xs = [ring(b + 2).reduce(rng.integers(0, 2**20, shape)) for b in bits]
    t = _table(rng, sum(bits), ring(m)).reshape([1 << b for b in bits])
    t2 = rng.integers(0, 256, t.shape)

    def prog(rt):
        ins = [
            _input(rt, ring(b + 2), x, owner=1 + i % 2)
            for i, (b, x) in enumerate(zip(bits, xs, strict=True))
        ]
        return L.lut_multi(rt, ins, [(t, ring(m)), (t2, ring(8))], bits=bits)

    out, cost, _ = run_and_open(prog, mode)
    for o, r in zip(
        out, L.reference_lut_multi(xs, [(t, ring(m)), (t2, ring(8))], bits), strict=True
    ):
        assert (o == r).all()
    assert cost == L.cost_lut_multi(shape, bits, [ring(m), ring(8)])


def test_lut_multi_size_limit():
    x = np.arange(6, dtype=np.uint64).reshape(2, 3)
    big = np.zeros((1 << 7, 1 << 6), dtype=np.int64)
    big[5, 4] = 77
    rt = Runtime(1, None, session=0)  # any message or seed use would fail differently
    xs = [Shared(ring(7), x, 1), Shared(ring(6), x, 1)]
    with pytest.raises(ValueError, match="2\\^13"):
        L.lut_multi(rt, xs, [(big, ring(8))])
    with pytest.raises(ValueError, match="2\\^18"):
        L.lut_multi(
            rt,
            [Shared(ring(9), x, 1)] * 2,
            [(np.zeros((512, 256), int), ring(8))],
            max_index_bits=20,
        )

    def prog(rt):
        a, b = _input(rt, ring(7), x + 2), _input(rt, ring(6), x + 1, owner=2)
        return L.lut_multi(rt, [a, b], [(big, ring(8))], max_index_bits=13)

    out, cost, _ = run_and_open(prog)
    assert out.tolist() == [[0, 0, 0], [77, 0, 0]]
    assert cost == L.cost_lut_multi(x.shape, [7, 6], [ring(8)])


# -- one-hot variant ------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    b=st.integers(1, 8),
    ms=st.lists(st.integers(1, 64), min_size=1, max_size=2),
    shape=SHAPES,
    mode=MODES,
    seed=st.integers(0, 2**32),
)
def test_lut_onehot_matches_reference_and_cost(b, ms, shape, mode, seed):
    rng = np.random.default_rng(seed)
    x = ring(b).reduce(rng.integers(0, 1 << b, shape))
    tables = [(_table(rng, b, ring(m)), m) for m in ms]

    out, cost, _ = run_and_open(lambda rt: L.lut_onehot(rt, _input(rt, ring(b), x), tables), mode)
    for o, r in zip(_outs(out), L.reference_lut_onehot(x, tables, b), strict=True):
        assert (o == r).all()
    assert cost == L.cost_lut_onehot(shape, b, ms)


# -- views ----------------------------------------------------------------------------------
def _chi2_crit(df, z=4.0):
    """Wilson-Hilferty upper quantile of chi^2_df at about 3e-5."""
    a = 2.0 / (9 * df)
    return df * (1 - a + z * np.sqrt(a)) ** 3


def test_lut_view_is_uniform_whatever_x():
    """What P1 and P2 receive (the peer's share of delta) and the opened delta are uniform
    over Z_2^8 and distributed the same for x = 0 and x = 0xA5."""
    n, runs = 4096, 4
    tab = np.arange(256)
    views = {}
    for xv in (0, 0xA5):
        x = np.full(n, xv, dtype=np.uint64)
        with deterministic_seeds(f"lut-view-{xv}"), record_exchanges() as log:
            for i in range(runs):
                run_local(
                    lambda rt, x=x: L.lut(rt, _input(rt, ring(8), x), [(tab, ring(8))]),
                    session=1000 + i,
                )
        recv = {p: np.concatenate([g[0] for r, _, g in log if r == p]) for p in (1, 2)}
        opened = np.concatenate([(s[0] + g[0]) % 256 for r, s, g in log if r == 1])
        views[xv] = {"p1": recv[1], "p2": recv[2], "delta": opened}
    crit = _chi2_crit(255)
    for name in ("p1", "p2", "delta"):
        h0, h1 = (np.bincount(views[v][name].astype(np.int64), minlength=256) for v in views)
        e = n * runs / 256
        assert ((h0 - e) ** 2 / e).sum() < crit and ((h1 - e) ** 2 / e).sum() < crit, name
        assert ((h0 - h1) ** 2 / (h0 + h1)).sum() < crit, name  # same distribution


# -- bad inputs -----------------------------------------------------------------------------
@pytest.mark.parametrize("rank", [0, 1])
def test_bad_inputs_raise_before_any_message(rank):
    rt = Runtime(rank, None, session=0)  # no transport, no seeds: using either would fail
    x8 = (
        Shared(ring(8), np.zeros(4, dtype=np.uint64), rank)
        if rank
        else Shared.phantom(ring(8), (4,))
    )
    t = np.arange(256)
    with pytest.raises(ValueError, match="shape"):
        L.lut(rt, x8, [(np.arange(100), ring(8))])  # not 2^b entries
    with pytest.raises(ValueError, match="shape"):
        L.lut(rt, x8, [(t, ring(8))], bits=7)
    with pytest.raises(ValueError, match="17 bits"):
        L.lut(rt, Shared.phantom(ring(17), (4,)), [(np.arange(1 << 17), ring(8))])
    with pytest.raises(DomainMismatch):
        L.lut(rt, x8, [(t, ring(8))], bits=9)  # index wider than the input ring
    with pytest.raises(DomainMismatch):
        L.lut(rt, Shared.phantom(field(131), (4,)), [(t, ring(8))])
    with pytest.raises(ValueError, match="range"):
        L.lut(rt, x8, [(t, ring(7))])  # entries do not fit the output ring
    with pytest.raises(TypeError):
        L.lut(rt, x8, [(t.astype(float), ring(8))])
    with pytest.raises(DomainMismatch):
        L.lut_dual(rt, x8, t, 20, 8)  # narrow wider than wide
    with pytest.raises(ShapeMismatch):
        L.lut_multi(rt, [x8, Shared.phantom(ring(4), (5,))], [(np.zeros((256, 16)), ring(8))])
    with pytest.raises(ValueError):
        L.lut(rt, x8, [])
    with pytest.raises(ValueError, match="range"):
        L.lut_onehot(rt, x8, [(t, 7)])
