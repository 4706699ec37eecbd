"""Exact truncation with an arithmetic output: floor(x / 2^a) for x shared over Z_2^B,
without any table of the high part, over Z_2^K (K = ``out_bits``, default B - a).

Offline: mask r = r_h 2^a + r_l from the seeds (free), dealer bit u, the carry tables of
``convert.deal_carry`` for the low a bits (XOR shares of k xor u, k = [d_l + r_l >= 2^a]),
and shares over Z_2^K of r_h + u and of u (2 K bits).
Online: open d = x - r (B bits), [digit states], open t = k xor u (1 bit); then
floor(x / 2^a) = d_h + r_h + k = d_h + t + (r_h + u) - 2 t u (mod 2^(B-a)), local.
Wide output (K > B - a, the exact integer in a wider ring): needs x' = x + o < 2^(B-1)
(o = 0 for ``unsigned`` x, else 2^(B-2): |x| < 2^(B-2)); then x' = d + r - 2^B w with
w = msb(d) or msb(r) (x' has a zero top bit), so floor(x / 2^a) = d_h + r_h + k - 2^(B-a)
(msb(d) + (1 - msb(d)) msb(r)) - o / 2^a with msb(r) dealt over Z_2^K too (3 K bits).
Rounds: 2 (one carry digit) or 3. Cost: ``cost_trunc``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mpc.cost import Cost, msg
from mpc.prg import PRG, fresh_seed
from mpc.ring import BOOL, DomainMismatch, Ring, ring
from mpc.shares import Shared
from protocols import convert as C
from protocols.steps import run

U64 = np.uint64


def _check(x, a: int, out_bits, unsigned: bool) -> tuple[int, int]:
    """(B, K) or a typed error."""
    if not isinstance(x, Shared) or not isinstance(x.dom, Ring):
        raise DomainMismatch(f"truncation input must be a share over a ring, got {x!r}")
    B = x.dom.k
    if not 1 <= a < B:
        raise ValueError(f"shift a={a} must be in 1..{B - 1} for {x.dom!r}")
    K = B - a if out_bits is None else int(out_bits)
    if not 1 <= K <= 64:
        raise ValueError(f"output ring Z2^{K} outside Z2^1..Z2^64")
    if K > B - a and not unsigned and a > B - 2:
        raise ValueError(f"a wide signed output needs a <= {B - 2} (|x| < 2^{B - 2})")
    return B, K


def trunc(rt, x: Shared, a: int, *, out_bits=None, unsigned=False, carry_digits=None) -> Shared:
    """Shares over Z_2^out_bits (default B - a) of floor(x / 2^a), x read as two's
    complement (or as ``unsigned``); a wider output assumes the bound of the module doc."""
    _check(x, a, out_bits, unsigned)
    gen = trunc_steps(rt, x, a, out_bits=out_bits, unsigned=unsigned, carry_digits=carry_digits)
    return run(rt, gen)[0]


def trunc_steps(rt, x: Shared, a: int, *, out_bits=None, unsigned=False, carry_digits=None):
    """Step form of ``trunc`` (``protocols.steps``)."""
    parts = yield from trunc_parts_steps(
        rt, x, a, out_bits=out_bits, unsigned=unsigned, carry_digits=carry_digits
    )
    return parts.shared(rt, x.shape)


@dataclass(frozen=True, eq=False)
class TruncParts:
    """floor(x / 2^a) = pub + hu - 2 t u (+ cm mr, wide outputs) over ``ring``, flat: pub,
    t and cm public on P1/P2 (None on P0); hu = r_h + u, u and mr = msb(r) plaintext on P0,
    shares on P1/P2. A product with a narrow one needs dealt products with hu and u only."""

    ring: Ring
    pub: np.ndarray | None
    t: np.ndarray | None
    hu: np.ndarray
    u: np.ndarray
    cm: np.ndarray | None = None
    mr: np.ndarray | None = None

    def shared(self, rt, shape) -> Shared:
        """Plain shares of floor(x / 2^a) (a phantom on P0)."""
        R = self.ring
        if rt.is_dealer:
            return Shared.phantom(R, shape)
        out = self.hu - U64(2) * self.t * self.u + (self.pub if rt.rank == 1 else U64(0))
        if self.mr is not None:
            out = out + self.cm * self.mr
        return Shared(R, R.reduce(out).reshape(shape), rt.rank)


def trunc_parts_steps(rt, x: Shared, a: int, *, out_bits=None, unsigned=False, carry_digits=None):
    """Step form of ``trunc`` returning its ``TruncParts`` (flat)."""
    B, K = _check(x, a, out_bits, unsigned)
    n, R, wide = x.size, ring(K), K > B - a
    off = 0 if unsigned or not wide else 1 << (B - 2)
    plan = C.carry_plan(a, carry_digits)
    r = rt.random_shared(ring(B), x.shape)
    rf = r.reshape(-1) if rt.is_dealer else None
    priv = PRG(fresh_seed(), "p0-private") if rt.is_dealer else None
    u = priv.bits((n,)) if priv else None
    ckey = C.deal_carry(rt, rf, a, plan, u, n)
    hu = R.reduce((rf >> U64(a)) + u) if priv else None
    hus = rt.dealer_shared(R, (n,), hu)
    us = rt.dealer_shared(R, (n,), u)
    mr = rf >> U64(B - 1) if priv and wide else None
    mrs = rt.dealer_shared(R, (n,), mr) if wide else None
    if rt.is_dealer:
        return TruncParts(R, None, None, hu, u.astype(U64), mr=mr)
    mine = (x + off) - r
    (do,) = yield [(mine.dom, mine.data)]
    d = mine.dom.add(mine.data, do).reshape(-1)
    tsh = yield from C.carry_steps(ckey, d & U64((1 << a) - 1))
    (to,) = yield [(BOOL, tsh)]
    t = (tsh ^ to).astype(U64)
    pub = (d >> U64(a)) + t
    if not wide:
        return TruncParts(R, R.reduce(pub), t, hus.data, us.data)
    md = d >> U64(B - 1)
    pub = pub - (md << U64(B - a)) - U64(off >> a)
    cm = (U64(0) - ((U64(1) - md) << U64(B - a))) & R.mask
    return TruncParts(R, R.reduce(pub), t, hus.data, us.data, cm, mrs.data)


def reference_trunc(x, B: int, a: int, *, out_bits=None, unsigned=False) -> np.ndarray:
    """floor(x / 2^a) mod 2^K (K = out_bits or B - a) of x canonical in Z_2^B, read as two's
    complement (or ``unsigned``)."""
    K = B - a if out_bits is None else int(out_bits)
    x = ring(B).reduce(np.asarray(x))
    v = x >> U64(a) if unsigned or K <= B - a else ring(B).signed(x) >> np.int64(a)
    return ring(K).reduce(v)


def cost_trunc(shape, B: int, a: int, *, out_bits=None, carry_digits=None) -> Cost:
    n = int(np.prod(shape, dtype=np.int64))
    K = B - a if out_bits is None else int(out_bits)
    cc = C.cost_carry(n, a, C.carry_plan(a, carry_digits))
    on = msg(ring(B), n) + cc.online[0] + msg(BOOL, n)
    dealt = (3 if K > B - a else 2) * msg(ring(K), n)
    return Cost((on, on), (0, cc.offline[1] + dealt), 2 + cc.rounds)
