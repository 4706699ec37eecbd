"""Fused Numba kernels of the private comparison (``protocols.compare.private_less``): each
party makes one pass per protocol step over its [N, n] data, in narrow dtypes where the
runtime does not need uint64. Arguments are C-contiguous 2-D arrays (rows = instances)."""

from __future__ import annotations

import numpy as np
from numba import njit

U64 = np.uint64


@njit(cache=True, nogil=True)
def _bits_xor(v, m, a, out):  # pragma: no cover - numba
    for r in range(v.size):
        for t in range(m):
            out[r, t] = ((v[r] >> np.uint64(m - 1 - t)) & np.uint64(1)) ^ a[r, t]


def bits_xor(v: np.ndarray, m: int, a: np.ndarray) -> np.ndarray:
    """bits(v) (MSB first, m bits) xor a, as uint8 [N, m]."""
    out = np.empty((v.size, m), dtype=np.uint8)
    _bits_xor(np.ascontiguousarray(v, dtype=U64).ravel(), m, a.reshape(v.size, m), out)
    return out


@njit(cache=True, nogil=True)
def _b2a_fnz(mine, other, c, mask, p, p1, out):  # pragma: no cover - numba
    rows, m = mine.shape
    q = np.int64(p)
    # zt[d * p + c] = z for opened bit d and share c; md[v] = v mod p. The running sum is
    # kept unreduced (< (m + 2) p), so the loop carries no table load.
    zt = np.empty(2 * q, dtype=np.uint8)
    for v in range(q):
        zt[v] = v
        zt[q + v] = ((q - v) + p1) % q
    top = (m + 5) * q
    md = np.empty(top, dtype=np.uint8)
    for v in range(top):
        md[v] = v % q
    for r in range(rows):
        s = np.int64(p1)  # sum_{t<=j} z_t, plus the constant 1 on P1
        for t in range(m):
            z = np.int64(zt[np.int64(mine[r, t] ^ other[r, t]) * q + np.int64(c[r, t])])
            s += z
            out[r, t] = md[s + 3 * q - 2 * z - np.int64(mask[r, t])]  # y_j - mask
        z = np.int64(p1)  # the public pad 1 (added by P1)
        s += z
        out[r, m] = md[s + 3 * q - 2 * z - np.int64(mask[r, m])]


def b2a_fnz(mine, other, c, mask, p: int, p1: bool, dtype=U64) -> np.ndarray:
    """This party's share of the fnz input of the padded z, minus ``mask``: from its masked
    bits ``mine`` and the peer's ``other`` (d = mine xor other), its share ``c`` of
    a'_1 xor a'_2 in F_p: z = d + (-1)^d c (d added by P1), y_j = sum_{t<=j} z_t - 2 z_j + 1
    over z || 1, returns y - mask as ``dtype`` [N, m + 1] (it must hold p - 1)."""
    rows, m = mine.shape
    out = np.empty((rows, m + 1), dtype=dtype)
    _b2a_fnz(
        mine,
        other.reshape(rows, m),
        c.reshape(rows, m),
        mask.reshape(rows, m + 1),
        U64(p),
        int(p1),
        out,
    )
    return out


@njit(cache=True, nogil=True)
def _zero_pos(w, big_u, p, out):  # pragma: no cover - numba
    rows, n = w.shape
    for r in range(rows):
        out[r] = 0
        for t in range(n):
            s = w[r, t] + big_u[r, t]
            if s == 0 or s == p:
                out[r] = t
                break


def zero_pos(w: np.ndarray, big_u: np.ndarray, p: int) -> np.ndarray:
    """Per row, the t with w + U = 0 mod p (the recovered vector's single zero)."""
    rows, n = w.shape
    out = np.empty(rows, dtype=np.int64)
    _zero_pos(w, big_u.reshape(rows, n), U64(p), out)
    return out


@njit(cache=True, nogil=True)
def _pick_msg(v, m, pad, j, mask, out):  # pragma: no cover - numba
    rows, n = out.shape
    for r in range(rows):
        for t in range(n):
            c = t + j[r]
            if c >= n:
                c -= n
            bit = (v[r] >> np.uint64(m - 1 - c)) & np.uint64(1) if c < m else np.uint64(pad)
            out[r, t] = bit ^ mask[r, t]


def pick_msg(v: np.ndarray, m: int, pad: int, j: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(L_j (bits(v) || pad)) xor mask, uint64 [N, m + 1]."""
    out = np.empty((v.size, m + 1), dtype=U64)
    _pick_msg(
        np.ascontiguousarray(v, dtype=U64).ravel(), m, pad, j, mask.reshape(v.size, m + 1), out
    )
    return out


@njit(cache=True, nogil=True)
def _zero_pick(w, big_u, p, v, m, pad, mask, out):  # pragma: no cover - numba
    rows, n = out.shape
    full = (np.uint64(1) << np.uint64(n)) - np.uint64(1) if n < 64 else ~np.uint64(0)
    for r in range(rows):
        j = 0
        for t in range(n):
            s = np.uint64(w[r, t]) + np.uint64(big_u[r, t])
            if s == 0 or s == p:
                j = t
                break
        # bits(v) || pad as an n-bit word, entry t at bit n-1-t; rotated left by j
        word = (v[r] << np.uint64(1)) | np.uint64(pad)
        if j:
            word = ((word << np.uint64(j)) | (word >> np.uint64(n - j))) & full
        for t in range(n):
            out[r, t] = np.uint8((word >> np.uint64(n - 1 - t)) & np.uint64(1)) ^ mask[r, t]


def zero_pick(w, big_u, p: int, v, m: int, pad: int, mask) -> np.ndarray:
    """``pick_msg`` at j = ``zero_pos(w, big_u, p)`` in one pass, as uint8 [N, m + 1]."""
    rows, n = w.shape
    out = np.empty((rows, n), dtype=np.uint8)
    _zero_pick(
        w,
        big_u.reshape(rows, n),
        U64(p),
        np.ascontiguousarray(v, dtype=U64).ravel(),
        m,
        pad,
        mask.reshape(rows, n),
        out,
    )
    return out


@njit(cache=True, nogil=True)
def _pick_out(dv, i, c, out):  # pragma: no cover - numba
    for r in range(out.size):
        out[r] = dv[r, i[r]] ^ c[r]


def pick_out(dv: np.ndarray, i: np.ndarray, c: np.ndarray) -> np.ndarray:
    out = np.empty(i.size, dtype=U64)
    _pick_out(
        dv.reshape(i.size, -1),
        np.ascontiguousarray(i, dtype=np.int64).ravel(),
        np.ascontiguousarray(c, dtype=U64).ravel(),
        out,
    )
    return out
