"""Rings Z_2^k, prime fields and the PRG against Python-int references."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc.prg import PRG, SEED_BYTES, derive_seed, fresh_seed
from mpc.ring import (
    BOOL,
    DomainMismatch,
    PrimeField,
    Ring,
    field,
    ring,
    smallest_prime_at_least,
)


@st.composite
def ring_operands(draw, count=2):
    k = draw(st.integers(1, 64))
    n = draw(st.integers(0, 20))
    elems = st.integers(0, (1 << k) - 1)
    vals = [draw(st.lists(elems, min_size=n, max_size=n)) for _ in range(count)]
    return k, [np.array(v, dtype=np.uint64) for v in vals]


def _ints(a) -> list[int]:
    return [int(x) for x in np.asarray(a).ravel()]


@settings(max_examples=150, deadline=None)
@given(ring_operands())
def test_ring_arithmetic_matches_python_ints(case):
    k, (a, b) = case
    r = ring(k)
    mod = 1 << k
    pa, pb = _ints(a), _ints(b)
    for got, want in (
        (r.add(a, b), [(x + y) % mod for x, y in zip(pa, pb, strict=True)]),
        (r.sub(a, b), [(x - y) % mod for x, y in zip(pa, pb, strict=True)]),
        (r.mul(a, b), [(x * y) % mod for x, y in zip(pa, pb, strict=True)]),
        (r.neg(a), [(-x) % mod for x in pa]),
    ):
        assert got.dtype == np.uint64
        assert _ints(got) == want


@settings(max_examples=150, deadline=None)
@given(ring_operands(count=1))
def test_signed_is_twos_complement(case):
    k, (a,) = case
    r = ring(k)
    s = r.signed(a)
    assert s.dtype == np.int64
    half = 1 << (k - 1)
    assert _ints(s) == [x - (1 << k) if x >= half else x for x in _ints(a)]
    # and back: reducing the signed value gives the element again
    assert np.array_equal(r.reduce(s), a)


@settings(max_examples=150, deadline=None)
@given(
    k=st.integers(1, 64),
    vals=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=20),
)
def test_reduce_wraps_signed_ints(k, vals):
    r = ring(k)
    got = r.reduce(np.array(vals, dtype=np.int64))
    assert got.dtype == np.uint64
    assert _ints(got) == [v % (1 << k) for v in vals]


@settings(max_examples=100, deadline=None)
@given(k=st.integers(1, 64), vals=st.lists(st.integers(-(2**70), 2**70), max_size=10))
def test_reduce_python_int_objects(k, vals):
    got = ring(k).reduce(np.array(vals, dtype=object))
    assert _ints(got) == [v % (1 << k) for v in vals]


def test_reduce_other_dtypes():
    r = ring(5)
    assert _ints(r.reduce(np.array([255, 7], dtype=np.uint8))) == [31, 7]
    assert _ints(r.reduce(np.array([-1], dtype=np.int8))) == [31]
    assert _ints(r.reduce(np.array([True, False]))) == [1, 0]
    with pytest.raises(TypeError):
        r.reduce(np.array([1.5]))


def test_ring_identity_and_validation():
    assert ring(13) is ring(13)
    assert ring(13) == Ring(13) and hash(ring(13)) == hash(Ring(13))
    assert ring(13) != ring(14) and ring(13) != field(13)
    assert BOOL == ring(1) and BOOL.mask == 1
    assert ring(64).mask == np.uint64(2**64 - 1)
    assert ring(20).nbytes(3) == 8
    for bad in (0, 65, -3):
        with pytest.raises(ValueError):
            Ring(bad)
    with pytest.raises(DomainMismatch):
        ring(8).check(ring(9))
    ring(8).check(ring(8))


def test_bool_ring_is_xor_and():
    a = np.array([0, 0, 1, 1], dtype=np.uint64)
    b = np.array([0, 1, 0, 1], dtype=np.uint64)
    assert _ints(BOOL.add(a, b)) == [0, 1, 1, 0]
    assert _ints(BOOL.sub(a, b)) == [0, 1, 1, 0]
    assert _ints(BOOL.mul(a, b)) == [0, 0, 0, 1]
    assert _ints(BOOL.neg(a)) == [0, 0, 1, 1]


PRIMES = [2, 3, 5, 251, 65521, 2**31 - 1]


@settings(max_examples=100, deadline=None)
@given(
    p=st.sampled_from(PRIMES),
    data=st.data(),
)
def test_prime_field_ops(p, data):
    f = field(p)
    n = data.draw(st.integers(0, 20))
    xs = data.draw(st.lists(st.integers(0, p - 1), min_size=n, max_size=n))
    ys = data.draw(st.lists(st.integers(0, p - 1), min_size=n, max_size=n))
    a, b = np.array(xs, dtype=np.uint64), np.array(ys, dtype=np.uint64)
    assert _ints(f.add(a, b)) == [(x + y) % p for x, y in zip(xs, ys, strict=True)]
    assert _ints(f.sub(a, b)) == [(x - y) % p for x, y in zip(xs, ys, strict=True)]
    assert _ints(f.mul(a, b)) == [(x * y) % p for x, y in zip(xs, ys, strict=True)]
    assert _ints(f.neg(a)) == [(-x) % p for x in xs]
    signed = data.draw(st.lists(st.integers(-(2**62), 2**62), max_size=10))
    assert _ints(f.reduce(np.array(signed, dtype=np.int64))) == [v % p for v in signed]


def test_prime_field_validation_and_bits():
    assert field(251).bits == 8 and field(257).bits == 9 and field(2).bits == 1
    assert field(251) is field(251) and field(251) == PrimeField(251)
    for bad in (1, 4, 91, 2**31 + 11):
        with pytest.raises(ValueError):
            PrimeField(bad)
    assert smallest_prime_at_least(0) == 2
    assert smallest_prime_at_least(90) == 97
    assert smallest_prime_at_least(97) == 97


def test_prg_determinism_and_labels():
    seed = bytes(range(SEED_BYTES))
    a = PRG(seed, "masks").bytes(1000)
    assert a == PRG(seed, "masks").bytes(1000)
    assert a != PRG(seed, "other").bytes(1000)
    assert a != PRG(seed).bytes(1000)
    assert PRG(fresh_seed(), "masks").bytes(64) != PRG(fresh_seed(), "masks").bytes(64)
    # the stream does not depend on how it is chunked
    g = PRG(seed, "masks")
    assert g.bytes(300) + g.bytes(700) == a
    assert g.drawn == 1000
    assert derive_seed(seed, "x") == derive_seed(seed, "x") != derive_seed(seed, "y")
    assert "key" not in repr(g) and seed.hex() not in repr(g)
    with pytest.raises(ValueError):
        PRG(b"short")


@pytest.mark.parametrize("k", [1, 2, 7, 8, 9, 16, 17, 31, 32, 33, 63, 64])
def test_prg_ring_draws_in_range(k):
    r = ring(k)
    seed = bytes(SEED_BYTES)
    x = PRG(seed, f"r{k}").ring(r, (50, 40))
    assert x.dtype == np.uint64 and x.shape == (50, 40)
    if k < 64:
        assert int(x.max()) < (1 << k)
    assert np.array_equal(x, r.random(PRG(seed, f"r{k}"), (50, 40)))
    # not degenerate: every bit position is used
    assert int(np.bitwise_or.reduce(x.ravel())) == (1 << k) - 1


def test_prg_field_and_below_in_range():
    seed = bytes(SEED_BYTES)
    f = field(65521)
    x = PRG(seed, "f").field(f, (1000,))
    assert x.dtype == np.uint64 and int(x.max()) < 65521
    assert np.array_equal(x, f.random(PRG(seed, "f"), (1000,)))
    y = PRG(seed, "b").below(10, (1000,))
    assert int(y.max()) < 10 and len(set(_ints(y))) == 10
    bits = PRG(seed, "bits").bits((2000,))
    assert set(_ints(bits)) == {0, 1}


@given(lo=st.integers(-(2**70), 2**70), span=st.integers(0, 2**70))
def test_signed_width_is_the_smallest_twos_complement_width(lo, span):
    from mpc.ring import signed_width

    hi = lo + span
    b = signed_width(lo, hi)
    assert -(2 ** (b - 1)) <= lo and hi < 2 ** (b - 1)
    assert b == 1 or not (-(2 ** (b - 2)) <= lo and hi < 2 ** (b - 2))
