"""G-module primitives (protocols.gmodule, protocols.gshared): +-1 action, cyclic shift,
assistant OT, pick with a dealer-known index, cross actions, recover, bit -> arithmetic;
seeded draws and field kernels; costs; bad inputs."""

import numpy as np
import pytest
from harness import measured, run_and_open
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc.prg import PRG
from mpc.ring import BOOL, DomainMismatch, field, ring
from mpc.shares import ShapeMismatch
from net.local import run_local
from protocols import gkernels as gk
from protocols import gmodule as G
from protocols import gshared as GS

MODES = st.sampled_from(["live", "dealt"])
SHAPES = st.lists(st.integers(1, 5), min_size=0, max_size=3).map(tuple)
DOMS = st.sampled_from(
    [
        ring(1),
        ring(8),
        ring(16),
        ring(20),
        ring(32),
        ring(63),
        ring(64),
        field(2),
        field(37),
        field(131),
        field(65537),
    ]
)


def _vals(rng, dom, shape):
    hi = min(dom.modulus, 2**63)
    return dom.reduce(rng.integers(0, hi, shape, dtype=np.uint64))


def _mine(rt, party, value):
    return value if rt.rank == party else None


# -- one-sided actions ------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(dom=DOMS, shape=SHAPES, owner=st.sampled_from([1, 2]), mode=MODES, seed=st.integers(0, 99))
def test_pm1_act(dom, shape, owner, mode, seed):
    rng = np.random.default_rng(seed)
    t, x = rng.integers(0, 2, shape), _vals(rng, dom, shape)

    def prog(rt):
        return G.pm1_act(rt, _mine(rt, owner, t), _mine(rt, 3 - owner, x), dom, shape, owner)

    out, cost, _ = run_and_open(prog, mode)
    assert (out == G.reference_pm1_act(t, x, dom)).all()
    assert cost == G.cost_pm1_act(shape, dom, owner)


@settings(max_examples=25, deadline=None)
@given(
    dom=DOMS,
    shape=SHAPES,
    n=st.integers(2, 17),
    owner=st.sampled_from([1, 2]),
    mode=MODES,
    seed=st.integers(0, 99),
    entry_only=st.booleans(),
)
def test_cyclic_shift_and_assistant_ot(dom, shape, n, owner, mode, seed, entry_only):
    rng = np.random.default_rng(seed)
    s, table = rng.integers(0, n, shape), _vals(rng, dom, shape + (n,))
    fn = G.assistant_ot if entry_only else G.cyclic_shift

    def prog(rt):
        return fn(rt, _mine(rt, owner, s), _mine(rt, 3 - owner, table), dom, shape, n, owner)

    out, cost, _ = run_and_open(prog, mode)
    ref = (G.reference_assistant_ot if entry_only else G.reference_cyclic_shift)(s, table, dom)
    assert out.shape == ref.shape and (out == ref).all()
    assert cost == G.cost_cyclic_shift(shape, n, dom, owner)
    # the index convention: (L_i v)[j] = v[(j + i) mod n]
    if not entry_only and s.size:
        j = rng.integers(0, n)
        want = np.take_along_axis(table, ((s + j) % n)[..., None], -1)[..., 0]
        assert (ref[..., j] == want).all()


def test_cyclic_shift_broadcasts_one_table():
    dom, shape, n = ring(12), (4, 3), 6
    table = np.arange(n) * 100
    s = np.arange(12).reshape(shape) % n
    out, _, _ = run_and_open(
        lambda rt: G.cyclic_shift(rt, _mine(rt, 1, s), _mine(rt, 2, table), dom, shape, n, 1)
    )
    assert (out == (np.add.outer(s, np.arange(n)) % n) * 100).all()


@settings(max_examples=20, deadline=None)
@given(
    dom=DOMS,
    shape=SHAPES,
    n=st.integers(1, 17),
    owner=st.sampled_from([1, 2]),
    mode=MODES,
    seed=st.integers(0, 99),
)
def test_pick_known(dom, shape, n, owner, mode, seed):
    rng = np.random.default_rng(seed)
    vec = _vals(rng, dom, shape + (n,))

    def prog(rt):
        idx = gk.private_below(rt, n, shape, owner)  # P0 and the index party know it
        out = G.pick_known(rt, idx, _mine(rt, 3 - owner, vec), dom, shape, n, owner)
        return [out, rt.input(owner, ring(8), shape, idx)] if not rt.is_dealer else [out, out]

    (out, idx), cost, _ = run_and_open(prog, mode)
    assert (out == G.reference_pick_known(idx, vec, dom)).all()
    assert cost == G.cost_pick_known(shape, n, dom, owner)


# -- cross actions ----------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(dom=DOMS, shape=SHAPES, mode=MODES, seed=st.integers(0, 99), swap=st.booleans())
def test_cross_actions(dom, shape, mode, seed, swap):
    rng = np.random.default_rng(seed)
    s = rng.integers(0, 2, shape)
    x = _vals(rng, dom, shape + ((2,) if swap else ()))

    def prog(rt):
        ss = rt.input(1, BOOL, shape, _mine(rt, 1, s))
        xs = rt.input(2, dom, x.shape, _mine(rt, 2, x))
        with rt.scope("proto"):
            return (GS.cross_swap if swap else GS.cross_pm1)(rt, ss, xs)

    out, _, run = run_and_open(prog, mode, scope="outer")
    ref = (GS.reference_cross_swap if swap else GS.reference_cross_pm1)(s, x, dom)
    assert (out == ref).all()
    want = (GS.cost_cross_swap if swap else GS.cost_cross_pm1)(shape, dom)
    assert measured(run, "outer.proto") == want


# -- recover ----------------------------------------------------------------------------------
@settings(max_examples=20, deadline=None)
@given(
    p=st.sampled_from([5, 37, 131, 65537]),
    shape=SHAPES,
    n=st.integers(1, 12),
    a_party=st.sampled_from([1, 2]),
    mode=MODES,
    seed=st.integers(0, 99),
)
def test_recover_shift_scale(p, shape, n, a_party, mode, seed):
    f = field(p)
    b = _vals(np.random.default_rng(seed), f, shape + (n,))

    def prog(rt):
        bs = rt.input(1, f, b.shape, _mine(rt, 1, b))
        with rt.scope("proto"):
            return GS.recover_shift_scale(rt, bs, a_party)

    run = run_local(prog, mode=mode)
    (i, u), _ = run.results[a_party]
    _, a = run.results[3 - a_party]
    assert (run.results[0][0][0] == i).all() and (run.results[0][0][1] == u).all()
    assert ((0 < u) & (u < p)).all() and ((0 <= i) & (i < n)).all()
    assert (a == GS.reference_recover_shift_scale((i, u), b, f)).all()
    assert measured(run, "proto") == GS.cost_recover_shift_scale(shape + (n,), f, a_party)


# -- bit -> arithmetic ------------------------------------------------------------------------
@settings(max_examples=20, deadline=None)
@given(dom=DOMS, shape=SHAPES, mode=MODES, seed=st.integers(0, 99))
def test_bit_to_arith(dom, shape, mode, seed):
    a = np.random.default_rng(seed).integers(0, 2, shape)

    def prog(rt):
        bits = rt.input(2, BOOL, shape, _mine(rt, 2, a))
        with rt.scope("proto"):
            return GS.bit_to_arith(rt, bits, dom)

    out, _, run = run_and_open(prog, mode, scope="outer")
    assert (out == GS.reference_bit_to_arith(a, dom)).all()
    assert measured(run, "outer.proto") == GS.cost_bit_to_arith(shape, dom)


# -- domains, draws ---------------------------------------------------------------------------
def test_zmod_and_shift_domain():
    z = G.ZMod(6)
    assert z.bits == 3 and z.modulus == 6 and repr(z) == "Z6" and z == G.ZMod(6) != G.ZMod(7)
    a, b = np.array([5, 4], dtype=np.uint64), np.array([3, 5], dtype=np.uint64)
    assert z.add(a, b).tolist() == [2, 3] and z.sub(a, b).tolist() == [2, 5]
    assert z.neg(a).tolist() == [1, 2] and z.mul(a, b).tolist() == [3, 2]
    assert z.reduce(np.array([-1, 13])).tolist() == [5, 1]
    assert G.shift_domain(8) == ring(3) and G.shift_domain(6) == G.ZMod(6)
    assert G.shift_domain(2) == ring(1)
    with pytest.raises(ValueError):
        G.ZMod(1)


@pytest.mark.parametrize(
    "dom",
    [ring(1), ring(5), ring(16), ring(64), field(37), field(65537), G.ZMod(6), field(2147483647)],
)
def test_draws_are_uniform_and_deterministic(dom):
    a = gk.draw(PRG(b"k" * 16), dom, (40000,))
    b = gk.draw(PRG(b"k" * 16), dom, (40000,))
    assert a.dtype == np.uint64 and (a == b).all() and (a < dom.modulus).all()
    bins = min(dom.modulus, 64)
    counts = np.bincount(
        (
            a * np.uint64(bins) // np.uint64(dom.modulus)
            if dom.modulus < 2**32
            else a >> np.uint64(58)
        ).astype(np.int64),
        minlength=bins,
    )
    expect = a.size / bins
    assert ((counts - expect) ** 2 / expect).sum() < bins + 8 * np.sqrt(2 * bins)
    # rings take the same words as PRG.ring
    if dom in (ring(5), ring(16), ring(64)):
        assert (a == PRG(b"k" * 16).ring(dom, (40000,))).all()


def test_field_arithmetic_kernels():
    rng = np.random.default_rng(0)
    for p in (2, 37, 65537, 2147483647):
        f = field(p)
        a, b = (rng.integers(0, p, 1000).astype(np.uint64) for _ in range(2))
        assert (gk.add(a, b, f) == f.add(a, b)).all() and (gk.sub(a, b, f) == f.sub(a, b)).all()
        assert (gk.mul(a, b, f) == f.mul(a, b)).all()
        t = rng.integers(0, 2, 1000).astype(np.uint64)
        assert (gk.pm1_add(t, a, f, True) == f.add(np.where(t == 1, f.neg(a), a), t)).all()
    v = np.arange(12, dtype=np.uint64).reshape(3, 4)
    assert gk.rotate(v, np.array([0, 1, 7])).tolist() == [
        [0, 1, 2, 3],
        [5, 6, 7, 4],
        [11, 8, 9, 10],
    ]


# -- bad inputs -------------------------------------------------------------------------------
def test_bad_inputs():
    def run(fn):
        return run_local(fn, timeout=1)

    with pytest.raises(DomainMismatch):
        run(
            lambda rt: GS.recover_shift_scale(
                rt, rt.input(1, ring(8), (3, 4), _mine(rt, 1, np.zeros((3, 4), int))), 1
            )
        )
    with pytest.raises(ShapeMismatch):
        run(
            lambda rt: GS.cross_pm1(
                rt,
                rt.input(1, BOOL, (3,), _mine(rt, 1, np.zeros(3, int))),
                rt.input(1, ring(8), (4,), _mine(rt, 1, np.zeros(4, int))),
            )
        )
    with pytest.raises(DomainMismatch):
        run(
            lambda rt: GS.cross_pm1(
                rt,
                rt.input(1, ring(2), (3,), _mine(rt, 1, np.zeros(3, int))),
                rt.input(1, ring(8), (3,), _mine(rt, 1, np.zeros(3, int))),
            )
        )
    with pytest.raises(ShapeMismatch):
        run(
            lambda rt: GS.cross_swap(
                rt,
                rt.input(1, BOOL, (3,), _mine(rt, 1, np.zeros(3, int))),
                rt.input(1, ring(8), (3, 3), _mine(rt, 1, np.zeros((3, 3), int))),
            )
        )
    with pytest.raises(ValueError, match="party"):
        run(lambda rt: G.pm1_act(rt, None, None, ring(8), (3,), 3))
    with pytest.raises(DomainMismatch):
        run(
            lambda rt: GS.bit_to_arith(
                rt, rt.input(1, ring(8), (3,), _mine(rt, 1, np.zeros(3, int))), field(37)
            )
        )
    # private inputs are checked by their owner (P1 here, so its error is the one raised)
    with pytest.raises(ValueError, match="outside"):
        run(
            lambda rt: G.cyclic_shift(
                rt,
                _mine(rt, 1, np.array([0, 5])),
                _mine(rt, 2, np.zeros((2, 5), int)),
                ring(8),
                (2,),
                5,
                1,
            )
        )
    with pytest.raises(ValueError, match="outside"):
        run(
            lambda rt: G.pm1_act(
                rt, _mine(rt, 1, np.array([0, 2])), _mine(rt, 2, np.zeros(2, int)), ring(8), (2,), 1
            )
        )
    with pytest.raises(ShapeMismatch):
        run(
            lambda rt: G.pm1_act(
                rt, _mine(rt, 1, np.zeros(3, int)), _mine(rt, 2, np.zeros(2, int)), ring(8), (2,), 1
            )
        )
    with pytest.raises(ValueError, match="must pass"):
        run(lambda rt: G.pm1_act(rt, None, _mine(rt, 2, np.zeros(2, int)), ring(8), (2,), 1))
