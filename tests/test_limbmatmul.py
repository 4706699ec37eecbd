"""Exact ring matrix products (mpc.limbmatmul) against the Python-int reference."""

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc.limbmatmul import (
    bit_budget,
    matmul,
    matmul_reference,
    plan,
    release_workspace,
    staircase_plan,
)
from mpc.ring import ring

KS = [1, 8, 16, 20, 32, 64]


def _rand(rng, k, shape):
    return rng.integers(0, 2**64, size=shape, dtype=np.uint64) & ring(k).mask


def _extreme(rng, k, shape):
    """Values that push centred limbs to their extremes (runs of ones/zeros, top bit)."""
    m = (1 << k) - 1
    pats = [0, 1, m, 1 << (k - 1), (1 << (k - 1)) - 1, m ^ 1]
    pats += [(0xAAAAAAAAAAAAAAAA & m), (0x5555555555555555 & m)]
    for run in (3, 5, 8, 11, 13, 22):
        mask = 0
        for pos in range(0, 64, 2 * run):
            mask |= ((1 << run) - 1) << pos
        pats += [mask & m, ~mask & m]
    pats = np.array(sorted(set(pats)), dtype=np.uint64)
    return pats[rng.integers(0, len(pats), size=shape)]


def _check(a, b, k, **kw):
    got = matmul(a, b, ring(k), **kw)
    want = matmul_reference(a, b, ring(k))
    assert np.shape(got) == np.shape(want)
    assert np.asarray(got).dtype == np.uint64
    assert np.array_equal(got, want), f"k={k} {a.shape}@{b.shape}"


SHAPES = [
    ((3, 5), (5, 4)),
    ((1, 1), (1, 1)),
    ((7, 300), (300, 2)),
    ((2, 3, 40), (40, 6)),
    ((4, 9), (3, 9, 2)),  # broadcast B batch
    ((3, 1, 5, 33), (4, 33, 3)),  # broadcast both
    ((2, 6, 64), (2, 64, 5)),
    ((10,), (10, 4)),
    ((4, 10), (10,)),
    ((6,), (6,)),
]


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_matches_reference(k, shapes):
    rng = np.random.default_rng(k)
    sa, sb = shapes
    _check(_rand(rng, k, sa), _rand(rng, k, sb), k)
    _check(_extreme(rng, k, sa), _extreme(rng, k, sb), k)


@pytest.mark.parametrize("k", KS)
def test_all_ones_long_inner(k):
    """Every element 2^k-1 with inner dimensions up to a few thousand."""
    m = (1 << k) - 1
    for n in (768, 1000, 3072):
        a = np.full((2, n), m, dtype=np.uint64)
        b = np.full((n, 3), m, dtype=np.uint64)
        got = matmul(a, b, ring(k))
        assert np.all(got == np.uint64((n * m * m) % (1 << k)))
        _check(a, b, k)


@pytest.mark.parametrize("k", [20, 24, 32, 40, 48, 64])
def test_medium_products(k):
    """Shapes big enough that the limb planner (not the uint64 fallback) is used."""
    rng = np.random.default_rng(1000 + k)
    a, b = _extreme(rng, k, (6, 1500)), _rand(rng, k, (1500, 5))
    assert not plan(k, 1500, a.size, 2500 * 32, 6 * 32).direct
    _check(a, b, k)
    # a real-size product checked against numpy's wrapping uint64 matmul on a few columns
    a, b = _rand(rng, k, (64, 768)), _rand(rng, k, (768, 96))
    got = matmul(a, b, ring(k))
    assert np.array_equal(got, (a @ b) & ring(k).mask)


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(1, 64),
    m=st.integers(1, 5),
    n=st.integers(1, 2500),
    p=st.integers(1, 5),
    batch=st.sampled_from([(), (2,), (1, 3), (2, 1)]),
    extreme=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_shapes(k, m, n, p, batch, extreme, seed):
    rng = np.random.default_rng(seed)
    gen = _extreme if extreme else _rand
    a = gen(rng, k, (*batch, m, n))
    b = gen(rng, k, (*batch[::-1], n, p))
    _check(a, b, k)


@pytest.mark.parametrize("k", [3, 17, 24, 32, 45, 64])
@pytest.mark.parametrize("chunks", [1, 3, 8])
@pytest.mark.parametrize("col_is_b", [True, False])
def test_forced_plans(k, chunks, col_is_b):
    """Both fusion orientations and inner-dimension chunking (with padding) are exact."""
    rng = np.random.default_rng(k * 100 + chunks)
    n = 1001
    p = staircase_plan(k, n, chunks, col_is_b)
    assert p.chunks * p.chunk >= n
    a, b = _extreme(rng, k, (2, 3, n)), _rand(rng, k, (2, n, 4))
    _check(a, b, k, using=p)


@pytest.mark.parametrize("k", range(1, 65))
@pytest.mark.parametrize("n", [1, 64, 768, 3072, 10**6, 2**40, 2**60])
def test_plans_are_exact_covers(k, n):
    """Every bit pair (x, y) with x + y < k is covered once, and each rectangle is exact."""
    p = plan(k, n, 128 * n, n * 768, 128 * 768)
    if p.direct:
        return
    s = bit_budget(p.chunk)
    cover = np.zeros((k, k), dtype=np.int64)
    for (a0, a1), (b0, b1) in p.rects:
        off = a0 + b0
        assert off < k
        assert (a1 - a0) + (b1 - b0) <= s  # clipped widths: |A limb| |B limb| n <= 2^53
        assert a1 <= k and b1 <= k and a1 - a0 <= k - off and b1 - b0 <= k - off
        cover[a0:a1, b0:b1] += 1
    x, y = np.indices((k, k))
    assert np.all(cover[x + y < k] == 1)


def test_plan_choices():
    assert len(plan(20, 768, 128 * 768, 768 * 768, 128 * 768).rects) == 1
    assert len(plan(22, 768, 128 * 768, 768 * 768, 128 * 768).rects) == 1
    assert len(plan(32, 768, 128 * 768, 768 * 768, 128 * 768).rects) == 2
    assert len(plan(64, 768, 128 * 768, 768 * 768, 128 * 768).rects) <= 6
    assert bit_budget(768) == 45 and bit_budget(1024) == 45 and bit_budget(1025) == 44
    assert bit_budget(1) == 55
    assert plan(64, 3, 6, 6, 4).direct  # tiny: numpy uint64 matmul
    huge = plan(8, 2**60)  # even 1-bit limbs would overflow: the inner dimension is chunked
    assert not huge.direct and huge.chunks > 1 and bit_budget(huge.chunk) >= 2


def test_input_handling():
    r = ring(16)
    a = np.array([[1, -1], [2, 3]], dtype=np.int64)
    b = np.array([[70000, 1], [5, 6]], dtype=np.int64)  # non-canonical / negative
    want = matmul_reference(r.reduce(a), r.reduce(b), r)
    assert np.array_equal(matmul(a, b, r), want)
    assert np.array_equal(matmul(a.astype(np.uint64), b.astype(np.uint64), 16), want)
    assert matmul(np.zeros((0, 4), np.uint64), np.zeros((4, 3), np.uint64), r).shape == (0, 3)
    z = matmul(np.ones((2, 0), np.uint64), np.ones((0, 3), np.uint64), r)
    assert z.shape == (2, 3) and not z.any()
    with pytest.raises(ValueError):
        matmul(np.ones((2, 3), np.uint64), np.ones((4, 3), np.uint64), r)
    with pytest.raises(ValueError):
        matmul(np.uint64(3), np.ones((1, 1), np.uint64), r)
    with pytest.raises(TypeError):
        matmul(np.ones((2, 2)), np.ones((2, 2)), r)
    with pytest.raises(ValueError):
        matmul(np.ones((2, 2), np.uint64), np.ones((2, 2), np.uint64), 65)
    with pytest.raises(ValueError):
        matmul(
            np.ones((2, 9), np.uint64), np.ones((9, 2), np.uint64), r, using=staircase_plan(8, 9)
        )


def test_threads_share_nothing():
    """Parties run as threads: concurrent products with per-thread workspaces stay exact."""
    rng = np.random.default_rng(7)
    jobs = []
    for k in (20, 32, 64):
        a, b = _rand(rng, k, (64, 700)), _rand(rng, k, (700, 80))
        jobs.append((k, a, b, (a @ b) & ring(k).mask))
    errors = []

    def work():
        try:
            for _ in range(3):
                for k, a, b, want in jobs:
                    if not np.array_equal(matmul(a, b, ring(k)), want):
                        errors.append(k)
            release_workspace()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


# -- narrow B (b_bits): a weight's centred entries fit b_bits signed bits ---------------------
@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(1, 64),
    bb=st.integers(1, 20),
    n=st.sampled_from([1, 7, 300, 3072]),
    seed=st.integers(0, 2**32),
)
def test_narrow_b_exact(k, bb, n, seed):
    rng = np.random.default_rng(seed)
    a = _extreme(rng, k, (3, n)) if seed % 2 else _rand(rng, k, (3, n))
    w = rng.integers(-(1 << (bb - 1)), 1 << (bb - 1), size=(n, 4))
    w[0, 0] = -(1 << (bb - 1))  # the extreme entry
    _check(a, ring(k).reduce(w), k, b_bits=bb)


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(1, 64),
    dt=st.sampled_from([np.int8, np.int16, np.int32, np.int64]),
    bb=st.integers(1, 20),
    n=st.sampled_from([1, 7, 300, 3072]),
    batch=st.sampled_from([(), (2,)]),
    seed=st.integers(0, 2**32),
)
def test_narrow_b_signed_words_exact(k, dt, bb, n, batch, seed):
    # the owner keeps its int8 weight as int8: the limbs are read from the signed words
    rng = np.random.default_rng(seed)
    bb = min(bb, 8 * np.dtype(dt).itemsize)
    a = _extreme(rng, k, (*batch, 3, n)) if seed % 2 else _rand(rng, k, (*batch, 3, n))
    w = rng.integers(-(1 << (bb - 1)), 1 << (bb - 1), size=(n, 4)).astype(dt)
    w[0, 0] = -(1 << (bb - 1))
    got = matmul(a, w, ring(k), b_bits=bb)
    assert got.dtype == np.uint64
    assert np.array_equal(got, matmul_reference(a, ring(k).reduce(w), ring(k)))


@settings(max_examples=30, deadline=None)
@given(
    k=st.integers(1, 32),
    dt=st.sampled_from([np.uint8, np.uint16, np.uint32]),
    n=st.sampled_from([1, 7, 300, 3072]),
    seed=st.integers(0, 2**32),
)
def test_unsigned_words_read_as_is(k, dt, n, seed):
    # a non-owner's weight over Z_2^k (k <= 32) kept as uint32 words
    rng = np.random.default_rng(seed)
    k = min(k, 8 * np.dtype(dt).itemsize)
    a = _rand(rng, k, (3, n))
    w = _rand(rng, k, (n, 4)).astype(dt)
    got = matmul(a, w, ring(k))
    assert got.dtype == np.uint64
    assert np.array_equal(got, matmul_reference(a, w.astype(np.uint64), ring(k)))


def test_narrow_b_plans_fewer_gemms():
    # the owner's product with an int8 weight: one GEMM up to k = 45 - 8 at n = 768
    for k in (20, 33, 37):
        assert len(plan(k, 768, 128 * 768, 768 * 768, 128 * 768, 1, 8).rects) == 1
    assert len(plan(33, 768, 128 * 768, 768 * 768, 128 * 768).rects) == 2
    assert len(plan(63, 768, 128 * 768, 768 * 768, 128 * 768, 1, 8).rects) == 2
    assert plan(16, 768, b_bits=30) == plan(16, 768)  # wider than the ring: no change
    with pytest.raises(ValueError, match="b_bits"):
        plan(16, 768, b_bits=0)
