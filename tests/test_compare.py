"""First non-zero index, private comparison, MSB / DReLU: references, costs, round model,
statistical views, bad inputs."""

import numpy as np
import pytest
from gviews import chi2_same, fixed_seeds, received
from harness import run_and_open
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc.ring import BOOL, DomainMismatch, field, ring, smallest_prime_at_least
from mpc.shares import ShapeMismatch
from net.local import run_local
from protocols import compare as C
from protocols.gmodule import shift_domain

MODES = st.sampled_from(["live", "dealt"])
SHAPES = st.lists(st.integers(1, 6), min_size=0, max_size=3).map(tuple)
ELLS = st.sampled_from([1, 2, 3, 8, 16, 20, 32, 63, 64])


def _mine(rt, party, value):
    return value if rt.rank == party else None


def _ring_vals(rng, ell, shape):
    r = ring(ell)
    x = r.reduce(
        rng.integers(0, 2**63, shape, dtype=np.uint64) * np.uint64(2)
        + rng.integers(0, 2, shape, dtype=np.uint64)
    )
    edges = np.array([0, 1, r.mask, 1 << (ell - 1), (1 << (ell - 1)) - 1], dtype=np.uint64)
    flat = x.reshape(-1)
    k = min(flat.size, edges.size)
    flat[:k] = edges[rng.permutation(edges.size)[:k]]
    return x


# -- fnz --------------------------------------------------------------------------------------
@settings(max_examples=20, deadline=None)
@given(
    shape=SHAPES,
    n=st.integers(2, 40),
    a_party=st.sampled_from([1, 2]),
    mode=MODES,
    seed=st.integers(0, 99),
    bigger_p=st.booleans(),
)
def test_fnz(shape, n, a_party, mode, seed, bigger_p):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, shape + (n,)) * (rng.random(shape + (n,)) < rng.random())
    x[..., rng.integers(0, n)] = 1  # at least one 1
    p = smallest_prime_at_least(200) if bigger_p else C.fnz_prime(n)
    f = field(p)

    def prog(rt):
        with rt.scope("proto"):
            return C.fnz(rt, rt.input(1, f, x.shape, _mine(rt, 1, x)), a_party)

    out, cost, _ = run_and_open(prog, mode, scope="outer")
    assert (out == C.reference_fnz(x)).all()
    assert cost == C.cost_fnz(shape + (n,), p, a_party)


def test_fnz_prime_and_reference_checks():
    assert C.fnz_prime(32) == 37 and C.fnz_prime(64) == 67 and C.fnz_prime(2) == 5
    with pytest.raises(ValueError):
        C.reference_fnz(np.array([[0, 1], [0, 0]]))


# -- private comparison -----------------------------------------------------------------------
@settings(max_examples=20, deadline=None)
@given(
    m=st.sampled_from([1, 2, 5, 8, 16, 31, 63]),
    shape=SHAPES,
    x_party=st.sampled_from([1, 2]),
    or_equal=st.booleans(),
    mode=MODES,
    seed=st.integers(0, 99),
)
def test_private_less(m, shape, x_party, or_equal, mode, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2**m, shape, dtype=np.uint64)
    y = np.where(rng.random(shape) < 0.3, x, rng.integers(0, 2**m, shape, dtype=np.uint64))

    def prog(rt):
        return C.private_less(
            rt, _mine(rt, x_party, x), _mine(rt, 3 - x_party, y), m, shape, x_party, or_equal
        )

    out, cost, _ = run_and_open(prog, mode)
    assert out.shape == shape and (out == C.reference_private_less(x, y, or_equal)).all()
    assert cost == C.cost_private_less(shape, m, x_party)


# -- MSB / DReLU ------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(ell=ELLS, shape=SHAPES, mode=MODES, seed=st.integers(0, 99), which=st.booleans())
def test_msb_drelu(ell, shape, mode, seed, which):
    x = _ring_vals(np.random.default_rng(seed), ell, shape)
    fn, ref = (C.drelu, C.reference_drelu) if which else (C.msb, C.reference_msb)

    def prog(rt):
        xs = rt.input(1, ring(ell), shape, _mine(rt, 1, x))
        with rt.scope("proto"):
            out = fn(rt, xs)
            assert out.dom == BOOL and out.shape == shape
            return out

    out, cost, _ = run_and_open(prog, mode, scope="outer")
    assert (out == ref(x, ell)).all()
    assert cost == C.cost_drelu(shape, ell)
    assert cost.rounds == (0 if ell == 1 else 4)


def test_drelu_cost_sheet():
    """Bits per element at l = 32 (p = 37, 6-bit elements, n = 32)."""
    c = C.cost_drelu((8000,), 32)
    assert c.online == (8000 * (31 + 32 * 6 + 32) // 8, 8000 * (31 + 32 * 6) // 8)
    assert c.offline == (8000 * 32 * 6 // 8, 8000 * (31 * 6 + 1) // 8) and c.rounds == 4


def test_rounds_model():
    assert C.rounds_of(["x"]) == 1 and C.rounds_of([1, 2, 1]) == 3
    assert C.rounds_of(["x", 1, 2, 1]) == 4
    # a one-way step by the party that is behind overlaps with the previous round
    assert C.rounds_of(["x", 1, 2, 1, "x", "x", 1]) == 6
    assert C.rounds_of(["x"], start=(3, 5)) == 1


# -- views ------------------------------------------------------------------------------------
def _drelu_views(x, ell):
    def prog(rt):
        return C.drelu(rt, rt.input(1, ring(ell), x.shape, _mine(rt, 1, x)))

    with fixed_seeds("drelu-view"), received() as log:
        run_local(prog)
    return log


@pytest.mark.parametrize("ell", [8, 20])
def test_drelu_view_does_not_depend_on_input(ell):
    n_el = 4000
    r = ring(ell)
    logs = [
        _drelu_views(np.full(n_el, v, dtype=np.uint64), ell)
        for v in (r.reduce(np.array(3)), r.reduce(np.array(-(1 << (ell - 2)))))
    ]
    p = C.fnz_prime(ell)
    for rank in (1, 2):
        a, b = logs[0][rank], logs[1][rank]
        assert [k for k, _ in a] == [k for k, _ in b] and len(a) >= 2
        for (_, va), (_, vb) in zip(a, b, strict=True):
            stat, limit = chi2_same(va, vb)
            assert stat < limit, (rank, stat, limit)
    # P1 (the recover's B) also sees a = w + U: one zero at a uniform position
    zs, vals = [], []
    for log in logs:
        w = [v for k, v in log[1] if k == "msg" and v.shape[-1:] == (ell,)][-1]
        u = [v for k, v in log[1] if k == "take"][-1]
        a = (w + u) % np.uint64(p)
        assert ((a == 0).sum(-1) == 1).all()
        zs.append(np.argmin(a, -1))
        vals.append(a[a != 0])
    for s, t in (zs, vals):
        stat, limit = chi2_same(s, t)
        assert stat < limit
    # power check: the unblinded first-difference position does depend on the input
    k = [
        C.reference_fnz(
            np.concatenate(
                [((v[:, None] >> np.arange(ell - 2, -1, -1)) & 1), np.ones((n_el, 1), int)], -1
            )
        )
        for v in (
            np.random.default_rng(0).integers(0, 2 ** (ell - 1), n_el),
            np.random.default_rng(1).integers(0, 2 ** (ell - 1), n_el) >> 3,
        )
    ]
    stat, limit = chi2_same(*k)
    assert stat > limit


# -- bad inputs -------------------------------------------------------------------------------
def test_bad_inputs():
    def run(fn):
        return run_local(fn, timeout=1)

    with pytest.raises(DomainMismatch):
        run(lambda rt: C.drelu(rt, rt.input(1, field(37), (3,), _mine(rt, 1, np.zeros(3, int)))))
    with pytest.raises(DomainMismatch):
        run(lambda rt: C.fnz(rt, rt.input(1, ring(8), (3, 4), _mine(rt, 1, np.ones((3, 4), int)))))
    with pytest.raises(ValueError, match="needs p"):
        run(lambda rt: C.fnz(rt, rt.input(1, field(5), (3, 4), _mine(rt, 1, np.ones((3, 4), int)))))
    with pytest.raises(ShapeMismatch):
        run(lambda rt: C.fnz(rt, rt.input(1, field(5), (3, 1), _mine(rt, 1, np.ones((3, 1), int)))))
    with pytest.raises(ValueError, match="1 <= m <= 63"):
        run(lambda rt: C.private_less(rt, None, None, 64, (3,)))
    with pytest.raises(ValueError, match="outside"):  # P1's private input does not fit m bits
        run(
            lambda rt: C.private_less(
                rt,
                _mine(rt, 2, np.zeros(2, int)),
                _mine(rt, 1, np.array([3, 4])),
                2,
                (2,),
                x_party=2,
            )
        )
    assert shift_domain(5).modulus == 5
