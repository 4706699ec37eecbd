"""PRG stream: fixed convention (AES-CTR, zero initial counter), and random access (skip,
stream_at, peek, words_at) equal to drawing every word and indexing."""

import hashlib

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

import mpc.prg as P
from mpc.ring import field, ring

DTYPES = st.sampled_from([np.uint8, np.uint16, np.uint32, np.uint64])


def test_stream_is_unchanged():
    """Known answer recorded before random access existed, and the CTR definition."""
    g = P.PRG(bytes(range(16)), "corr")
    a, b = g.bytes(5), g.ring(ring(12), (7,))
    c, d = g.field(field(131), (3,)), g.words(np.uint8, (1000,))
    digest = hashlib.sha256(a + b.tobytes() + c.tobytes() + d.tobytes()).hexdigest()
    assert digest == "a6123cc35f3cd5d49394f2d261192f1c0115c5f235c12cbd6e4ec00b3864f8e0"
    assert g.drawn == 1043
    key = P.derive_seed(bytes(range(16)), "corr")
    ks = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor().update(bytes(100))
    assert P.PRG(bytes(range(16)), "corr").bytes(100) == ks


# a program of stream operations: (op, dtype, count, positions as fractions of count)
OPS = st.lists(
    st.tuples(
        st.sampled_from(["draw", "skip", "at", "ring", "field"]),
        DTYPES,
        st.integers(0, 300),
        st.lists(st.floats(0, 1, exclude_max=True), max_size=40),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(seed=st.binary(min_size=16, max_size=16), ops=OPS, k=st.integers(1, 64))
def test_random_access_equals_drawing_everything(seed, ops, k):
    eager, lazy = P.PRG(seed, "t"), P.PRG(seed, "t")
    for op, dt, count, fr in ops:
        pos = (np.asarray(fr) * count).astype(np.int64) if count else np.zeros(0, np.int64)
        start = lazy.drawn
        if op == "draw":
            assert (eager.words(dt, (count,)) == lazy.words(dt, (count,))).all()
        elif op == "skip":
            eager.bytes(count)
            lazy.skip(count)
        elif op == "at":
            want = eager.words(dt, (count,))[pos]
            peeked = lazy.peek(dt, start, pos)
            assert lazy.drawn == start  # peek does not move the stream
            got = lazy.words_at(dt, count, pos)
            assert got.dtype == want.dtype and (got == want).all() and (peeked == want).all()
        elif op == "ring":  # the lut.py recipe: draw_dtype + peek + from_words
            r = ring(k)
            want = eager.ring(r, (count,))[pos]
            lazy.skip(count * P.draw_dtype(r).itemsize)
            got = P.from_words(r, lazy.peek(P.draw_dtype(r), start, pos))
            assert got.dtype == np.uint64 and (got == want).all()
        else:
            f = field(65537)
            want = eager.field(f, (count,))[pos]
            lazy.skip(count * P.draw_dtype(f).itemsize)
            assert (P.from_words(f, lazy.peek(P.draw_dtype(f), start, pos)) == want).all()
        assert eager.drawn == lazy.drawn
        assert lazy.stream_at(start, 33) == P.PRG(seed, "t").bytes(start + 33)[start:]
    assert eager.bytes(37) == lazy.bytes(37)  # same position afterwards


@pytest.mark.parametrize("start", [0, 1, 6, 13, 16, 4099])
@pytest.mark.parametrize("dt", [np.uint8, np.uint16, np.uint32, np.uint64])
def test_peek_block_paths(monkeypatch, start, dt):
    """Sparse positions (one or two AES blocks per word, several ECB calls) and dense ones
    (a contiguous window), at aligned and unaligned starts; every word straddling a block."""
    monkeypatch.setattr(P, "_ECB_BLOCKS", 7)
    g = P.PRG(bytes(16))
    s = np.dtype(dt).itemsize
    n = 2000
    full = np.frombuffer(g.stream_at(start, n * s), dtype=dt)
    rng = np.random.default_rng(start)
    for pos in (
        rng.integers(0, n, 50),  # sparse
        np.arange(0, n, 97)[::-1],  # sparse, descending
        np.arange(n),  # dense
        np.array([n - 1]),
    ):
        assert (g.peek(dt, start, pos) == full[pos]).all()
    if start % s:  # words across a block boundary
        cut = np.array([i for i in range(n) if (start + i * s) % 16 > 16 - s][:20])
        assert cut.size and (g.peek(dt, start, cut) == full[cut]).all()


def test_words_at_keeps_shape_and_checks_range():
    g, h = P.PRG(bytes(16)), P.PRG(bytes(16))
    w = h.words(np.uint16, (10,))
    pos = np.array([[1, 9], [0, 0]])
    assert (g.words_at(np.uint16, 10, pos) == w[pos]).all()
    assert g.words_at(np.uint8, 5, np.zeros(0, np.int64)).shape == (0,)
    assert g.drawn == 25
    with pytest.raises(ValueError, match="outside"):
        g.words_at(np.uint8, 4, [4])
    with pytest.raises(ValueError):
        g.skip(-1)
    with pytest.raises(TypeError):
        g.peek(np.uint8, 0, np.array([0.5]))
    assert "drawn=25" in repr(g) and "key" not in repr(g)
