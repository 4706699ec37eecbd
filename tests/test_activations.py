"""Tables and wrappers for exp, reciprocal, rsqrt and GELU: table properties, bit-exact
protocol outputs vs references, declared == measured cost, input checks."""

import numpy as np
import pytest
from harness import run_and_open
from hypothesis import given, settings
from hypothesis import strategies as st
from test_lut import _input

from mpc.ring import DomainMismatch, ring
from mpc.shares import Shared
from net.runtime import Runtime
from protocols import activations as A
from protocols import convert as C

MODES = st.sampled_from(["live", "dealt"])
SHAPES = st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple)


def _rand(rng, shape, k):
    return ring(k).reduce(rng.integers(0, 2**63, shape, dtype=np.uint64))


# -- tables -----------------------------------------------------------------------------
def test_exp_table():
    t = A.exp_table(8, 3, 10)
    d = np.where(np.arange(256) == 0, 0, np.arange(256) - 256)  # the value each entry is for
    assert t[0] == 1023 and t[255] == round(1024 * np.exp(-1 / 8)) and t[1] == 0
    assert (np.diff(t[np.argsort(d)]) >= 0).all()  # monotone in d
    want = np.minimum(np.rint(1024 * np.exp(d / 8)), 1023)
    assert (t == want).all()


def test_reciprocal_tables_are_one_sided_and_accurate():
    hb, c, K, k = 8, 5, 2.0**40, 48
    a2, beta = A.reciprocal_taylor_tables(hb, c, K, k, h_min=4)
    s = np.arange(4 << c, 1 << (hb + c), dtype=np.int64)
    h = s >> c
    q = a2[h].astype(np.int64) - beta[h].astype(np.int64) * s  # no wrap at these sizes
    exact = K / s
    assert (q <= exact).all()  # never above K / s
    rel = (exact - q) / exact
    assert (rel <= (1 / (2 * h)) ** 2 + (1 << c) / exact * 1.0 + 1 / exact).all()
    plain = A.reciprocal_table(hb, c, K, 1 << 62)
    assert (np.abs(plain[h] / exact - 1) <= 1 / (2 * h) + 1e-9).all()


def test_rsqrt_table_relative_error():
    hb, c, K = 11, 20, 2.0**40
    t = A.rsqrt_table(hb, c, K, 1 << 62)
    v = np.unique(np.random.default_rng(0).integers(1 << c, 1 << (hb + c), 20000))
    h = v >> c
    rel = np.abs(t[h] / (K / np.sqrt(v)) - 1)
    assert (rel <= 1 / (4 * h) + 1e-6).all()
    assert t[0] == round(K / 2 ** ((c - 2) / 2))


def test_gelu_table_and_float():
    t = A.gelu_table(A.GELU_IN, A.GELU_OUT)
    x = (np.arange(512) - 512 * (np.arange(512) >= 256)) / 8
    assert np.abs(A.gelu(np.array([0.0, 1.0, -1.0])) - [0, 0.841345, -0.158655]).max() < 1e-5
    want = np.clip(np.rint(A.gelu(x) * 8), -128, 127)
    assert (t == want).all() and t.min() == -1 and t.max() == 127


def test_carry_digits_for_minimizes_dealt_bits():
    for c in range(9, 60):
        k = A.carry_digits_for(c)
        plan = C.carry_plan(c, k)
        assert max(plan) <= 12 and 2 * k <= 12
        assert C.cost_carry(1, c, plan).offline[1] * 8 == C.carry_bits(c, k)
        for j in range(2, 7):
            try:
                C.carry_plan(c, j)
            except ValueError:
                continue
            assert C.carry_bits(c, k) <= C.carry_bits(c, j)
    assert A.carry_digits_for(8) is None


# -- wrappers ---------------------------------------------------------------------------
@settings(max_examples=20, deadline=None)
@given(
    b=st.integers(1, 10),
    extra=st.integers(0, 6),
    fracs=st.tuples(st.integers(0, 6), st.integers(1, 20)),
    grow=st.integers(1, 30),
    shape=SHAPES,
    mode=MODES,
    seed=st.integers(0, 2**32),
)
def test_exp_lut(b, extra, fracs, grow, shape, mode, seed):
    rng = np.random.default_rng(seed)
    fi, fo = fracs
    m, k = min(fo + grow, 64), b + extra
    d = ring(k).reduce(-rng.integers(0, 1 << b, shape))
    out, cost, _ = run_and_open(
        lambda rt: A.exp_lut(rt, _input(rt, ring(k), d), b, fi, fo, m), mode
    )
    assert (out == A.reference_exp_lut(d, b, fi, fo, m)).all()
    assert cost == A.cost_exp_lut(shape, b, fo, m)


@settings(max_examples=20, deadline=None)
@given(
    hb=st.integers(1, 11),
    c=st.integers(1, 20),
    kk=st.integers(0, 30),
    m=st.integers(20, 64),
    taylor=st.booleans(),
    shape=SHAPES,
    mode=MODES,
    seed=st.integers(0, 2**32),
)
def test_reciprocal(hb, c, kk, m, taylor, shape, mode, seed):
    rng = np.random.default_rng(seed)
    B, K = hb + c, 2.0 ** (c + kk)
    s = _rand(rng, shape, B)
    digits = 1 if c <= 12 else None

    def prog(rt):
        return A.reciprocal(rt, _input(rt, ring(B), s), c, K, m, taylor=taylor, carry_digits=digits)

    out, cost, _ = run_and_open(prog, mode)
    outs = out if isinstance(out, list) else [out]
    for o, w in zip(outs, A.reference_reciprocal(s, B, c, K, m, taylor=taylor), strict=True):
        assert (o == w).all()
    assert cost == A.cost_reciprocal(shape, B, c, K, m, taylor=taylor, carry_digits=digits)


@settings(max_examples=15, deadline=None)
@given(
    hb=st.integers(1, 11),
    c=st.integers(2, 30),
    kk=st.integers(0, 20),
    shape=SHAPES,
    mode=MODES,
    seed=st.integers(0, 2**32),
)
def test_rsqrt(hb, c, kk, shape, mode, seed):
    rng = np.random.default_rng(seed)
    B, K, m = hb + c, 2.0 ** (c // 2 + kk), 48
    v = _rand(rng, shape, B)
    out, cost, _ = run_and_open(lambda rt: A.rsqrt(rt, _input(rt, ring(B), v), c, K, m), mode)
    assert (out == A.reference_rsqrt(v, B, c, K, m)).all()
    assert cost == A.cost_rsqrt(shape, B, c, K, m)


@settings(max_examples=20, deadline=None)
@given(
    fin=st.tuples(st.integers(0, 6), st.integers(2, 11)),
    fout=st.tuples(st.integers(0, 6), st.integers(2, 12)),
    c=st.integers(1, 20),
    extra=st.integers(0, 10),
    digits=st.sampled_from(["default", "fast", "one"]),
    shape=SHAPES,
    mode=MODES,
    seed=st.integers(0, 2**32),
)
def test_gelu_requant(fin, fout, c, extra, digits, shape, mode, seed):
    rng = np.random.default_rng(seed)
    fi, fo = A.Fixed(*fin), A.Fixed(*fout)
    B = min(c + fi.bits + extra, 64)
    k = {"default": None, "fast": A.carry_digits_for(c), "one": 1 if c <= 12 else None}[digits]
    acc = _rand(rng, shape, B)
    ob = fo.bits + 2

    def prog(rt):
        return A.gelu_requant(rt, _input(rt, ring(B), acc), c, fi, fo, out_bits=ob, carry_digits=k)

    out, cost, _ = run_and_open(prog, mode)
    assert (out == A.reference_gelu_requant(acc, B, c, fi, fo, out_bits=ob)).all()
    assert cost == A.cost_gelu_requant(shape, c, fi, fo, out_bits=ob, carry_digits=k)


def test_gelu_requant_rounds_to_nearest():
    """acc = h 2^c + low: the index is round(acc / 2^c) (half up), GELU in int8 2^-3."""
    c = 10
    h = np.array([-40, -8, 0, 3, 8, 40, 255, -256])
    low = np.array([0, 511, 512, 1023, 100, 600, 0, 0])
    acc = ring(32).reduce(h * 1024 + low)
    out, cost, _ = run_and_open(lambda rt: A.gelu_requant(rt, _input(rt, ring(32), acc), c))
    idx = h + (low >= 512)
    want = np.clip(np.rint(A.gelu(idx / 8) * 8), -128, 127)
    assert (ring(8).signed(out) == want).all()
    assert cost == A.cost_gelu_requant(h.shape, c) and cost.rounds == 3


# -- bad inputs -------------------------------------------------------------------------
@pytest.mark.parametrize("rank", [0, 1])
def test_bad_inputs_raise_before_any_message(rank):
    rt = Runtime(rank, None, session=0)  # no transport, no seeds: any use would fail

    def sh(k, shape=(3,)):
        if rank == 0:
            return Shared.phantom(ring(k), shape)
        return Shared(ring(k), np.zeros(shape, dtype=np.uint64), rank)

    with pytest.raises(ValueError, match="at least 21 bits"):
        A.gelu_requant(rt, sh(20), 12)  # 9-bit index above a 12-bit shift
    with pytest.raises(ValueError, match="exceeds 11"):
        A.gelu_requant(rt, sh(40), 4, A.Fixed(4, 12))
    with pytest.raises(DomainMismatch):
        A.gelu_requant(rt, "not a share", 4)
    with pytest.raises(ValueError, match="wider ring"):
        A.exp_lut(rt, sh(8), 8, 3, 16, 16)
    with pytest.raises(ValueError, match="shift"):
        A.reciprocal(rt, sh(12), 12, 2.0**20, 32)
    with pytest.raises(ValueError, match="exceeds"):
        A.rsqrt(rt, sh(30), 10, 2.0**20, 32)  # 20-bit index
    with pytest.raises(ValueError):
        A.Fixed(3, 0)
