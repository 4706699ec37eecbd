"""Comparison from G-module protocols (PROTOCOLS.md §2.5): first non-zero index, private
comparison of two parties' integers, MSB / DReLU of a shared ring element.

Roles in ``msb``: P2 is the recover's A (holds the random group element, known to P0) and
P1 its B (learns the blinded vector); the comparison bit comes from ``pick_known``.
``private_less`` runs the composition bit_to_arith -> fnz -> pick_known with the same
messages and correlations as those protocols, fused (``protocols.cmpkernels``).
Rounds are Lamport rounds from an aligned start (``net.runtime``); composite protocols
compute them from their message pattern (``rounds_of``), since one-way steps overlap.
"""

from __future__ import annotations

from math import prod

import numpy as np

from mpc.cost import Cost
from mpc.ring import BOOL, DomainMismatch, PrimeField, Ring, field, smallest_prime_at_least
from mpc.shares import ShapeMismatch, Shared
from protocols import cmpkernels as ck
from protocols import gkernels as gk
from protocols.gmodule import _check_party, _private, cost_pick_known, shift_domain
from protocols.gshared import cost_bit_to_arith, cost_recover_shift_scale, recover_shift_scale

U64 = np.uint64


# -- Lamport round model -------------------------------------------------------------------
def rounds_of(pattern, start=(0, 0)) -> int:
    """Rounds of a message pattern: 'x' = both parties send then receive, 1 or 2 = that
    party sends one way. Returns max end clock - max start clock."""
    c = list(start)
    for step in pattern:
        if step == "x":
            c = [max(c[0], c[1] + 1), max(c[1], c[0] + 1)]
        else:
            to = 2 - step  # index of the receiver
            c[to] = max(c[to], c[step - 1] + 1)
    return max(c) - max(start)


def _seq(costs, pattern) -> Cost:
    out = Cost()
    for c in costs:
        out = out + c
    return Cost(out.online, out.offline, rounds_of(pattern))


# -- first non-zero index ------------------------------------------------------------------
def fnz_prime(n: int) -> int:
    """The field used for fnz of length-n vectors: smallest prime >= n + 3."""
    return smallest_prime_at_least(n + 3)


def fnz(rt, x: Shared, a_party: int = 2) -> Shared:
    """<k> over Z_n (``shift_domain(n)``), k = first index with x_k = 1, for 0/1 vectors
    x (last axis, length n) shared over F_p, p >= n + 2, each with at least one 1.

    y_j = sum_{t<=j} x_t - 2 x_j + 1 is 0 exactly at k (else in [1, n+1]); recover with
    g = (i, u) gives B = 3 - a_party a = L_i(u * y): one zero at j = k - i, uniform
    non-zeros elsewhere. Shares: A holds i, B holds j = argmin(a); k = i + j mod n.
    Cost: that of ``recover_shift_scale``: n ceil(log2 p) bits each way, 2 rounds."""
    f = x.dom
    if not isinstance(f, PrimeField):
        raise DomainMismatch(f"fnz works over a prime field, got {f!r}")
    if x.ndim < 1 or x.shape[-1] < 2:
        raise ShapeMismatch(f"fnz needs vectors of length >= 2, got shape {x.shape}")
    n = x.shape[-1]
    if f.p < n + 2:
        raise ValueError(f"fnz of length {n} needs p >= {n + 2}, got {f!r}")
    sdom = shift_domain(n)
    y = x if x.is_phantom else x.like(gk.fnz_input(x.data, f.p, int(rt.rank == 1)))
    g, a = recover_shift_scale(rt, y, a_party)
    if rt.is_dealer:
        return Shared.phantom(sdom, x.shape[:-1])
    if rt.rank == a_party:
        return Shared(sdom, g[0], rt.rank)
    return Shared(sdom, np.argmin(a, axis=-1).astype(U64), rt.rank)


def reference_fnz(x) -> np.ndarray:
    x = np.asarray(x)
    if not (x == 1).any(axis=-1).all():
        raise ValueError("fnz is defined for vectors with at least one 1")
    return np.argmax(x == 1, axis=-1).astype(U64)


def cost_fnz(shape, p: int, a_party: int = 2) -> Cost:
    """``shape`` includes the vector length n."""
    return cost_recover_shift_scale(shape, field(p), a_party)


# -- private comparison --------------------------------------------------------------------
def private_less(rt, x, y, m: int, shape, x_party: int = 2, or_equal: bool = False) -> Shared:
    """<[x < y]>_2 (or [x <= y]) for m-bit integers x of P``x_party`` and y of the other.

    z = bits(x) xor bits(y) (MSB first) is XOR-shared by construction; ``bit_to_arith``
    moves it to F_p (p = ``fnz_prime(m + 1)``); pad z with a 1 and y with the bit
    [or_equal]; k = fnz(z_pad) with A = P_x, B = P_y; P_y rotates y_pad by its share j and
    ``pick_known`` with A's share i (known to P0) gives <y_pad[i + j]>_2 = [x < y].
    Runs exactly those protocols' messages and correlations, fused into one pass per step
    (``protocols.cmpkernels``). Cost (n = m + 1, f = ceil log2 p): P_x sends m + n f bits,
    P_y m + n f + n bits; offline m f + 1 bits to P2, n f bits to P_y. 4 rounds."""
    px = _check_party(x_party)
    py = 3 - px
    if not 1 <= m <= 63:
        raise ValueError(f"private comparison needs 1 <= m <= 63 bits, got {m}")
    shape, n = tuple(shape), m + 1
    f = field(fnz_prime(n))
    p, rows = f.p, prod(shape)
    small = np.uint8 if p < 256 else U64
    v = None
    if not rt.is_dealer:
        v = _private(rt, rt.rank, x if rt.rank == px else y, shape, 1 << m, "input").ravel()
    # bit -> F_p correlation: bits a'_1, a'_2 and <a'_1 xor a'_2>_p
    a = {k: gk.private(rt, BOOL, (rows, m), k, np.uint8) for k in (1, 2)}
    if rt.is_dealer:
        gk.dealer_share(rt, f, (rows, m), a[1] ^ a[2])
    else:
        c = gk.dealer_share(rt, f, (rows, m), dtype=small)
        masked = ck.bits_xor(v, m, a[rt.rank])
    # recover correlation: g = (i, u) and b'_A from A's seed, b'_B from B's seed. A draws
    # u last (after b'_A), when it waits for B's round-2 message.
    i = gk.private_below(rt, n, (rows,), px)
    b_a = gk.private(rt, f, (rows, n), px, small)
    b_b = gk.private(rt, f, (rows, n), py, small)
    if rt.is_dealer:
        u = _draw_u(rt, p, (rows, n), px, small)
        rt.deal(py, f, gk.rot_mul_add(b_a, b_b, u, i, p))
        mask = gk.private(rt, BOOL, (rows, n), py, np.uint8)
        gk.dealer_share(rt, BOOL, (rows,), mask[np.arange(rows), i.astype(np.int64)])
        return Shared.phantom(BOOL, shape)
    # Narrow dtypes throughout (bits uint8, F_p elements ``small``): no uint64 [N, n] arrays.
    (other,) = rt.exchange([(BOOL, masked)], np.uint8)  # round 1: opened conversion bits
    if rt.rank == py:
        rt.send([(f, ck.b2a_fnz(masked, other, c, b_b, p, rt.rank == 1, small))])  # round 2
        big_u = rt.take(f, (rows, n), small)
        mask = gk.private(rt, BOOL, (rows, n), py, np.uint8)  # drawn while P_x works
        (w,) = rt.recv([(f, (rows, n))], small)
        # j = B's share of k = i + j mod n; send L_j(bits(y) || pad) xor mask (round 4)
        rt.send([(BOOL, ck.zero_pick(w, big_u, p, v, m, int(or_equal), mask))])
        out = gk.dealer_share(rt, BOOL, (rows,))
    else:
        ym = ck.b2a_fnz(masked, other, c, b_a, p, rt.rank == 1, small)
        u = _draw_u(rt, p, (rows, n), px, small)
        (db,) = rt.recv([(f, (rows, n))], small)
        rt.send([(f, gk.rot_mul_add(ym, db, u, i, p, small))])  # round 3
        cbit = gk.dealer_share(rt, BOOL, (rows,))
        (dv,) = rt.recv([(BOOL, (rows, n))], np.uint8)
        out = ck.pick_out(dv, i, cbit)
    return Shared(BOOL, out.reshape(shape), rt.rank)


def _draw_u(rt, p: int, shape, px: int, dtype) -> np.ndarray:
    """The recover's scaling u in (F_p^*)^n, from A's seed (P0 and A only)."""
    u = gk.private_below(rt, p - 1, shape, px, dtype)
    u += dtype(1)
    return u


def reference_private_less(x, y, or_equal: bool = False) -> np.ndarray:
    x, y = np.asarray(x, dtype=U64), np.asarray(y, dtype=U64)
    return ((x <= y) if or_equal else (x < y)).astype(U64)


def _less_pattern(px: int):
    return ["x", 3 - px, px, 3 - px]


def cost_private_less(shape, m: int, x_party: int = 2) -> Cost:
    shape, n = tuple(shape), m + 1
    f = field(fnz_prime(n))
    parts = [
        cost_bit_to_arith(shape + (m,), f),
        cost_fnz(shape + (n,), f.p, x_party),
        cost_pick_known(shape, n, BOOL, x_party),
    ]
    return _seq(parts, _less_pattern(x_party))


# -- MSB and DReLU ---------------------------------------------------------------------------
def msb(rt, x: Shared) -> Shared:
    """<msb(x)>_2 for <x> over Z_2^l: with x_i = h_i 2^(l-1) + low_i,
    msb(x) = h_1 xor h_2 xor [low_1 > 2^(l-1) - 1 - low_2], one ``private_less`` on l - 1
    bits (P1 holds y = low_1, P2 holds x = 2^(l-1) - 1 - low_2). l = 1 is local."""
    if not isinstance(x.dom, Ring):
        raise DomainMismatch(f"msb needs a ring Z_2^l, got {x.dom!r}")
    ell = x.dom.k
    if ell == 1:
        return x.like(x.data, dom=BOOL)
    half = U64(1 << (ell - 1))
    mine = h = None
    if not rt.is_dealer:
        h, low = x.data >> U64(ell - 1), x.data & (half - U64(1))
        mine = low if rt.rank == 1 else half - U64(1) - low
    c = private_less(
        rt,
        mine if rt.rank == 2 else None,
        mine if rt.rank == 1 else None,
        ell - 1,
        x.shape,
        x_party=2,
    )
    return c if rt.is_dealer else c.like(c.data ^ h)


def drelu(rt, x: Shared) -> Shared:
    """<[x >= 0]>_2 (two's complement) = 1 xor msb(x). Cost of ``msb``."""
    return msb(rt, x) + 1


def reference_msb(x, ell: int) -> np.ndarray:
    return (np.asarray(x, dtype=U64) >> U64(ell - 1)) & U64(1)


def reference_drelu(x, ell: int) -> np.ndarray:
    return U64(1) ^ reference_msb(x, ell)


def msb_pattern(ell: int):
    return [] if ell == 1 else _less_pattern(2)


def cost_msb(shape, ell: int) -> Cost:
    return Cost() if ell == 1 else cost_private_less(shape, ell - 1, 2)


cost_drelu = cost_msb
