"""One-hot exact requant with outputs in any ring: reference, declared cost, views."""

import numpy as np
import pytest
from harness import run_and_open
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_lut import _chi2_crit, _input, deterministic_seeds, record_exchanges

from mpc.ring import DomainMismatch, ring
from net.local import run_local
from protocols import convert as C
from protocols import onehot as O

MODES = st.sampled_from(["live", "dealt"])
SHAPES = st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple)


def _acc(rng, B, shape):
    half = 1 << (B - 1)
    vals = rng.integers(-half, half, shape, dtype=np.int64) if B <= 63 else None
    if vals is None:
        vals = rng.integers(0, 2**63, shape, dtype=np.uint64)
    return ring(B).reduce(vals)


def _check_requant(acc, B, c, tables, k, shape, mode):
    """Secure requant == reference and measured == declared cost; returns the cost."""
    out, cost, _ = run_and_open(
        lambda rt: O.requant(rt, _input(rt, ring(B), acc), c, tables, carry_digits=k), mode
    )
    out = out if len(tables) > 1 else [out]
    for o, want in zip(out, O.reference_requant(acc, B, c, tables), strict=True):
        assert (o == want).all()
    assert cost == O.cost_requant(shape, B, c, tables, carry_digits=k)
    return cost


@st.composite
def params(draw):
    hb = draw(st.integers(1, 9))
    c = draw(st.integers(1, 40))
    k = draw(st.sampled_from([None, 1, 2, 3, 4, 6]))
    if k is not None and (k > c or -(-c // k) > 12 or (k == 1 and c > 12)):
        k = None
    return min(64, hb + c), c, k


@settings(max_examples=60, deadline=None)
@given(
    p=params(),
    rings=st.lists(st.integers(1, 64), min_size=1, max_size=3),
    shape=SHAPES,
    mode=MODES,
    seed=st.integers(0, 2**32),
)
def test_requant_matches_reference_and_cost(p, rings, shape, mode, seed):
    B, c, k = p
    hb = B - c
    rng = np.random.default_rng(seed)
    acc = _acc(rng, B, shape)
    tables = []
    for M in rings:  # signed or unsigned entries of at most M bits
        if M > 1 and rng.integers(2):
            half = 1 << (min(M, 62) - 1)
            tables.append((rng.integers(-half, half, 1 << hb), M))
        else:
            tables.append((rng.integers(0, 1 << min(M, 62), 1 << hb), ring(M)))
    cost = _check_requant(acc, B, c, tables, k, shape, mode)
    assert cost.rounds == (2 if len(C.carry_plan(c, k)) == 1 else 3)


@st.composite
def step_tables(draw, hb: int):
    """Tables with few distinct steps T[j + 1] - T[j] (clamps, saturating ramps): the
    difference form's case."""
    lo = draw(st.integers(-(1 << 12), 1 << 12))
    step = draw(st.sampled_from([0, 1, 2, 3, -1, 4, -8]))
    span = draw(st.integers(0, (1 << hb) - 1))
    j = np.arange(1 << hb) - (1 << (hb - 1))
    return lo + step * np.clip(j, -(span // 2), span - span // 2)


@settings(max_examples=50, deadline=None)
@given(
    p=params(),
    data=st.data(),
    rings=st.lists(st.integers(14, 64), min_size=1, max_size=3),
    shape=SHAPES,
    mode=MODES,
    seed=st.integers(0, 2**32),
)
def test_difference_form_matches_reference_and_cost(p, data, rings, shape, mode, seed):
    """One candidate T[a] plus k (T[a + 1] - T[a]) from indicator planes: exact, including
    the wrap-around step of the last entry, in rings narrower than the steps."""
    B, c, k = p
    hb = B - c
    acc = _acc(np.random.default_rng(seed), B, shape)
    tables = [(data.draw(step_tables(hb)), M) for M in rings]
    # tiny tables in wide rings can deal fewer bits as a pair (whole 64-bit one-hot words)
    assume(O.difference_form(O._check_tables(tables, hb), hb) is not None)
    _check_requant(acc, B, c, tables, k, shape, mode)


def test_difference_form_is_cheaper_for_clamps():
    """An int8 clamp of a 9-bit index into Z_2^63: half the one-hot, one value b2a, two
    planes (+1 and the -255 wrap); fewer bits both ways than opening two candidates."""
    t = C.requant_table(None, 9, lo=-128, hi=127)
    tabs = O._check_tables([(t, 63)], 9)
    planes = O.diff_planes(tabs, 9)
    assert [v for _, v, _ in planes] == [1, (1 << 63) - 255]
    diff = O.cost_requant((100,), 17, 8, [(t, 63)])  # one carry digit: 2^8 bits
    pair = 100 * (256 + 2 * 512 + 2 * (63 * 8 - 28)) // 8
    assert diff.offline[1] < 0.75 * pair
    assert diff.online[0] == -(-100 * 17 // 8) + -(-100 // 8) + 100 * (8 + 2) // 8


def test_requant_equals_convert_requant_and_extension():
    """Same values as convert.requant(exact) then sign extension, at edge accumulators."""
    B, c = 20, 12
    vals = [0, 1, (1 << c) - 1, 1 << c, -1, -(1 << c), -(1 << c) - 1, (1 << (B - 1)) - 1]
    vals += [-(1 << (B - 1)), 12345, -54321]
    acc = ring(B).reduce(np.array(vals * 10))
    t = C.requant_table(None, B - c, lo=-64, hi=63)
    for k in (1, 2, 3):
        out, _, _ = run_and_open(
            lambda rt, k=k: O.requant(
                rt, _input(rt, ring(B), acc, owner=2), c, [(t, 40)], carry_digits=k
            )
        )
        assert (ring(40).signed(out[:11]) == np.clip(np.array(vals) >> c, -64, 63)).all()


def test_opened_views_uniform():
    """t and the opened bits (T[a] and the step indicators of the difference form) look
    uniform whatever acc is."""
    B, c, n = 14, 6, 4000
    t = C.requant_table(None, B - c, lo=-32, hi=31)
    tabs = O._check_tables([(t, 9)], B - c)
    assert O.difference_form(tabs, B - c) is not None
    views = {}
    for v in (0, (1 << c) - 1):
        acc = np.full(n, v, dtype=np.uint64)
        with deterministic_seeds(f"onehot-view-{v}"), record_exchanges() as log:
            run_local(lambda rt, acc=acc: O.requant(rt, _input(rt, ring(B), acc), c, [(t, 9)]))
        _, ((ts, zs), (to, zo)) = [(s, g) for r, s, g in log if r == 1]
        views[v] = {"t": ts ^ to, "z": (zs ^ zo).reshape(-1)}
    for name in ("t", "z"):
        h0, h1 = (np.bincount(views[v][name].astype(np.int64), minlength=2) for v in views)
        e = h0.sum() / 2
        assert ((h0 - e) ** 2 / e).sum() < _chi2_crit(1), name
        assert ((h1 - e) ** 2 / e).sum() < _chi2_crit(1), name


def test_bad_inputs():
    acc = np.zeros(4, dtype=np.uint64)
    t = np.zeros(1 << 4, dtype=np.int64)

    def prog(rt, c, tabs):
        return O.requant(rt, _input(rt, ring(12), acc), c, tabs)

    with pytest.raises(ValueError):
        run_local(lambda rt: prog(rt, 0, [(t, 8)]))
    with pytest.raises(ValueError):  # entries of 9 bits into Z_2^8
        run_local(lambda rt: prog(rt, 8, [(t + 300, 8)]))
    with pytest.raises(ValueError):  # table of the wrong length
        run_local(lambda rt: prog(rt, 7, [(t, 8)]))
    with pytest.raises(DomainMismatch):
        run_local(lambda rt: O.requant(rt, acc, 8, [(t, 8)]))
    assert O.table_bits(np.array([-128, 127])) == (8, True)
    assert O.table_bits(np.array([0, 255])) == (8, False)
    assert O.table_bits(np.array([-1, 0])) == (1, True)


@given(
    hb=st.integers(1, 12),
    n=st.integers(1, 5),
    V=st.integers(1, 2),
    widths=st.lists(st.integers(1, 20), min_size=1, max_size=3),
    seed=st.integers(0, 2**32),
)
@settings(max_examples=40, deadline=None)
def test_dot_bits_matches_definition(hb, n, V, widths, seed):
    """The rotate-the-share kernel: bit k of xor_v xor_j e[v, j] T[(s_v + j) mod N], for any
    (not only one-hot) share words, including the garbage bits past N of a small table."""
    rng = np.random.default_rng(seed)
    N, Wh = 1 << hb, -(-(1 << hb) // 64)
    tabs = O._check_tables([(rng.integers(0, 1 << m, N), 64) for m in widths], hb)
    e = rng.integers(0, 2**63, (n, V, Wh), dtype=np.int64).astype(np.uint64) * np.uint64(3)
    sh = rng.integers(0, 3 * N, (n, V))
    got = O.dot_bits(e, sh, O.table_planes(tabs, hb), hb)
    ebits = np.unpackbits(e.view(np.uint8), axis=-1, bitorder="little")[..., :N]
    planes = np.concatenate([(t[None, :] >> np.arange(m)[:, None]) & 1 for t, m, _, _ in tabs])
    want = np.zeros_like(got)
    for i in range(n):
        for v in range(V):
            rot = planes[:, (sh[i, v] + np.arange(N)) % N]  # (K, N)
            want[i] ^= (rot @ ebits[i, v].astype(np.int64) % 2).astype(np.uint8)
    assert (got == want).all()


@settings(max_examples=50, deadline=None)
@given(x=st.integers(0, 2**64 - 1))
def test_parity_is_the_xor_of_the_bits(x):
    from protocols.onehotvec import parity

    for v in (x, 0, 2**64 - 1, 1 << 63):
        assert int(parity(np.uint64(v))) == bin(v).count("1") % 2
