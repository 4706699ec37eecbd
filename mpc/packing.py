"""Bit-packing of ring elements for the wire: exactly ``bits`` bits per element.

``pack(values, bits)`` -> ``ceil(n*bits/8)`` bytes, little-endian bit order;
``unpack(buf, bits, n)`` inverts it. Byte-aligned widths (8/16/32/64) are plain casts.
"""

from __future__ import annotations

import numpy as np

_ALIGNED = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}


def packed_size(n: int, bits: int) -> int:
    return (n * bits + 7) // 8


def pack(values: np.ndarray, bits: int) -> bytes:
    v = np.ascontiguousarray(values, dtype=np.uint64).ravel()
    if bits in _ALIGNED:
        return v.astype(np.dtype(_ALIGNED[bits]).newbyteorder("<"), copy=False).tobytes()
    shifts = np.arange(bits, dtype=np.uint64)
    bitmat = ((v[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bitmat.ravel(), bitorder="little").tobytes()


def unpack(buf, bits: int, n: int) -> np.ndarray:
    size = packed_size(n, bits)
    if len(buf) != size:
        raise ValueError(f"packed buffer holds {len(buf)} bytes, expected {size}")
    if bits in _ALIGNED:
        dt = np.dtype(_ALIGNED[bits]).newbyteorder("<")
        return np.frombuffer(buf, dtype=dt, count=n).astype(np.uint64)
    raw = np.unpackbits(np.frombuffer(buf, dtype=np.uint8), bitorder="little")
    bitmat = raw[: n * bits].reshape(n, bits).astype(np.uint64)
    return (bitmat << np.arange(bits, dtype=np.uint64)).sum(axis=1, dtype=np.uint64)
