"""Bit-packing of ring elements for the wire: exactly ``bits`` bits per element.

``pack(values, bits)`` -> ``ceil(n*bits/8)`` bytes, little-endian bit order (bit ``j`` of
element ``i`` is bit ``(i*bits + j) % 8`` of byte ``(i*bits + j) // 8``); only the low
``bits`` bits of each value are sent. ``unpack(buf, bits, n)`` inverts it and raises
``ValueError`` if ``buf`` does not hold exactly ``packed_size(n, bits)`` bytes.

Byte-aligned widths (8/16/32/64) are plain little-endian casts; the other widths run a
Numba kernel that streams 64-bit words (a few ms for a million values). The kernels release
the GIL so parties running as threads can pack concurrently.
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


@njit(cache=True, nogil=True)
def _unpack_kernel(words, bits, out):  # pragma: no cover - numba
    """Inverse of _pack_kernel; ``words`` carries one extra zero word of padding."""
    mask = (np.uint64(1) << np.uint64(bits)) - np.uint64(1)
    b = np.uint64(bits)
    acc = words[0]
    nacc = np.uint64(64)  # unread bits left in acc
    w = 1
    for i in range(out.size):
        if nacc >= b:
            out[i] = acc & mask
            acc = acc >> b if b < 64 else np.uint64(0)
            nacc -= b
        else:
            nxt = words[w]
            w += 1
            # low nacc bits from acc, the rest from the next word
            out[i] = (acc | (nxt << nacc)) & mask
            used = b - nacc
            acc = nxt >> used
            nacc = np.uint64(64) - used


def pack(values: np.ndarray, bits: int) -> bytes:
    bits = _check_bits(bits)
    v = np.ascontiguousarray(values, dtype=np.uint64).ravel()
    if bits in _ALIGNED:
        return v.astype(np.dtype(_ALIGNED[bits]).newbyteorder("<"), copy=False).tobytes()
    size = packed_size(v.size, bits)
    words = np.zeros((size + 7) // 8, dtype=np.uint64)
    _pack_kernel(v, bits, words)
    if not _LITTLE:  # pragma: no cover - big-endian hosts
        words.byteswap(inplace=True)
    return words.view(np.uint8)[:size].tobytes()


def unpack(buf, bits: int, n: int) -> np.ndarray:
    bits = _check_bits(bits)
    if n < 0:
        raise ValueError(f"element count must be >= 0, got {n}")
    size = packed_size(n, bits)
    raw = np.frombuffer(buf, dtype=np.uint8)
    if raw.size != size:
        raise ValueError(f"packed buffer holds {raw.size} bytes, expected {size}")
    if bits in _ALIGNED:
        dt = np.dtype(_ALIGNED[bits]).newbyteorder("<")
        return raw.view(dt).astype(np.uint64)
    words = np.zeros((size + 7) // 8 + 1, dtype=np.uint64)
    words.view(np.uint8)[:size] = raw
    if not _LITTLE:  # pragma: no cover - big-endian hosts
        words.byteswap(inplace=True)
    out = np.empty(n, dtype=np.uint64)
    _unpack_kernel(words, bits, out)
    return out
