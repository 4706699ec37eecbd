"""Fixed-point encoding of reals in Z_2^k: x -> round(x * 2^f) mod 2^k (two's complement).

Exact for |x| * 2^f < 2^(k-1) and |x * 2^f| < 2^53 (float64 mantissa); values outside
raise ``OverflowError`` rather than wrap silently.
"""

from __future__ import annotations

import numpy as np

from mpc.ring import Ring


def encode(x, f: int, r: Ring) -> np.ndarray:
    scaled = np.rint(np.asarray(x, dtype=np.float64) * float(2**f))
    limit = float(2 ** min(r.k - 1, 53))
    if scaled.size and np.abs(scaled).max() >= limit:
        raise OverflowError(f"value does not fit {f} fractional bits in {r!r}")
    return r.reduce(scaled.astype(np.int64))


def decode(a, f: int, r: Ring) -> np.ndarray:
    return r.signed(a).astype(np.float64) / float(2**f)
