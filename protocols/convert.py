"""Precision conversion without a truncation protocol (project notes §4.2), and ring
up/down conversion for dual shares.

``requant``: acc shared over Z_2^B (read as two's complement), output T[h] for h about
acc / 2^c, where the public table T (length 2^(B-c), indexed by h mod 2^(B-c)) folds scale,
zero point, clamp and activation (``requant_table``). One mask r in Z_2^B (free); online
open delta = acc - r (B bits per party, 1 round). Write r = r_h 2^c + r_l.

* stochastic (default): index delta* = delta - 1 (public), T'[j] = T[j + r_h + 1] gathered
  at floor(delta*/2^c). Output T[floor(acc/2^c) + eps], eps = [r_l < acc mod 2^c]:
  unbiased stochastic rounding, P(eps = 1) = (acc mod 2^c)/2^c exactly (without the public
  -1 it would be (acc mod 2^c + 1)/2^c). Offline 2^(B-c) m bits per element and table.
  The index wraps mod 2^(B-c): keep acc < 2^(B-1) - 2^c to avoid the top entry wrapping.
* exact: output T[floor(acc/2^c)]. The carry k = [delta_l + r_l >= 2^c] (public delta_l,
  r_l known to P0) is opened masked by a dealer bit u, t = k xor u (1 bit per party), and
  the output gathered from the 2-column table U[j, t] = T[j + r_h + (t xor u)] (2^(B-c+1) m
  bits offline). Carry shares come from one of:
  - one digit (c <= 12): a dealt XOR table K[j] = [j + r_l >= 2^c] xor u, gathered at
    delta_l (2^c bits offline). 2 rounds, B + 1 bits per party online.
  - k >= 2 digits of w_i <= 12 bits: per digit an XOR-shared one-hot at the propagate
    position p_i = 2^w_i - 1 - r_i; at the public digit delta_i its prefix parity is
    ge_i = [delta_i >= p_i] (generate or propagate) and its bit is eq_i = [delta_i = p_i]
    (propagate); ge_i, eq_i xor rho (seed bits) are opened (2k bits) and the carry is a
    dealt XOR table over the opened codes (4^k entries, permuted by rho, xor u). 3 rounds,
    B + 2k + 1 bits online, offline sum_i 2^w_i (whole words) + 4^k bits (half of Z_4 state
    tables). Every table index stays <= 12 bits.

``requant_masked_steps``: the exact form with the output revealed under fresh dealer masks
(y = pub[t] - lam[t], both gathered candidates opened masked in the last round) instead
of shared, so a product with y needs dealt products with the two masks only (for few
elements: the LayerNorm's rsqrt per row).

``extend`` (Z_2^k -> Z_2^B): wrap-bit method, not an identity LUT: same online cost (k bits,
1 round) but 2^k (B-k) instead of 2^k B offline bits. With R in Z_2^B from the seeds
(free), r = R mod 2^k, R_h = R >> k: open delta = x - r in Z_2^k; x = delta + R - 2^k K[delta]
with the dealt table K[j] = [j + r >= 2^k] + R_h over Z_2^(B-k). Signed: shift by 2^(k-1).
Down conversion is free (``Shared.reduce``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numba import njit

from mpc.cost import Cost, msg
from mpc.prg import PRG, fresh_seed
from mpc.ring import BOOL, DomainMismatch, Ring, ring
from mpc.shares import Dual, Shared
from protocols.lut import (
    MAX_INDEX_BITS,
    MULTI_INDEX_BITS,
    _check_tables,
    _size,
    deal_fused,
    deal_tables,
    gather,
    rotate,
)
from protocols.onehotvec import WORD, deal_onehot, step_bits
from protocols.steps import run

U64 = np.uint64


def requant_table(
    fn, in_bits: int, *, in_scale=1.0, out_scale=1.0, zero_point=0, lo=-128, hi=127
) -> np.ndarray:
    """Table of length 2^in_bits indexed by h mod 2^in_bits (h signed): entry =
    clamp(round(fn(h * in_scale) / out_scale) + zero_point, lo, hi); fn None = identity.
    Rounding is half to even (np.rint)."""
    j = np.arange(1 << in_bits, dtype=np.int64)
    h = (j - ((j >> (in_bits - 1)) << in_bits)).astype(np.float64) * in_scale
    y = h if fn is None else np.asarray(fn(h), dtype=np.float64)
    return np.clip(np.rint(y / out_scale) + zero_point, lo, hi).astype(np.int64)


# -- parameters -----------------------------------------------------------------------------
def _digits(c: int, k: int) -> list[int]:
    return [c // k + (i < c % k) for i in range(k)]


def carry_bits(c: int, k: int) -> int:
    """Dealt bits per element of a k-digit carry of c bits (k >= 2): a one-hot of whole
    64-bit words per digit and the 4^k carry table."""
    return sum(64 * -(-(1 << w) // 64) for w in _digits(c, k)) + 4**k


def carry_plan(c: int, carry_digits=None, max_index_bits=MULTI_INDEX_BITS) -> list[int]:
    """Digit widths (low to high) used to resolve the carry of the low c bits. Default:
    one digit if c <= 8, else the k in 2..6 with the fewest offline bits."""
    lim = min(max_index_bits, MAX_INDEX_BITS)
    if carry_digits is None:
        if c <= min(8, lim):
            return [c]
        ks = [k for k in range(2, 7) if -(-c // k) <= lim and 2 * k <= lim and k <= c]
        if not ks:
            raise ValueError(f"cannot split a {c}-bit carry into tables of <= 2^{lim}")
        return _digits(c, min(ks, key=lambda k: carry_bits(c, k)))
    k = int(carry_digits)
    if not 1 <= k <= c or -(-c // k) > lim or (k > 1 and 2 * k > lim):
        raise ValueError(f"{k} carry digits for c={c} need tables beyond 2^{lim} entries")
    return _digits(c, k)


def _check_requant(acc, c, tables, exact, max_index_bits):
    if not isinstance(acc, Shared) or not isinstance(acc.dom, Ring):
        raise DomainMismatch(f"requant input must be a share over a ring, got {acc!r}")
    B = acc.dom.k
    if not 1 <= c < B:
        raise ValueError(f"shift c={c} must be in 1..{B - 1} for Z2^{B}")
    hb = B - c
    lim = min(max_index_bits, MAX_INDEX_BITS) if exact else MAX_INDEX_BITS
    if hb + exact > lim:
        raise ValueError(f"requant table of 2^{hb + exact} entries exceeds the limit 2^{lim}")
    return B, _check_tables(tables, [hb])


# -- requant --------------------------------------------------------------------------------
def requant(
    rt,
    acc: Shared,
    c: int,
    tables,
    *,
    exact=False,
    carry_digits=None,
    max_index_bits=MULTI_INDEX_BITS,
) -> list[Shared]:
    """Shares of T[floor(acc / 2^c) (+ eps)] for each (T, dom) in ``tables`` (T of length
    2^(B-c)); stochastic rounding by default, ``exact=True`` for floor. Cost:
    ``cost_requant``."""
    B, tabs = _check_requant(acc, c, tables, exact, max_index_bits)
    plan = carry_plan(c, carry_digits, max_index_bits) if exact else None
    hb, shape, n = B - c, acc.shape, acc.size
    lmask = U64((1 << c) - 1)
    r = rt.random_shared(ring(B), shape)
    rf = r.reshape(-1) if rt.is_dealer else None
    if not exact:
        outs = [
            deal_tables(
                rt,
                d,
                n,
                1 << hb,
                lambda lo, hi, t=t: rotate(t, (rf[lo:hi] >> U64(c)) + U64(1)),
                lazy=True,
            )
            for t, d in tabs
        ]
        if rt.is_dealer:
            return [Shared.phantom(d, shape) for _, d in tabs]
        delta = _open(rt, acc - r)
        idx = ((delta - U64(1)) & acc.dom.mask) >> U64(c)
        return [
            Shared(d, gather(t, idx).reshape(shape), rt.rank)
            for t, (_, d) in zip(outs, tabs, strict=True)
        ]

    priv = PRG(fresh_seed(), "p0-private") if rt.is_dealer else None
    u = priv.bits((n,)) if priv else None
    ckey = deal_carry(rt, rf, c, plan, u, n)
    utabs = [
        deal_tables(
            rt,
            d,
            n,
            2 << hb,
            lambda lo, hi, t=t: _two_column(t, rf[lo:hi] >> U64(c), u[lo:hi]),
            lazy=True,
        )
        for t, d in tabs
    ]
    if rt.is_dealer:
        return [Shared.phantom(d, shape) for _, d in tabs]

    delta = _open(rt, acc - r).reshape(-1)
    dh, dl = delta >> U64(c), delta & lmask
    tsh = carry_share(rt, ckey, dl)
    (to,) = rt.exchange([(BOOL, tsh)])
    idx = (dh << U64(1)) | (tsh ^ to)
    return [
        Shared(d, gather(t, idx).reshape(shape), rt.rank)
        for t, (_, d) in zip(utabs, tabs, strict=True)
    ]


# -- exact requant revealed under dealer masks ---------------------------------------------
@dataclass(frozen=True, eq=False)
class MaskedOut:
    """y = pub[t] - lam[t] per element, ``requant_masked_steps``' output: t (n,), pub (n, 2)
    public on P1/P2 (None on P0); lam (n, 2) the dealer's masks, plaintext on P0 and
    shares on P1/P2 (over the output ring). A product with y needs dealt products with
    lam only: one mask per slot, whatever the table's width."""

    dom: Ring
    t: np.ndarray | None
    pub: np.ndarray | None
    lam: np.ndarray

    def select(self, v: np.ndarray) -> np.ndarray:
        """v[i, t_i] of an (n, 2) array (P1/P2)."""
        return np.take_along_axis(v, self.t.astype(np.intp)[:, None], axis=1)[:, 0]

    def shared(self, rt, shape) -> Shared:
        """Plain shares of y (a phantom on P0)."""
        if rt.is_dealer:
            return Shared.phantom(self.dom, shape)
        pub = self.select(self.pub) if rt.rank == 1 else U64(0)
        return Shared(self.dom, self.dom.sub(pub, self.select(self.lam)).reshape(shape), rt.rank)


def requant_masked_steps(rt, acc: Shared, c: int, table, dom: Ring, *, carry_digits=None):
    """Step form of the exact requant y = T[floor(acc / 2^c)] (T of length 2^(B-c), over
    ``dom``) whose last round opens y's two candidates under fresh dealer masks instead of
    sharing y: the arithmetic two-column table of ``requant(exact=True)``, the carry
    opened as t = k xor u and both gathered candidates U[dh, t'] + lam[t'] opened in the
    same round. Returns ``MaskedOut``. For few elements (rows): 2^(B-c+1) table entries
    each. Online B + carry + 1 + 2 |dom| bits per party; 2 or 3 rounds
    (``cost_requant_masked``)."""
    B, ((t, dom),) = _check_requant(acc, c, [(table, dom)], True, MULTI_INDEX_BITS)
    plan = carry_plan(c, carry_digits)
    hb, n = B - c, acc.size
    r = rt.random_shared(ring(B), acc.shape)
    rf = r.reshape(-1) if rt.is_dealer else None
    u = PRG(fresh_seed(), "p0-private").bits((n,)) if rt.is_dealer else None
    ckey = deal_carry(rt, rf, c, plan, u, n)
    tab = deal_tables(
        rt, dom, n, 2 << hb, lambda lo, hi: _two_column(t, rf[lo:hi] >> U64(c), u[lo:hi])
    )
    lam = rt.random_shared(dom, (n, 2))
    if rt.is_dealer:
        return MaskedOut(dom, None, None, lam)
    mine = acc - r
    (do,) = yield [(mine.dom, mine.data)]
    delta = mine.dom.add(mine.data, do).reshape(-1)
    tsh = yield from carry_steps(ckey, delta & U64((1 << c) - 1))
    idx = (delta >> U64(c))[:, None] * U64(2) + np.arange(2, dtype=U64)
    cand = dom.add(np.take_along_axis(tab, idx.astype(np.intp), axis=1), lam.data)
    to, co = yield [(BOOL, tsh), (dom, cand)]
    return MaskedOut(dom, tsh ^ to, dom.add(cand, co), lam.data)


def cost_requant_masked(shape, B: int, c: int, dom: Ring, *, carry_digits=None) -> Cost:
    n, hb = _size(shape), B - c
    cc = cost_carry(n, c, carry_plan(c, carry_digits))
    on = msg(ring(B), n) + cc.online[0] + msg(BOOL, n) + msg(dom, 2 * n)
    return Cost((on, on), (0, cc.offline[1] + msg(dom, n << (hb + 1))), 2 + cc.rounds)


# -- carry of the low c bits (shared by the exact requants) ---------------------------------
def deal_carry(rt, rf, c: int, plan: list[int], u, n: int):
    """Deal the material giving XOR shares of k xor u, k = [delta_l + r_l >= 2^c], for n
    elements with flat masks ``rf`` and dealer bits ``u`` (P0's, None elsewhere): one XOR
    table over delta_l (one digit), or per digit a one-hot at p_i = 2^w - 1 - r_i (the
    propagate position) with mask bits rho (seeds, 2 per digit) and a 4^k carry table.
    P0 computes each table's packed correction in one kernel pass (``deal_fused``)."""
    k = len(plan)
    if rt.is_dealer:
        rf, u = np.ascontiguousarray(rf, dtype=U64), np.ascontiguousarray(u, dtype=U64)
    if k == 1:
        if not rt.is_dealer:
            return plan, deal_tables(rt, BOOL, n, 1 << c, None, lazy=True), None, None
        if not 3 <= c <= 8:  # rows shorter than a byte, or too many rows to precompute
            deal_fused(rt, n, 1 << c, lambda lo, hi, out: _step_bits(rf[lo:hi], c, u[lo:hi], out))
        else:
            W, rows = 1 << c, _step_rows(c)
            edge = (W - (rf & U64(W - 1))).astype(np.intp)  # entries j >= edge carry
            deal_fused(rt, n, W, lambda lo, hi, out: _flip_rows(rows, edge[lo:hi], u[lo:hi], out))
        return None
    rho = rt.random_bits((n, 2 * k))
    offs = np.cumsum([0] + plan[:-1]).tolist()
    hots = []
    for w, o in zip(plan, offs, strict=True):
        m = U64((1 << w) - 1)
        pos = (np.zeros(n, U64), m - ((rf >> U64(o)) & m)) if rt.is_dealer else None
        hots.append(deal_onehot(rt, n, w, pos, halves=1))
    if not rt.is_dealer:
        return plan, hots, rho, deal_tables(rt, BOOL, n, 4**k, None, lazy=True)
    rflat = np.zeros(n, dtype=np.int64)
    for d in range(k):  # digit 0 (lowest) in the top bits, as in carry_steps' index
        code = 2 * rho[:, 2 * d].astype(np.int64) + rho[:, 2 * d + 1]
        rflat |= code << (2 * (k - 1 - d))
    deal_fused(rt, n, 4**k, lambda lo, hi, out: _carry_rows(k, rflat[lo:hi], u[lo:hi], out))
    return None


def carry_share(rt, key, dl: np.ndarray) -> np.ndarray:
    """P1/P2: XOR share of k xor u at the public low digits ``dl`` (one exchange of the
    masked digit states first if the plan has several digits)."""
    return run(rt, carry_steps(key, dl))[0]


def carry_steps(key, dl: np.ndarray):
    """Step form of ``carry_share`` (``protocols.steps``). Several digits: per digit i the
    shares of ge_i = [d_i >= p_i] (prefix parity of the one-hot) and eq_i = [d_i = p_i]
    (its bit at d_i) xor rho are opened (2 bits per digit); the carry table is read at
    the opened codes 2 ge + eq (kill 0, generate 2, propagate 3)."""
    plan, tabs, rho, ctab = key
    if ctab is None:
        return gather(tabs, dl)
    offs = np.cumsum([0] + plan[:-1]).tolist()
    zsh = rho.copy()
    for d, (e, w, o) in enumerate(zip(tabs, plan, offs, strict=True)):
        step_bits(e, (dl >> U64(o)) & U64((1 << w) - 1), zsh, 2 * d)
    (zo,) = yield [(BOOL, zsh)]
    idx = np.empty(dl.size, dtype=U64)
    _code_index(zsh, zo.reshape(zsh.shape), idx)
    return gather(ctab, idx)


def cost_carry(n: int, c: int, plan: list[int]) -> Cost:
    """Carry stage alone: offline tables; online the digit states (several digits)."""
    if len(plan) == 1:
        return Cost((0, 0), (0, msg(BOOL, n << c)), 0)
    k = len(plan)
    on = msg(BOOL, 2 * n * k)
    off = sum(msg(WORD, n * -(-(1 << w) // 64)) for w in plan) + msg(BOOL, n * 4**k)
    return Cost((on, on), (0, off), 1)


def _open(rt, x: Shared) -> np.ndarray:
    (o,) = rt.exchange([(x.dom, x.data)])
    return x.dom.add(x.data, o)


@njit(cache=True, nogil=True)
def _pack_row(vals, bits, out, f0):  # pragma: no cover - numba
    """OR the values of one row (< 2^bits, bits in {1, 2}) into a ``pack``-ed uint8 array
    from entry f0 on; one store per byte when the row starts on a byte boundary."""
    per, W = 8 // bits, vals.size
    if f0 % per or W % per:
        for d in range(W):
            f = f0 + d
            out[f // per] |= np.uint8(vals[d] << np.uint8(bits * (f % per)))
        return
    base = f0 // per
    for b in range(W // per):
        acc = np.uint8(0)
        for t in range(per):
            acc |= vals[b * per + t] << np.uint8(bits * t)
        out[base + b] = acc


@njit(cache=True, nogil=True)
def _step_bits(rf, c, u, out):  # pragma: no cover - numba
    """Packed bits [j + r_i >= 2^c] xor u_i (r_i the low c bits of the mask) of the
    one-digit carry tables, in ``pack``'s layout (entry f of the flat row-major table at
    bit f mod 8 of byte f / 8)."""
    W = 1 << c
    vals = np.empty(W, dtype=np.uint8)
    for i in range(rf.size):
        edge = W - np.int64(rf[i] & np.uint64(W - 1))  # entries j >= edge carry
        ui = np.uint8(u[i])
        for j in range(W):
            vals[j] = np.uint8(j >= edge) ^ ui
        _pack_row(vals, 1, out, i * W)


@njit(cache=True, nogil=True)
def _gather_flip(rows, keys, u, out):  # pragma: no cover - numba
    """out[i] = rows[keys[i]] xor (u_i = 1: all ones): packed XOR tables (rows of whole
    bytes) read from precomputed public rows, in one pass."""
    for i in range(keys.size):
        f = np.uint8(0) - np.uint8(u[i] & 1)
        src = rows[keys[i]]
        for b in range(out.shape[1]):
            out[i, b] = src[b] ^ f


def _flip_rows(rows: np.ndarray, keys: np.ndarray, u: np.ndarray, out) -> None:
    """``_gather_flip`` into the flat packed ``out`` of ``deal_fused``."""
    keys = np.ascontiguousarray(keys, dtype=np.int64)
    _gather_flip(rows, keys, np.ascontiguousarray(u), out.reshape(keys.size, rows.shape[1]))


@lru_cache(maxsize=8)
def _step_rows(c: int) -> np.ndarray:
    """(2^c + 1, 2^c / 8) packed rows [j >= e] of the one-digit carry table, by edge e."""
    W = 1 << c
    return np.packbits(
        np.arange(W)[None, :] >= np.arange(W + 1)[:, None], axis=1, bitorder="little"
    )


@njit(cache=True, nogil=True)
def _xor_read_rows(base, keys, out):  # pragma: no cover - numba
    """out[i] = base[z xor keys[i]] for every z, packed (bit z mod 8 of byte z / 8)."""
    for i in range(keys.size):
        r = keys[i]
        for b in range(out.shape[1]):
            acc = np.uint8(0)
            for t in range(8):
                acc |= base[(8 * b + t) ^ r] << np.uint8(t)
            out[i, b] = acc


@lru_cache(maxsize=8)
def _all_carry_rows(k: int) -> np.ndarray:
    keys = np.arange(4**k, dtype=np.int64)
    out = np.empty((keys.size, 4**k // 8), dtype=np.uint8)
    _xor_read_rows(_carry_table(k), keys, out)
    return out


def _carry_rows(k: int, rflat: np.ndarray, u: np.ndarray, out) -> None:
    """Packed carry tables read at z xor rflat_i (rflat: rho's codes), xor u_i, one row
    per element, into ``deal_fused``'s ``out``; every row precomputed (4^k x 4^k bits,
    <= 128 KiB) up to k = 5."""
    if k <= 5:
        return _flip_rows(_all_carry_rows(k), rflat, u, out)
    rows = np.empty((rflat.size, 4**k // 8), dtype=np.uint8)
    _xor_read_rows(_carry_table(k), np.ascontiguousarray(rflat, dtype=np.int64), rows)
    _flip_rows(rows, np.arange(rflat.size), u, out)


@njit(cache=True, nogil=True)
def _code_index(zsh, zo, out):  # pragma: no cover - numba
    """out[i] = the digit codes 2 ge + eq of the opened bit pairs zsh xor zo, digit 0 in
    the top two bits (the carry table's index)."""
    for i in range(out.size):
        f = np.uint64(0)
        for j in range(zsh.shape[1]):
            f = (f << np.uint64(1)) | np.uint64((zsh[i, j] ^ zo[i, j]) & 1)
        out[i] = f


@lru_cache(maxsize=8)
def _carry_table(k: int) -> np.ndarray:
    """(4^k,) uint8: the carry out of the top digit for digit codes z (digit 0, the
    lowest, in the top two bits): code 2 generates, 3 propagates, 0 (and the unused 1)
    kills."""
    z = np.arange(4**k)
    c = np.zeros(4**k, dtype=np.uint8)
    for d in range(k):
        code = (z >> (2 * (k - 1 - d))) & 3
        c = np.where(code == 2, 1, np.where(code == 3, c, 0)).astype(np.uint8)
    return c


def _two_column(t: np.ndarray, rh: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Rows of U[j, t'] = T[j + r_h + (t' xor u)], flattened row-major over (j, t')."""
    return np.stack([rotate(t, rh + u), rotate(t, rh + (U64(1) ^ u))], axis=-1).reshape(
        rh.shape[0], -1
    )


def reference_requant(acc, B: int, c: int, tables, *, exact=False, r_low=None):
    """Plaintext ``requant``: T[(floor(acc_u / 2^c) + eps) mod 2^(B-c)] with acc_u the
    canonical value of acc in Z_2^B; eps = 0 if exact, else [r_low < acc_u mod 2^c] where
    r_low are the low c bits of the mask (the protocol's stochastic rounding)."""
    acc = ring(B).reduce(np.asarray(acc))
    h = acc >> U64(c)
    if not exact:
        if r_low is None:
            raise ValueError("stochastic reference needs the mask's low bits r_low")
        h = h + (np.asarray(r_low, dtype=U64) < (acc & U64((1 << c) - 1))).astype(U64)
    idx = (h & U64((1 << (B - c)) - 1)).astype(np.intp)
    return [tv[idx] for tv, _ in _check_tables(tables, [B - c])]


def cost_requant(
    shape,
    B: int,
    c: int,
    out_doms,
    *,
    exact=False,
    carry_digits=None,
    max_index_bits=MULTI_INDEX_BITS,
) -> Cost:
    n, hb = _size(shape), B - c
    on = msg(ring(B), n)
    if not exact:
        return Cost((on, on), (0, sum(msg(d, n << hb) for d in out_doms)), 1)
    plan = carry_plan(c, carry_digits, max_index_bits)
    off = sum(msg(d, n << (hb + 1)) for d in out_doms)
    cc = cost_carry(n, c, plan)
    on += cc.online[0] + msg(BOOL, n)
    return Cost((on, on), (0, off + cc.offline[1]), 2 + cc.rounds)


# -- ring extension -------------------------------------------------------------------------
def extend(rt, x: Shared, wide_bits: int, signed: bool = True) -> Shared:
    """Z_2^k share of x -> Z_2^B share of its signed (or unsigned) value. Cost:
    ``cost_extend`` (k bits per party, 1 round, 2^k (B-k) bits offline)."""
    if not isinstance(x, Shared) or not isinstance(x.dom, Ring):
        raise DomainMismatch(f"extend input must be a share over a ring, got {x!r}")
    k, B = x.dom.k, int(wide_bits)
    if not k < B <= 64:
        raise DomainMismatch(f"cannot extend {x.dom!r} to Z2^{B}")
    if k > MAX_INDEX_BITS:
        raise ValueError(f"extend of a {k}-bit ring needs a 2^{k} table (limit 2^16)")
    shape, n = x.shape, x.size
    R = rt.random_shared(ring(B), shape)
    kmask = U64((1 << k) - 1)

    def build(lo, hi):
        Rf = R.reshape(-1)[lo:hi, None]
        wrap = ((Rf & kmask) + np.arange(1 << k, dtype=U64)) >> U64(k)
        return wrap + (Rf >> U64(k))

    ktab = deal_tables(rt, ring(B - k), n, 1 << k, build, lazy=True)
    if rt.is_dealer:
        return Shared.phantom(ring(B), shape)
    off = U64(1 << (k - 1)) if signed else U64(0)
    delta = _open(rt, (x + off) - R.reduce(k))
    kk = gather(ktab, delta).reshape(shape)
    out = R - Shared(ring(B), kk << U64(k), rt.rank) + delta
    return out - off if signed else out


def extend_bounded(rt, x: Shared, wide_bits: int) -> Shared:
    """Z_2^k share of a signed x with -2^(k-2) <= x < 2^(k-2) -> Z_2^B share of x, for any
    k (known-MSB extension; outside that range the result is wrong, undetected).

    x' = x + 2^(k-2) lies in [0, 2^(k-1)). R uniform over Z_2^B comes from the seeds
    (free); r = R mod 2^k, q = bit k-1 of r. Open delta = x' + r mod 2^k (uniform). As
    x' < 2^(k-1), x' + r wraps iff q = 1 and msb(delta) = 0, so over the integers
    x' = delta - r + 2^k q (1 - msb(delta)), i.e. over Z_2^B
        x = delta - 2^(k-2) - R + 2^k (<R >> k> + (1 - msb(delta)) <q>),
    with <R >> k> and <q> dealt over Z_2^(B-k). Cost: ``cost_extend_bounded`` (k bits per
    party, 1 round, 2 (B - k) bits offline per element)."""
    if not isinstance(x, Shared) or not isinstance(x.dom, Ring):
        raise DomainMismatch(f"extend input must be a share over a ring, got {x!r}")
    k, B = x.dom.k, int(wide_bits)
    if not 2 <= k < B <= 64:
        raise DomainMismatch(f"cannot extend {x.dom!r} to Z2^{B} (needs 2 <= k < B <= 64)")
    shape, RB, RH = x.shape, ring(B), ring(B - k)
    R = rt.random_shared(RB, shape)
    if rt.is_dealer:
        hi = np.stack([R >> U64(k), (R >> U64(k - 1)) & U64(1)])
        rt.dealer_shared(RH, (2,) + shape, hi)
        return Shared.phantom(RB, shape)
    hq = rt.dealer_shared(RH, (2,) + shape).data
    off = U64(1 << (k - 2))
    delta = _open(rt, (x + off) + R.reduce(k))
    wrap = U64(1) - (delta >> U64(k - 1))
    top = Shared(RB, RB.reduce((hq[0] + wrap * hq[1]) << U64(k)), rt.rank)
    return top - R + RB.reduce(delta - off)


def reference_extend_bounded(x, k: int, B: int) -> np.ndarray:
    """Plaintext: the signed value of x (canonical over Z_2^k) over Z_2^B; raises if it is
    outside [-2^(k-2), 2^(k-2))."""
    v = ring(k).signed(ring(k).reduce(np.asarray(x)))
    if v.size and (int(v.min()) < -(1 << (k - 2)) or int(v.max()) >= 1 << (k - 2)):
        raise ValueError(f"extend_bounded needs |x| <= 2^{k - 2} (two equal top bits)")
    return ring(B).reduce(v)


def cost_extend_bounded(shape, k: int, B: int) -> Cost:
    n = _size(shape)
    return Cost((msg(ring(k), n),) * 2, (0, msg(ring(B - k), 2 * n)), 1)


def to_dual(rt, x: Shared, narrow_bits: int, wide_bits: int, signed: bool = True) -> Dual:
    """Dual view of x given in either ring: from the wide ring the narrow view is a free
    reduction; from the narrow ring the wide view costs one ``extend``."""
    if not isinstance(x, Shared) or not isinstance(x.dom, Ring) or narrow_bits >= wide_bits:
        raise DomainMismatch(f"dual of {x!r} needs narrow < wide, got {narrow_bits}, {wide_bits}")
    if x.dom.k == wide_bits:
        return Dual(x.reduce(narrow_bits), x)
    if x.dom.k == narrow_bits:
        return Dual(x, extend(rt, x, wide_bits, signed))
    raise DomainMismatch(f"{x.dom!r} is neither Z2^{narrow_bits} nor Z2^{wide_bits}")


def reference_extend(x, k: int, B: int, signed: bool = True) -> np.ndarray:
    x = ring(k).reduce(np.asarray(x))
    return ring(B).reduce(ring(k).signed(x)) if signed else x.copy()


def cost_extend(shape, k: int, B: int) -> Cost:
    n = _size(shape)
    return Cost((msg(ring(k), n),) * 2, (0, msg(ring(B - k), n << k)), 1)
