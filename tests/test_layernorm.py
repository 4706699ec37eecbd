"""LayerNorm on shares: the one-round moments step, the full pipeline with P2's private
gamma/beta (bit-exact vs the integer reference, declared == measured cost), precision
inside the documented variance window, views, input checks."""

import numpy as np
import pytest
from harness import run_and_open
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_lut import _chi2_crit, _input, deterministic_seeds, record_exchanges

from mpc.ring import DomainMismatch, ring
from mpc.shares import ShapeMismatch, Shared
from net.local import run_local
from net.runtime import Runtime
from protocols import layernorm as LN

MODES = st.sampled_from(["live", "dealt"])


def _signed(rng, shape, bits):
    return rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), shape)


def _prog(k, x, gamma, beta, fmt):
    def prog(rt):
        mine = rt.rank == 2
        return LN.layernorm(
            rt, _input(rt, ring(k), x), gamma if mine else None, beta if mine else None, fmt
        )

    return prog


@settings(max_examples=15, deadline=None)
@given(
    rows=st.lists(st.integers(1, 4), min_size=0, max_size=2).map(tuple),
    d=st.integers(1, 12),
    k=st.integers(1, 64),
    mode=MODES,
    seed=st.integers(0, 2**32),
)
def test_moments(rows, d, k, mode, seed):
    rng = np.random.default_rng(seed)
    x = ring(k).reduce(rng.integers(0, 2**63, rows + (d,), dtype=np.uint64))
    g = ring(k).reduce(rng.integers(0, 2**63, (d,), dtype=np.uint64))

    def prog(rt):
        return list(LN.moments(rt, _input(rt, ring(k), x), _input(rt, ring(k), g, owner=2)))

    (V, u), cost, _ = run_and_open(prog, mode)
    wV, wu = LN.reference_moments(x, g, k)
    assert (V == wV).all() and (u == wu).all()
    assert cost == LN.cost_moments(rows + (d,), k)


@st.composite
def formats(draw):
    b = draw(st.integers(2, 16))
    lo = draw(st.integers(-200, 0))
    return LN.LayerNormFormat(
        in_bits=b,
        var_bits=draw(st.one_of(st.none(), st.integers(2, 40))),
        gamma_bits=draw(st.integers(2, 16)),
        gamma_frac=draw(st.integers(0, 10)),
        r_bits=draw(st.integers(4, 12)),
        out_index_bits=draw(st.integers(2, 11)),
        out_lo=lo,
        out_hi=lo + draw(st.integers(0, 300)),
        out_bits=draw(st.integers(10, 16)),
    )


@settings(max_examples=25, deadline=None)
@given(
    rows=st.lists(st.integers(1, 8), min_size=1, max_size=2).map(tuple),
    d=st.integers(2, 64),
    fmt=formats(),
    k=st.integers(40, 64),
    mode=MODES,
    seed=st.integers(0, 2**32),
)
def test_layernorm_matches_reference_and_cost(rows, d, fmt, k, mode, seed):
    try:
        LN.plan(d, k, fmt)
    except (ValueError, DomainMismatch):
        assume(False)
    rng = np.random.default_rng(seed)
    x = ring(k).reduce(_signed(rng, rows + (d,), fmt.in_bits))
    gamma, beta = (_signed(rng, (d,), fmt.gamma_bits) for _ in "gb")
    out, cost, _ = run_and_open(_prog(k, x, gamma, beta, fmt), mode)
    assert (out == LN.reference_layernorm(x, gamma, beta, k, fmt)).all()
    assert cost == LN.cost_layernorm(rows + (d,), k, fmt)


def _bert_like(rng, rows, d, std):
    x = rng.normal(0, std, (rows, d))
    x[:, :4] *= 3  # outlier channels
    return np.clip(np.rint(x), -2048, 2047).astype(np.int64)


def test_precision_inside_the_window():
    """Within [std_top/8, std_top] the output is within 1 LSB of the rounded float
    LayerNorm (d = 768, gamma ~ 16 output LSBs per unit, default format)."""
    rng = np.random.default_rng(11)
    d, fmt = 768, LN.LayerNormFormat(var_bits=LN.var_bits_for(768, 700))
    std_top = 2 ** (LN.plan(d, 64, fmt).Vt / 2) / d
    gamma = np.rint(rng.normal(16, 4, d) * 256).astype(np.int64)
    beta = np.rint(rng.normal(0, 8, d) * 256).astype(np.int64)
    for ratio in (1.5, 2, 4, 8):
        x = _bert_like(rng, 64, d, std_top / ratio)
        y = ring(8).signed(LN.reference_layernorm(ring(64).reduce(x), gamma, beta, 64, fmt))
        want = np.rint(np.clip(LN.layernorm_float(x, gamma, beta, fmt), -128, 127))
        assert np.abs(y - want).max() <= 1, ratio


def test_constant_rows_saturate_not_wrap():
    """Zero variance (below the window): xhat = 0, the output is beta (rounded)."""
    d = 8
    x = ring(64).reduce(np.full((3, d), 77))
    gamma = np.full(d, 4096)
    beta = np.arange(d) * 256 - 1024  # -4..3 output LSBs
    out, _, _ = run_and_open(_prog(64, x, gamma, beta, LN.LayerNormFormat()))
    assert (ring(8).signed(out) == np.arange(d) - 4).all()


def test_bert_shape_smoke():
    """[128, 768] once over Z_2^64: bit-exact, declared cost, 7 rounds."""
    rng = np.random.default_rng(5)
    d = 768
    x = ring(64).reduce(_bert_like(rng, 128, d, 150))
    gamma = np.rint(rng.normal(16, 4, d) * 256).astype(np.int64)
    beta = np.rint(rng.normal(0, 8, d) * 256).astype(np.int64)
    fmt = LN.LayerNormFormat()
    out, cost, _ = run_and_open(_prog(64, x, gamma, beta, fmt), "live")
    assert (out == LN.reference_layernorm(x, gamma, beta, 64, fmt)).all()
    assert cost == LN.cost_layernorm((128, d), 64, fmt) and cost.rounds == 7


def test_moments_view_is_uniform_whatever_input():
    """P1's and P2's received words in the moments round, and the opened x - A, g - B, are
    uniform over Z_2^8 and the same for two different secret inputs and gammas."""
    k, rows, d, runs = 8, 64, 32, 4
    views = {}
    for v in (0, 0xA5):
        x = np.full((rows, d), v, dtype=np.uint64)
        g = np.full(d, 255 - v, dtype=np.uint64)
        with deterministic_seeds(f"moments-{v}"), record_exchanges() as log:
            for i in range(runs):
                run_local(
                    lambda rt, x=x, g=g: list(
                        LN.moments(rt, _input(rt, ring(k), x), _input(rt, ring(k), g, owner=2))
                    ),
                    session=3000 + i,
                )
        views[v] = {
            p: np.concatenate(
                [np.concatenate([a.ravel() for a in got]) for q, _, got in log if q == p]
            )
            for p in (1, 2)
        }
        views[v]["open"] = np.concatenate(
            [
                np.concatenate([(a + b).ravel() % 256 for a, b in zip(s, g, strict=True)])
                for q, s, g in log
                if q == 1
            ]
        )
    crit = _chi2_crit(255)
    for name in (1, 2, "open"):
        h0, h1 = (np.bincount(views[v][name].astype(np.int64), minlength=256) for v in views)
        e = h0.sum() / 256
        assert ((h0 - e) ** 2 / e).sum() < crit and ((h1 - e) ** 2 / e).sum() < crit, name
        assert ((h0 - h1) ** 2 / (h0 + h1)).sum() < crit, name


@pytest.mark.parametrize("rank", [0, 1, 2])
def test_bad_inputs_raise_before_any_message(rank):
    rt = Runtime(rank, None, session=0)  # no transport, no seeds: any use would fail

    def sh(k, shape):
        if rank == 0:
            return Shared.phantom(ring(k), shape)
        return Shared(ring(k), np.zeros(shape, dtype=np.uint64), rank)

    g, b = np.ones(4, dtype=np.int64), np.zeros(4, dtype=np.int64)
    with pytest.raises(DomainMismatch, match="Z2\\^"):
        LN.layernorm(rt, sh(32, (2, 4)), g, b)  # the default format needs a wider ring
    with pytest.raises(ShapeMismatch):
        LN.layernorm(rt, sh(64, ()), g, b)
    with pytest.raises(ValueError):
        LN.layernorm(rt, sh(64, (2, 4)), g, b, LN.LayerNormFormat(out_index_bits=12))
    with pytest.raises(ValueError):
        LN.layernorm(rt, sh(64, (2, 4)), g, b, LN.LayerNormFormat(var_bits=65))
    if rank == 2:  # the owner rejects its own bad parameters, without printing them
        with pytest.raises(ShapeMismatch):
            LN.layernorm(rt, sh(64, (2, 4)), np.ones(5, dtype=np.int64), b)
        with pytest.raises(ValueError, match="gamma outside") as err:
            LN.layernorm(rt, sh(64, (2, 4)), np.full(4, 123456789), b)
        assert "123456789" not in str(err.value)
