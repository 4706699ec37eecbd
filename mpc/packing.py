"""Bit-packing of ring elements for the wire: exactly ``bits`` bits per element.

``pack(values, bits)`` -> ``ceil(n*bits/8)`` bytes, little-endian bit order (bit ``j`` of
element ``i`` is bit ``(i*bits + j) % 8`` of byte ``(i*bits + j) // 8``); only the low
``bits`` bits of each value are sent. ``unpack(buf, bits, n)`` inverts it and raises
``ValueError`` if ``buf`` does not hold exactly ``packed_size(n, bits)`` bytes.

Byte-aligned widths (8/16/32/64) are plain little-endian casts; the other widths run a
Numba kernel that streams 64-bit words (a few ms for a million values). The kernels release
the GIL so parties running as threads can pack concurrently.

``pack_rows(values, widths)`` packs a 2-D array whose column c has its own width widths[c],
row after row, into ``rows_size(n, widths)`` bytes (the same bit stream as packing every
element at its width in row-major order); ``unpack_rows`` inverts it into one 2-D array.
"""

from __future__ import annotations

import sys

import numpy as np
from numba import njit

_ALIGNED = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}
_LITTLE = sys.byteorder == "little"


def packed_size(n: int, bits: int) -> int:
    return (n * bits + 7) // 8


def _check_bits(bits: int) -> int:
    bits = int(bits)
    if not 1 <= bits <= 64:
        raise ValueError(f"bit width must be in 1..64, got {bits}")
    return bits


@njit(cache=True, nogil=True)
def _pack_kernel(v, bits, out):  # pragma: no cover - numba
    """Append the low ``bits`` (< 64) bits of each v[i] to the little-endian word stream out."""
    mask = (np.uint64(1) << np.uint64(bits)) - np.uint64(1)
    b = np.uint64(bits)
    acc = np.uint64(0)
    nacc = np.uint64(0)  # bits held in acc, always < 64
    w = 0
    for i in range(v.size):
        x = v[i] & mask
        acc |= x << nacc
        nacc += b
        if nacc >= 64:
            out[w] = acc
            w += 1
            nacc -= np.uint64(64)
            # the bits of x that did not fit (none if nacc == 0)
            acc = (x >> (b - nacc)) if nacc > 0 else np.uint64(0)
    if nacc > 0:
        out[w] = acc


def _stream(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The packed bytes as 64-bit words (body, tail) for the unpack kernels: the whole
    words of ``raw`` as a view when it is 8-byte aligned (no copy of a message that may
    be hundreds of MB), the rest copied into ``tail`` with one spare word of padding."""
    full = raw.size // 8 if _LITTLE and raw.ctypes.data % 8 == 0 else 0
    body = raw[: 8 * full].view(np.uint64)
    rest = raw[8 * full :]
    tail = np.zeros((rest.size + 7) // 8 + 1, dtype=np.uint64)
    tail.view(np.uint8)[: rest.size] = rest
    if not _LITTLE:  # pragma: no cover - big-endian hosts
        tail.byteswap(inplace=True)
    return body, tail


@njit(cache=True, nogil=True)
def _unpack_kernel(body, tail, bits, out):  # pragma: no cover - numba
    """Inverse of _pack_kernel over the word stream body + tail (``_stream``)."""
    mask = (np.uint64(1) << np.uint64(bits)) - np.uint64(1)
    b = np.uint64(bits)
    nb = body.size
    acc = body[0] if nb > 0 else tail[0]
    nacc = np.uint64(64)  # unread bits left in acc
    w = 1
    for i in range(out.size):
        if nacc >= b:
            out[i] = acc & mask
            acc = acc >> b if b < 64 else np.uint64(0)
            nacc -= b
        else:
            if w < nb:  # (an if statement: a helper function here is 15x slower)
                nxt = body[w]
            else:
                nxt = tail[w - nb]
            w += 1
            # low nacc bits from acc, the rest from the next word
            out[i] = (acc | (nxt << nacc)) & mask
            used = b - nacc
            acc = nxt >> used
            nacc = np.uint64(64) - used


@njit(cache=True, nogil=True)
def _pack_diff_rows_kernel(s, cols, p1, widths, out):  # pragma: no cover - numba
    """Append x[t, i, c] = s[t, i, cols[c]] - p1[t, i, c] (mod 2^64, low widths[c] bits,
    1..64) row by row to the little-endian word stream out (``_pack_kernel``'s layout),
    without building x."""
    acc = np.uint64(0)
    nacc = np.uint64(0)
    w = 0
    for t in range(p1.shape[0]):
        for i in range(p1.shape[1]):
            for c in range(p1.shape[2]):
                b = np.uint64(widths[c])
                x = np.uint64(s[t, i, cols[c]]) - np.uint64(p1[t, i, c])
                if b < 64:
                    x &= (np.uint64(1) << b) - np.uint64(1)
                acc |= x << nacc
                nacc += b
                if nacc >= 64:
                    out[w] = acc
                    w += 1
                    nacc -= np.uint64(64)
                    acc = (x >> (b - nacc)) if nacc > 0 else np.uint64(0)
    if nacc > 0:
        out[w] = acc


@njit(cache=True, nogil=True)
def _unpack_rows_kernel(body, tail, widths, out):  # pragma: no cover - numba
    """Inverse of ``_pack_rows_kernel`` over the word stream body + tail (``_stream``)."""
    nb = body.size
    acc = body[0] if nb > 0 else tail[0]
    nacc = np.uint64(64)  # unread bits left in acc
    w = 1
    for i in range(out.shape[0]):
        for c in range(out.shape[1]):
            b = np.uint64(widths[c])
            mask = (np.uint64(1) << b) - np.uint64(1) if b < 64 else ~np.uint64(0)
            if nacc >= b:
                out[i, c] = acc & mask
                acc = acc >> b if b < 64 else np.uint64(0)
                nacc -= b
            else:
                if w < nb:
                    nxt = body[w]
                else:
                    nxt = tail[w - nb]
                w += 1
                out[i, c] = (acc | (nxt << nacc)) & mask
                used = b - nacc
                acc = nxt >> used if used < 64 else np.uint64(0)
                nacc = np.uint64(64) - used


def rows_size(n: int, widths) -> int:
    """Bytes of ``n`` packed rows of the given column widths."""
    return packed_size(n, int(np.sum(widths, dtype=np.int64)))


def _check_widths(widths) -> np.ndarray:
    w = np.asarray(widths, dtype=np.int64).reshape(-1)
    if w.size == 0 or (w < 1).any() or (w > 64).any():
        raise ValueError(f"column widths must be in 1..64, got {w.tolist()}")
    return w


def pack_rows(values: np.ndarray, widths) -> np.ndarray:
    """``values`` (n, C) of any unsigned dtype, column c packed to widths[c] bits, row by
    row (see module doc); a fresh uint8 array."""
    v = np.asarray(values)
    if v.ndim != 2 or v.dtype.kind != "u":
        raise ValueError(f"pack_rows needs unsigned (n, columns) values, got {v.dtype} {v.shape}")
    zero = np.broadcast_to(np.zeros(1, dtype=np.uint8), (1,) + v.shape)  # minus nothing
    return pack_diff_rows(v[None], np.arange(v.shape[1]), zero, widths)


def pack_diff_rows(s: np.ndarray, cols, p1: np.ndarray, widths) -> np.ndarray:
    """``pack_rows`` of (s[:, :, cols] - p1) reshaped to rows of p1.shape[-1] columns,
    for s (T, n, K) and p1 (T, n, C) unsigned arrays, in one pass (no difference array)."""
    w = _check_widths(widths)
    cols = np.asarray(cols, dtype=np.int64)
    if p1.ndim != 3 or p1.shape[2] != w.size or cols.size != w.size or s.shape[:2] != p1.shape[:2]:
        raise ValueError(f"pack_diff_rows: shapes {s.shape}, {p1.shape} and {w.size} columns")
    size = rows_size(p1.shape[0] * p1.shape[1], w)
    words = np.empty((size + 7) // 8, dtype=np.uint64)  # the kernel writes every word
    _pack_diff_rows_kernel(np.ascontiguousarray(s), cols, p1, w, words)
    if not _LITTLE:  # pragma: no cover - big-endian hosts
        words.byteswap(inplace=True)
    return words.view(np.uint8)[:size]


def unpack_rows(buf, widths, n: int, dtype=np.uint64) -> np.ndarray:
    """The (n, C) array ``pack_rows`` packed into ``buf``, as ``dtype`` (unsigned, wide
    enough for every column)."""
    w = _check_widths(widths)
    dtype = np.dtype(dtype)
    if dtype.kind != "u" or dtype.itemsize * 8 < int(w.max()):
        raise ValueError(f"cannot unpack {int(w.max())}-bit columns into {dtype}")
    size = rows_size(n, w)
    raw = np.frombuffer(buf, dtype=np.uint8)
    if raw.size != size:
        raise ValueError(f"packed buffer holds {raw.size} bytes, expected {size}")
    out = np.empty((int(n), w.size), dtype=dtype)
    _unpack_rows_kernel(*_stream(raw), w, out)
    return out


def _as_unsigned(values) -> np.ndarray:
    """Flat C-contiguous unsigned view of ``values`` (narrow unsigned dtypes are kept: no
    uint64 temporary; other integers are taken mod 2^64)."""
    v = np.asarray(values)
    if v.dtype.kind == "b":
        v = v.view(np.uint8)
    elif v.dtype.kind != "u":
        v = v.astype(np.uint64)
    return np.ascontiguousarray(v).reshape(-1)


@njit(cache=True, nogil=True)
def _pack_bits_kernel(v, out):  # pragma: no cover - numba
    """1-bit packing: bit t of out[j] is the low bit of v[8j + t]."""
    n = v.size
    full = n // 8
    for j in range(full):
        b = 0
        for t in range(8):
            b |= (int(v[8 * j + t]) & 1) << t
        out[j] = b
    if n % 8:
        b = 0
        for t in range(n - 8 * full):
            b |= (int(v[8 * full + t]) & 1) << t
        out[full] = b


@njit(cache=True, nogil=True)
def _pack_small_kernel(v, bits, out):  # pragma: no cover - numba
    """Widths 2..7: each group of 8 values is one word of 8*bits bits = ``bits`` bytes."""
    mask = np.uint64((1 << bits) - 1)
    n = v.size
    full = n // 8
    for g in range(full):
        acc = np.uint64(0)
        for t in range(8):
            acc |= (np.uint64(v[8 * g + t]) & mask) << np.uint64(bits * t)
        for b in range(bits):
            out[g * bits + b] = np.uint8((acc >> np.uint64(8 * b)) & np.uint64(0xFF))
    if n > 8 * full:
        acc = np.uint64(0)
        for t in range(n - 8 * full):
            acc |= (np.uint64(v[8 * full + t]) & mask) << np.uint64(bits * t)
        for b in range(out.size - full * bits):
            out[full * bits + b] = np.uint8((acc >> np.uint64(8 * b)) & np.uint64(0xFF))


@njit(cache=True, nogil=True)
def _unpack_small_kernel(raw, bits, out):  # pragma: no cover - numba
    """Inverse of ``_pack_small_kernel``."""
    mask = np.uint64((1 << bits) - 1)
    n = out.size
    full = n // 8
    for g in range(full):
        acc = np.uint64(0)
        for b in range(bits):
            acc |= np.uint64(raw[g * bits + b]) << np.uint64(8 * b)
        for t in range(8):
            out[8 * g + t] = (acc >> np.uint64(bits * t)) & mask
    if n > 8 * full:
        acc = np.uint64(0)
        for b in range(raw.size - full * bits):
            acc |= np.uint64(raw[full * bits + b]) << np.uint64(8 * b)
        for t in range(n - 8 * full):
            out[8 * full + t] = (acc >> np.uint64(bits * t)) & mask


def pack(values: np.ndarray, bits: int) -> bytes:
    """``values`` (any integer dtype; unsigned ones are read as they are) packed to
    ``bits`` bits each."""
    return packed(values, bits).tobytes()


def packed(values: np.ndarray, bits: int) -> np.ndarray:
    """``pack`` as a fresh uint8 array (never a view of ``values``), without the copy into
    a bytes object: what the dealer hands to its sink."""
    bits = _check_bits(bits)
    v = _as_unsigned(values)
    if bits in _ALIGNED:
        return np.array(v, dtype=np.dtype(_ALIGNED[bits]).newbyteorder("<")).view(np.uint8)
    size = packed_size(v.size, bits)
    if bits < 8:
        out = np.empty(size, dtype=np.uint8)
        if bits == 1:
            _pack_bits_kernel(v, out)
        else:
            _pack_small_kernel(v, bits, out)
        return out
    words = np.empty((size + 7) // 8, dtype=np.uint64)  # the kernel writes every word
    _pack_kernel(v, bits, words)
    if not _LITTLE:  # pragma: no cover - big-endian hosts
        words.byteswap(inplace=True)
    return words.view(np.uint8)[:size]


def unpack(buf, bits: int, n: int, dtype=np.uint64) -> np.ndarray:
    """The ``n`` values of ``bits`` bits packed in ``buf``, as ``dtype`` (default uint64;
    any unsigned dtype of at least ``bits`` bits, so small rings need no uint64 array).
    Byte-aligned widths read as their own word type at an aligned address come back as a
    view of ``buf`` (no copy; read-only when ``buf`` is)."""
    bits = _check_bits(bits)
    if n < 0:
        raise ValueError(f"element count must be >= 0, got {n}")
    dtype = np.dtype(dtype)
    if dtype.kind != "u" or dtype.itemsize * 8 < bits:
        raise ValueError(f"cannot unpack {bits}-bit values into {dtype}")
    size = packed_size(n, bits)
    raw = np.frombuffer(buf, dtype=np.uint8)
    if raw.size != size:
        raise ValueError(f"packed buffer holds {raw.size} bytes, expected {size}")
    if bits in _ALIGNED:
        dt = np.dtype(_ALIGNED[bits]).newbyteorder("<")
        words = raw.view(dt)  # kernels need aligned words: a view only if it is aligned
        return words.astype(dtype, copy=not words.flags.aligned)
    if bits == 1:
        out = np.unpackbits(raw, count=n, bitorder="little")
        return out if dtype == np.uint8 else out.astype(dtype)
    if bits < 8:
        out = np.empty(n, dtype=dtype)
        _unpack_small_kernel(raw, bits, out)
        return out
    out = np.empty(n, dtype=dtype)
    _unpack_kernel(*_stream(raw), bits, out)
    return out
