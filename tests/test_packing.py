"""Bit-packing round trips and size checks (mpc.packing)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc.packing import (
    pack,
    pack_diff_rows,
    pack_rows,
    packed_size,
    rows_size,
    unpack,
    unpack_rows,
)


def _mask(bits: int) -> np.uint64:
    return np.uint64((1 << bits) - 1)


def _bitwise_pack(values: np.ndarray, bits: int) -> bytes:
    """Obviously-correct reference: one bit at a time, little-endian bit order."""
    out = bytearray(packed_size(values.size, bits))
    for i, v in enumerate(int(x) for x in values):
        for j in range(bits):
            if (v >> j) & 1:
                pos = i * bits + j
                out[pos // 8] |= 1 << (pos % 8)
    return bytes(out)


@pytest.mark.parametrize("bits", range(1, 65))
def test_round_trip_every_width(bits):
    rng = np.random.default_rng(bits)
    for n in (0, 1, 2, 3, 7, 8, 9, 63, 64, 65, 127, 1000):
        v = rng.integers(0, 2**64, size=n, dtype=np.uint64, endpoint=False)
        buf = pack(v, bits)
        assert isinstance(buf, bytes)
        assert len(buf) == packed_size(n, bits)
        assert np.array_equal(unpack(buf, bits, n), v & _mask(bits))


@pytest.mark.parametrize("bits", range(1, 65))
def test_matches_bitwise_reference(bits):
    rng = np.random.default_rng(100 + bits)
    v = rng.integers(0, 2**64, size=37, dtype=np.uint64)
    assert pack(v, bits) == _bitwise_pack(v & _mask(bits), bits)


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(1, 64), n=st.integers(0, 3000), seed=st.integers(0, 2**32 - 1))
def test_round_trip_random(bits, n, seed):
    rng = np.random.default_rng(seed)
    v = rng.integers(0, 2**64, size=n, dtype=np.uint64) & _mask(bits)
    buf = pack(v, bits)
    assert len(buf) == packed_size(n, bits)
    assert np.array_equal(unpack(buf, bits, n), v)
    # bytearray / memoryview buffers are accepted too
    assert np.array_equal(unpack(memoryview(bytearray(buf)), bits, n), v)


def test_extremes_and_shapes():
    for bits in (1, 7, 13, 20, 31, 33, 63, 64):
        v = np.full((4, 5), (1 << bits) - 1, dtype=np.uint64)
        out = unpack(pack(v, bits), bits, v.size)
        assert out.dtype == np.uint64 and out.shape == (20,)
        assert np.array_equal(out, v.ravel())
        z = np.zeros(9, dtype=np.uint64)
        assert pack(z, bits) == bytes(packed_size(9, bits))


@pytest.mark.parametrize("bits", [1, 5, 8, 13, 16, 20, 32, 64])
def test_wrong_size_raises(bits):
    n = 10
    buf = pack(np.arange(n, dtype=np.uint64), bits)
    with pytest.raises(ValueError):
        unpack(buf + b"\0", bits, n)
    with pytest.raises(ValueError):
        unpack(buf[:-1], bits, n)
    with pytest.raises(ValueError):
        unpack(buf, bits, n + 8)
    with pytest.raises(ValueError):
        unpack(b"\0", bits, 0)


def test_bad_width_raises():
    for bits in (0, 65, -1):
        with pytest.raises(ValueError):
            pack(np.zeros(3, dtype=np.uint64), bits)
        with pytest.raises(ValueError):
            unpack(b"", bits, 0)


def test_packed_size():
    assert packed_size(0, 13) == 0
    assert packed_size(1, 1) == 1
    assert packed_size(8, 1) == 1
    assert packed_size(9, 1) == 2
    assert packed_size(3, 20) == 8
    assert packed_size(1000, 64) == 8000


@pytest.mark.parametrize("bits", [8, 16, 32, 64])
def test_aligned_widths_view_the_buffer_only_when_aligned(bits):
    dt = np.dtype(f"<u{bits // 8}")
    v = np.arange(100, dtype=dt)
    raw = v.tobytes()
    view = unpack(raw, bits, v.size, dt)
    assert np.array_equal(view, v) and not view.flags.writeable  # no copy: a view of raw
    shifted = memoryview(b"\0" * 3 + raw)[3:]  # e.g. a payload after a frame header
    out = unpack(shifted, bits, v.size, dt)
    assert np.array_equal(out, v) and out.flags.aligned  # copied: kernels need alignment


def _bitwise_pack_rows(values: np.ndarray, widths) -> bytes:
    """Reference: every element at its column's width, row-major, one bit at a time."""
    n, C = values.shape
    out = bytearray(packed_size(n, int(sum(widths))))
    pos = 0
    for i in range(n):
        for c in range(C):
            v = int(values[i, c])
            for j in range(widths[c]):
                if (v >> j) & 1:
                    out[pos // 8] |= 1 << (pos % 8)
                pos += 1
    return bytes(out)


@settings(max_examples=60, deadline=None)
@given(
    widths=st.lists(st.integers(1, 64), min_size=1, max_size=9),
    n=st.integers(0, 40),
    dtype=st.sampled_from([np.uint8, np.uint16, np.uint32, np.uint64]),
    seed=st.integers(0, 2**32),
)
def test_pack_rows_matches_reference_and_round_trips(widths, n, dtype, seed):
    """Per-column widths: the bit stream of packing each element at its column's width in
    row-major order; unpack_rows gives back the low bits into any wide enough word."""
    rng = np.random.default_rng(seed)
    bits = 8 * np.dtype(dtype).itemsize
    widths = [min(w, bits) for w in widths]
    v = rng.integers(0, 2**bits, size=(n, len(widths)), dtype=np.uint64).astype(dtype)
    buf = pack_rows(v, widths)
    assert bytes(buf) == _bitwise_pack_rows(v, widths)
    assert len(buf) == rows_size(n, widths)
    got = unpack_rows(buf, widths, n, dtype)
    masks = np.array([(1 << w) - 1 for w in widths], dtype=np.uint64)
    assert got.dtype == dtype and np.array_equal(got.astype(np.uint64), v.astype(np.uint64) & masks)


def test_pack_rows_rejects_bad_input():
    with pytest.raises(ValueError):
        pack_rows(np.zeros((2, 2), np.uint32), [8, 0])
    with pytest.raises(ValueError):
        pack_rows(np.zeros((2, 3), np.uint32), [8, 8])
    with pytest.raises(ValueError):
        unpack_rows(bytes(3), [8, 8], 2, np.uint32)  # 4 bytes expected
    with pytest.raises(ValueError):
        unpack_rows(bytes(4), [8, 17], 1, np.uint16)  # 17 bits into 16-bit words


@settings(max_examples=40, deadline=None)
@given(
    widths=st.lists(st.integers(1, 32), min_size=1, max_size=6),
    slots=st.integers(1, 2),
    n=st.integers(0, 30),
    extra=st.integers(0, 3),
    seed=st.integers(0, 2**32),
)
def test_pack_diff_rows_is_pack_rows_of_the_difference(widths, slots, n, extra, seed):
    """P2's b2a corrections packed in one pass equal pack_rows(s[:, :, cols] - p1)."""
    rng = np.random.default_rng(seed)
    C = len(widths)
    s = rng.integers(0, 2, (slots, n, C + extra), dtype=np.uint8)
    cols = rng.permutation(C + extra)[:C]
    p1 = rng.integers(0, 2**32, (slots, n, C), dtype=np.uint64).astype(np.uint32)
    want = pack_rows(np.subtract(s[:, :, cols], p1, dtype=np.uint32).reshape(-1, C), widths)
    assert bytes(pack_diff_rows(s, cols, p1, widths)) == bytes(want)
