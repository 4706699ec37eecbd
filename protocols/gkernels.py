"""Numba kernels and seeded draws for the G-module protocols (``protocols.gmodule``,
``protocols.compare``): modular arithmetic in small prime fields without 64-bit division,
per-row cyclic shifts, and PRG draws done in chunks so a million-element draw makes no
large temporaries.

Draws (``draw``): rings Z_2^k (k > 1) take the same words as ``PRG.ring`` (same values);
bits take one keystream bit each; F_p and Z_m use rejection sampling on the narrowest word
(exactly uniform, ~1.2 keystream bytes per F_37 element instead of ``PRG.field``'s 8), so a
protocol draws on every party through ``draw`` / ``private`` / ``dealer_share`` here.
"""

from __future__ import annotations

from math import prod

import numpy as np
from numba import njit

from mpc.ring import Ring

U64 = np.uint64
CHUNK = 1 << 18  # words per PRG call


@njit(cache=True, nogil=True)
def _accept(w, m, t, out, filled, n):  # pragma: no cover - numba
    """Append w[k] mod m for every word w[k] < t (t a multiple of m) until n are filled."""
    for k in range(w.size):
        if filled >= n:
            break
        x = w[k]
        if x < t:
            out[filled] = x % m
            filled += 1
    return filled


@njit(cache=True, nogil=True)
def _accept_tab(w, tab, out, filled, n):  # pragma: no cover - numba
    """Same with a table tab[w] = w mod m, or 2^16 - 1 for a rejected word (out has n + 1)."""
    if n - filled >= w.size:  # every word fits: no exit test in the loop
        for k in range(w.size):
            v = tab[w[k]]
            out[filled] = v
            filled += v != 0xFFFF
        return filled
    for k in range(w.size):
        v = tab[w[k]]
        out[filled] = v
        filled += v != 0xFFFF
        if filled >= n:
            break
    return filled


def _words_for(m: int):
    for bits, dt in ((8, np.uint8), (16, np.uint16), (32, np.uint32), (64, U64)):
        if m <= 1 << bits:
            return dt, (1 << bits) - (1 << bits) % m
    raise ValueError(f"modulus {m} too large")


def _table(m: int, dt, t: int) -> np.ndarray:
    size = 1 << (8 * np.dtype(dt).itemsize)
    tab = np.arange(size, dtype=np.uint32) % m
    tab[t:] = 0xFFFF
    return tab.astype(np.uint16)


def draw(prg, dom, shape, dtype=U64) -> np.ndarray:
    """Uniform elements of ``dom`` (Ring, PrimeField or anything with ``modulus``), as
    ``dtype`` (uint64 by default; a narrower unsigned type must hold the modulus)."""
    shape = tuple(int(s) for s in shape)
    n = prod(shape)
    if isinstance(dom, Ring) and dom.k == 1:
        raw = prg.words(np.uint8, ((n + 7) // 8,))
        bits = np.unpackbits(raw, count=n, bitorder="little")
        return (bits if dtype == np.uint8 else bits.astype(dtype)).reshape(shape)
    if isinstance(dom, Ring):
        out = np.empty(n, dtype=dtype)
        dt = next(
            d for b, d in ((8, np.uint8), (16, np.uint16), (32, np.uint32), (64, U64)) if dom.k <= b
        )
        size = np.dtype(dt).itemsize
        buf = np.empty(min(n, CHUNK) * size + 16, dtype=np.uint8)
        for s in range(0, n, CHUNK):
            e = min(n, s + CHUNK)
            out[s:e] = prg.fill(buf, (e - s) * size).view(dt)
        if dom.k < 64:
            np.bitwise_and(out, out.dtype.type(dom.mask), out=out)
        return out.reshape(shape)
    m = int(dom.modulus)
    dt, t = _words_for(m)
    rate = t / float(1 << (8 * np.dtype(dt).itemsize))
    tab = _table(m, dt, t) if m < 0xFFFF and dt in (np.uint8, np.uint16) else None
    out = np.empty(n + (tab is not None), dtype=dtype)
    filled = 0
    size = np.dtype(dt).itemsize
    buf = np.empty(min(CHUNK, int(n / rate * 1.02) + 16) * size + 16, dtype=np.uint8)
    while filled < n:
        c = min(CHUNK, int((n - filled) / rate * 1.02) + 16)
        w = prg.fill(buf, c * size).view(dt)
        if tab is None:
            filled = _accept(w, U64(m), U64(t), out, filled, n)
        else:
            filled = _accept_tab(w, tab, out, filled, n)
    return out[:n].reshape(shape)


def below(prg, bound: int, shape) -> np.ndarray:
    """Uniform integers in [0, bound)."""
    return draw(prg, _Mod(bound), shape)


class _Mod:
    def __init__(self, m):
        self.modulus = m


def private(rt, dom, shape, party: int, dtype=U64) -> np.ndarray | None:
    """Like ``rt.private_random`` (known to P0 and ``party``), drawn with ``draw``."""
    if rt.is_dealer:
        return draw(rt.prg(party), dom, shape, dtype)
    if rt.rank == party:
        return draw(rt.prg(0), dom, shape, dtype)
    return None


def private_below(rt, bound: int, shape, party: int, dtype=U64) -> np.ndarray | None:
    return private(rt, _Mod(bound), shape, party, dtype)


def dealer_share(rt, dom, shape, value=None, dtype=U64) -> np.ndarray | None:
    """Like ``rt.dealer_shared``: P1's share from the seed, P2's the correction. Returns
    this party's share data as ``dtype`` (None on P0, which passes ``value``)."""
    if rt.is_dealer:
        c1 = draw(rt.prg(1), dom, shape)
        rt.deal(2, dom, sub(value, c1, dom))
        return None
    if rt.rank == 1:
        return draw(rt.prg(0), dom, shape, dtype)
    return rt.take(dom, shape, dtype)


# -- modular arithmetic (uint64 arrays, canonical inputs) ------------------------------------
@njit(cache=True, nogil=True)
def _add(a, b, p, out):  # pragma: no cover - numba
    for k in range(out.size):
        s = a[k] + b[k]
        out[k] = s - p if s >= p else s


@njit(cache=True, nogil=True)
def _sub(a, b, p, out):  # pragma: no cover - numba
    for k in range(out.size):
        s = a[k] + (p - b[k])
        out[k] = s - p if s >= p else s


@njit(cache=True, nogil=True)
def _mul(a, b, p, out):  # pragma: no cover - numba
    if p < 65536:
        q = np.uint32(p)
        for k in range(out.size):
            out[k] = (np.uint32(a[k]) * np.uint32(b[k])) % q
    else:
        for k in range(out.size):
            out[k] = (a[k] * b[k]) % p


def _binary(kernel, a, b, dom):
    a, b = np.asarray(a, dtype=U64), np.asarray(b, dtype=U64)
    shape = np.broadcast_shapes(a.shape, b.shape)
    a, b = np.broadcast_to(a, shape), np.broadcast_to(b, shape)
    out = np.empty(a.shape, dtype=U64)
    kernel(
        np.ascontiguousarray(a).ravel(),
        np.ascontiguousarray(b).ravel(),
        U64(dom.modulus),
        out.reshape(-1),
    )
    return out


def _ring_op(op, a, b):
    with np.errstate(over="ignore"):  # 0-d operands are numpy scalars, which warn on wrap
        return op(a, b)


def add(a, b, dom):
    return _ring_op(dom.add, a, b) if isinstance(dom, Ring) else _binary(_add, a, b, dom)


def sub(a, b, dom):
    return _ring_op(dom.sub, a, b) if isinstance(dom, Ring) else _binary(_sub, a, b, dom)


def mul(a, b, dom):
    return _ring_op(dom.mul, a, b) if isinstance(dom, Ring) else _binary(_mul, a, b, dom)


@njit(cache=True, nogil=True)
def _pm1_add(t, v, p, add_t, out):  # pragma: no cover - numba
    for k in range(out.size):
        x = v[k]
        if t[k] and x:
            x = p - x
        if add_t:
            x += t[k]
            if x >= p:
                x -= p
        out[k] = x


def pm1_add(t, v, dom, add_t: bool) -> np.ndarray:
    """(-1)^t v (+ t if ``add_t``) mod p, for 0/1 t and field elements v of one shape."""
    t = np.ascontiguousarray(t, dtype=U64)
    out = np.empty(t.shape, dtype=U64)
    _pm1_add(
        t.ravel(),
        np.ascontiguousarray(v, dtype=U64).ravel(),
        U64(dom.modulus),
        add_t,
        out.reshape(-1),
    )
    return out


# -- per-row shifts --------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _rotate(v, i, out):  # pragma: no cover - numba
    rows, n = v.shape
    for r in range(rows):
        s = i[r] % n
        for t in range(n):
            c = t + s
            if c >= n:
                c -= n
            out[r, t] = v[r, c]


def rotate(v: np.ndarray, i: np.ndarray) -> np.ndarray:
    """(L_i v)[..., j] = v[..., (j + i) mod n], one shift per vector."""
    v = np.asarray(v)
    n = v.shape[-1]
    i = np.broadcast_to(np.asarray(i, dtype=np.int64), v.shape[:-1])
    out = np.empty(v.shape, dtype=v.dtype)
    if v.size:
        _rotate(
            np.ascontiguousarray(v).reshape(-1, n),
            np.ascontiguousarray(i).ravel(),
            out.reshape(-1, n),
        )
    return out


@njit(cache=True, nogil=True)
def _rot_mul_add_tab(x, y, u, i, p, out):  # pragma: no cover - numba
    """``_rot_mul_add`` for p <= 256 by a table mt[a * 2p + b] = a b mod p (b < 2p), and
    each row's rotation as two straight runs."""
    rows, n = x.shape
    q = np.int64(p)
    mt = np.empty(2 * q * q, dtype=np.uint8)
    for a in range(q):
        for b in range(2 * q):
            mt[a * 2 * q + b] = (a * b) % q
    for r in range(rows):
        s = np.int64(i[r])
        for t in range(n - s):
            c = t + s
            out[r, t] = mt[np.int64(u[r, c]) * 2 * q + np.int64(x[r, c]) + np.int64(y[r, c])]
        for t in range(n - s, n):
            c = t + s - n
            out[r, t] = mt[np.int64(u[r, c]) * 2 * q + np.int64(x[r, c]) + np.int64(y[r, c])]


@njit(cache=True, nogil=True)
def _rot_mul_add(x, y, u, i, p, out):  # pragma: no cover - numba
    rows, n = x.shape
    small = p < 65536
    for r in range(rows):
        s = i[r]
        for t in range(n):
            c = t + s
            if c >= n:
                c -= n
            a = np.uint64(x[r, c]) + np.uint64(y[r, c])
            if a >= p:
                a -= p
            if small:
                out[r, t] = (np.uint32(u[r, c]) * np.uint32(a)) % np.uint32(p)
            else:
                out[r, t] = (u[r, c] * a) % p


def rot_mul_add(x, y, u, i, p: int, dtype=U64) -> np.ndarray:
    """L_i(u * (x + y)) mod p, row-wise (the recover's group action on a sum), as
    ``dtype`` (which must hold p - 1)."""
    n = x.shape[-1]
    out = np.empty(x.shape, dtype=dtype)
    if x.size:
        c = [np.ascontiguousarray(a).reshape(-1, n) for a in (x, y, u)]
        kernel = _rot_mul_add_tab if p <= 256 else _rot_mul_add
        kernel(*c, np.ascontiguousarray(i, dtype=np.int64).ravel(), U64(p), out.reshape(-1, n))
    return out


@njit(cache=True, nogil=True)
def _prefix_input(x, p, c, out):  # pragma: no cover - numba
    rows, n = x.shape
    for r in range(rows):
        s = c  # running sum_{t<=j} x_t + c
        for t in range(n):
            z = x[r, t]
            s += z
            if s >= p:
                s -= p
            v = s + p + p - z - z
            while v >= p:
                v -= p
            out[r, t] = v


def fnz_input(x: np.ndarray, p: int, c: int) -> np.ndarray:
    """Share of y_j = sum_{t<=j} x_t - 2 x_j + c mod p (c = 1 on one party, 0 on the other)."""
    n = x.shape[-1]
    out = np.empty(x.shape, dtype=U64)
    if out.size:
        _prefix_input(
            np.ascontiguousarray(x, dtype=U64).reshape(-1, n), U64(p), U64(c), out.reshape(-1, n)
        )
    return out
