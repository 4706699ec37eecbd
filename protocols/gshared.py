"""G-module protocols on secret-shared operands (PROTOCOLS.md §2.3-2.5(a)): the cross
action of Z_2 (by +-1 or by swapping a pair), the recover of Z_n x| (F_p^*)^n on F_p^n, and
bit -> arithmetic conversion. Same conventions as ``protocols.gmodule``.
"""

from __future__ import annotations

from math import prod

import numpy as np

from mpc.cost import Cost, msg
from mpc.ring import BOOL, Domain, DomainMismatch, PrimeField
from mpc.shares import ShapeMismatch, Shared
from protocols import gkernels as gk
from protocols.gkernels import rotate
from protocols.gmodule import _by_party, _check_party, _pm1_add, pm1, reference_pm1_act, swap

U64 = np.uint64


# -- cross action: both operands shared (G = Z_2, commutative) -------------------------------
def cross_pm1(rt, s: Shared, x: Shared) -> Shared:
    """<(-1)^s x> from <s>_2 (s = s1 xor s2) and <x> over a ring or field, same shape.

    Offline: P0 draws s'_i, x'_i from each Pi's seed and shares y = (-1)^(s'1^s'2)(x'1+x'2).
    Online, 1 round, each Pi sends ds_i = s_i xor s'_i and z_i = (-1)^s_i (x_i - x'_i):
    u_i = (-1)^s_i z_other + (-1)^ds y_i, ds = ds_1 xor ds_2. Check: the cross terms give
    (-1)^s (x - x'1 - x'2) and (-1)^ds y = (-1)^s (x'1 + x'2).
    Cost: 1 + |dom| bits each way; |dom| bits offline (to P2)."""
    if s.shape != x.shape:
        raise ShapeMismatch(f"bit shape {s.shape} and value shape {x.shape} differ")
    return _cross(rt, s, x, pm1)


def cross_swap(rt, s: Shared, x: Shared) -> Shared:
    """<s.x> where s swaps the last axis (length 2) of x: <(x0, x1)> if s = 0 else
    <(x1, x0)>. Same protocol as ``cross_pm1``; cost 1 + 2|dom| bits each way."""
    if x.shape[-1:] != (2,) or s.shape != x.shape[:-1]:
        raise ShapeMismatch(f"swap needs values of shape {s.shape + (2,)}, got {x.shape}")
    return _cross(rt, s, x, swap)


def _cross(rt, s: Shared, x: Shared, act) -> Shared:
    BOOL.check(s.dom)
    dom = x.dom
    if rt.is_dealer:
        g1 = gk.private(rt, BOOL, s.shape, 1)
        x1 = gk.private(rt, dom, x.shape, 1)
        g2 = gk.private(rt, BOOL, s.shape, 2)
        x2 = gk.private(rt, dom, x.shape, 2)
        gk.dealer_share(rt, dom, x.shape, act(g1 ^ g2, gk.add(x1, x2, dom), dom))
        return Shared.phantom(dom, x.shape)
    g1 = gk.private(rt, BOOL, s.shape, rt.rank)
    x1 = gk.private(rt, dom, x.shape, rt.rank)
    y = gk.dealer_share(rt, dom, x.shape)
    dg = s.data ^ g1
    z = act(s.data, gk.sub(x.data, x1, dom), dom)
    dg_o, z_o = rt.exchange([(BOOL, dg), (dom, z)])
    return Shared(dom, gk.add(act(s.data, z_o, dom), act(dg ^ dg_o, y, dom), dom), rt.rank)


def reference_cross_pm1(s, x, dom: Domain) -> np.ndarray:
    return reference_pm1_act(s, x, dom)


def reference_cross_swap(s, x, dom: Domain) -> np.ndarray:
    return swap(np.asarray(s), dom.reduce(np.asarray(x)))


def cost_cross_pm1(shape, dom: Domain) -> Cost:
    k = prod(shape)
    return Cost.symmetric(msg(BOOL, k) + msg(dom, k), 1, offline_p2=msg(dom, k))


def cost_cross_swap(shape, dom: Domain) -> Cost:
    """``shape`` is the bit shape; the values have shape + (2,)."""
    k = prod(shape)
    return Cost.symmetric(msg(BOOL, k) + msg(dom, 2 * k), 1, offline_p2=msg(dom, 2 * k))


# -- recover: <b> over F_p^n -> A gets random g = (i, u), B gets a = L_i(u * b) --------------
def recover_shift_scale(rt, b: Shared, a_party: int):
    """G-module recover for G = Z_n x| (F_p^*)^n acting on F_p^n by (i, u).v = L_i(u * v).

    Offline: P0 draws g = (i, u) and b'_A (seed A), b'_B (seed B) and sends B
    U = g.(b'_A + b'_B). Online, 2 rounds: B -> A db = b_B - b'_B; A -> B
    w = g.(b_A - b'_A + db); B: a = w + U = g.b. Cost: n ceil(log2 p) bits each way,
    the same offline (to B). Returns (g, a): g = (i, u) on A and P0, a on B, else None."""
    a, bp = _check_party(a_party), 3 - a_party
    f = b.dom
    if not isinstance(f, PrimeField):
        raise DomainMismatch(f"recover acts on F_p^n, got {f!r}")
    if b.ndim < 1 or b.shape[-1] < 1:
        raise ShapeMismatch(f"recover needs vectors (last axis), got shape {b.shape}")
    n, bshape = b.shape[-1], b.shape[:-1]
    i = gk.private_below(rt, n, bshape, a)
    u = gk.private_below(rt, f.p - 1, b.shape, a)
    if u is not None:
        u += U64(1)
    ba = gk.private(rt, f, b.shape, a)
    bb = gk.private(rt, f, b.shape, bp)
    if rt.is_dealer:
        rt.deal(bp, f, gk.rot_mul_add(ba, bb, u, i, f.p))
        return (i, u), None
    if rt.rank == bp:
        rt.send([(f, gk.sub(b.data, bb, f))])
        big_u = rt.take(f, b.shape)
        (w,) = rt.recv([(f, b.shape)])
        return None, gk.add(w, big_u, f)
    (db,) = rt.recv([(f, b.shape)])
    rt.send([(f, gk.rot_mul_add(gk.sub(b.data, ba, f), db, u, i, f.p))])
    return (i, u), None


def reference_recover_shift_scale(g, b, f: PrimeField) -> np.ndarray:
    i, u = g
    return rotate(f.mul(np.asarray(u, dtype=U64), f.reduce(np.asarray(b))), i)


def cost_recover_shift_scale(shape, f: PrimeField, a_party: int) -> Cost:
    k = msg(f, prod(shape))
    return Cost((k, k), _by_party(a_party, 0, k), 2)


# -- bit -> arithmetic ("module transform") --------------------------------------------------
def bit_to_arith(rt, a: Shared, dom: Domain) -> Shared:
    """<a>_2 -> <a> over ``dom`` (ring or field).

    Offline: P0 draws bits a'_1, a'_2 (seeds) and shares b = a'_1 xor a'_2 in dom.
    Online, 1 round: each Pi opens a_i xor a'_i, so both learn d = a xor b; then
    a = d xor b = d + (-1)^d b: P1 outputs d + (-1)^d b_1, P2 outputs (-1)^d b_2.
    Cost: 1 bit each way; |dom| bits offline (to P2)."""
    BOOL.check(a.dom)
    a1 = gk.private(rt, BOOL, a.shape, 1)
    a2 = gk.private(rt, BOOL, a.shape, 2)
    if rt.is_dealer:
        gk.dealer_share(rt, dom, a.shape, a1 ^ a2)
        return Shared.phantom(dom, a.shape)
    mine = a1 if rt.rank == 1 else a2
    bsh = gk.dealer_share(rt, dom, a.shape)
    masked = a.data ^ mine
    (other,) = rt.exchange([(BOOL, masked)])
    d = masked ^ other
    return Shared(dom, _pm1_add(d, bsh, dom, rt.rank == 1), rt.rank)


def reference_bit_to_arith(a, dom: Domain) -> np.ndarray:
    return dom.reduce(np.asarray(a, dtype=U64) & U64(1))


def cost_bit_to_arith(shape, dom: Domain) -> Cost:
    k = prod(shape)
    return Cost.symmetric(msg(BOOL, k), 1, offline_p2=msg(dom, k))
