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

    def wrapped(self, items, *a, **kw):
        got = old(self, items, *a, **kw)
        sent, got64 = [x.astype(np.uint64) for _, x in items], [g.astype(np.uint64) for g in got]
        log.append((self.rank, sent, got64))
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


# -- lazy table shares (P1: seed stream, P2: packed bytes) equal the expanded ones ----------
def _eager_deal(*a, lazy=False, **kw):
    return _ORIG_DEAL(*a, **kw)


_ORIG_DEAL = L.deal_tables


@contextmanager
def fixed_seeds(tag: str):
    """``deterministic_seeds`` plus the seeds of dealt material (``mpc.correlations``)."""
    import mpc.correlations as corr_mod

    with deterministic_seeds(tag):
        old, corr_mod.fresh_seed = corr_mod.fresh_seed, runtime_mod.fresh_seed
        try:
            yield
        finally:
            corr_mod.fresh_seed = old


def _bytes_and_rounds(run, party):
    return {k: v for k, v in run.reports[party]["total"].items() if k != "seconds"}


def _same_seeds_both_ways(prog, mode, tag, monkeypatch):
    """Run ``prog`` with lazy tables and with every table expanded (same seeds); return
    both runs' results per computing party."""
    import protocols.convert as C

    res = {}
    for lazy in (True, False):
        if not lazy:
            monkeypatch.setattr(L, "deal_tables", _eager_deal)
            monkeypatch.setattr(C, "deal_tables", _eager_deal)
        with fixed_seeds(tag):
            run = run_local(prog, mode=mode, session=7)
        res[lazy] = (run.results, {p: _bytes_and_rounds(run, p) for p in (1, 2)})
    monkeypatch.undo()
    return res[True], res[False]


@settings(max_examples=40, deadline=None)
@given(
    dom=st.one_of(st.integers(1, 64).map(ring), st.sampled_from([field(131), field(65537)])),
    n=st.integers(0, 40),
    wbits=st.integers(0, 7),
    pre=st.integers(0, 9),
    mode=MODES,
    seed=st.integers(0, 2**32),
)
def test_lazy_table_share_equals_eager(dom, n, wbits, pre, mode, seed):
    rng = np.random.default_rng(seed)
    w = 1 << wbits
    tab = dom.reduce(rng.integers(0, 2**63, (n, w), dtype=np.uint64))
    idx = rng.integers(0, w, n).astype(np.uint64)

    def prog(rt, lazy):
        rt.random_shared(ring(3), (pre,))  # tables start at any stream offset
        t = L.deal_tables(rt, dom, n, w, lambda lo, hi: tab[lo:hi], lazy=lazy)
        after = rt.random_shared(ring(13), (5,))
        if rt.is_dealer:
            return None
        dense = t.dense() if lazy else t
        return L.gather(t, idx), dense, after.data, rt.prg(0).bytes(8)

    runs = {}
    for lazy in (True, False):
        with fixed_seeds(f"lazy-deal-{seed}"):
            runs[lazy] = run_local(lambda rt, lazy=lazy: prog(rt, lazy), mode=mode, session=3)
    for p in (1, 2):
        (g1, d1, a1, s1), (g0, d0, a0, s0) = runs[True].results[p], runs[False].results[p]
        assert g1.dtype == g0.dtype == np.uint64 and (g1 == g0).all()
        assert d1.dtype == d0.dtype and (d1 == d0).all() and (a1 == a0).all() and s1 == s0
        assert _bytes_and_rounds(runs[True], p) == _bytes_and_rounds(runs[False], p)
    shares = [runs[True].results[p][1].astype(np.uint64) for p in (1, 2)]
    assert (dom.add(*shares) == tab).all()


@pytest.mark.parametrize("mode", ["dealt", "live"])
def test_lazy_protocols_equal_eager(mode, monkeypatch):
    """Every protocol using dealt tables gives the same shares, stream positions and
    costs with lazy tables as with expanded ones (same seeds)."""
    import protocols.convert as C

    rng = np.random.default_rng(11)
    x = rng.integers(0, 1 << 20, (3, 37), dtype=np.uint64)
    t8, t5 = rng.integers(-100, 100, 256), rng.integers(0, 1 << 13, 32)

    def prog(rt):
        xs = _input(rt, ring(20), x)
        outs = L.lut(rt, xs, [(t8, ring(9)), (t8, ring(64)), (t8, field(65537))], bits=8)
        outs += L.lut_multi(rt, [xs.reduce(3), xs.reduce(4)], [(np.arange(128), ring(7))])
        outs += L.lut_onehot(rt, xs.reduce(5), [(t5, 13)])
        outs += C.requant(rt, xs, 15, [(t5, ring(13))])
        outs += C.requant(rt, xs, 9, [(np.arange(2048), ring(11))], exact=True)
        outs += C.requant(rt, xs, 14, [(t8[:64] & 31, ring(6))], exact=True, carry_digits=2)
        outs.append(C.extend(rt, xs.reduce(7), 30))
        if rt.is_dealer:
            return None
        return [o.data for o in outs] + [rt.prg(0).bytes(8), rt.prg(rt.peer).bytes(8)]

    lazy, eager = _same_seeds_both_ways(prog, mode, f"lazy-protocols-{mode}", monkeypatch)
    for p in (1, 2):
        for a, b in zip(lazy[0][p], eager[0][p], strict=True):
            assert (np.asarray(a) == np.asarray(b)).all()
        assert lazy[1][p] == eager[1][p]
