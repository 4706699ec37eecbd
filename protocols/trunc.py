"""Exact truncation with an arithmetic output: floor(x / 2^a) mod 2^(B-a) for x shared over
Z_2^B, without any table of the high part (the value itself, two's complement, is exact
as |floor(x / 2^a)| < 2^(B-a-1)).

Offline: mask r = r_h 2^a + r_l from the seeds (free), dealer bit u, the carry tables of
``convert.deal_carry`` for the low a bits (XOR shares of k xor u, k = [d_l + r_l >= 2^a]),
and shares over Z_2^(B-a) of r_h + u and of u (2 (B - a) bits).
Online: open d = x - r (B bits), [digit states], open t = k xor u (1 bit); then
floor(x / 2^a) = d_h + r_h + k = d_h + t + (r_h + u) - 2 t u (mod 2^(B-a)), local.
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


def _check(x, a: int) -> int:
    if not isinstance(x, Shared) or not isinstance(x.dom, Ring):
        raise DomainMismatch(f"truncation input must be a share over a ring, got {x!r}")
    if not 1 <= a < x.dom.k:
        raise ValueError(f"shift a={a} must be in 1..{x.dom.k - 1} for {x.dom!r}")
    return x.dom.k


def trunc(rt, x: Shared, a: int, *, carry_digits=None) -> Shared:
    """Shares over Z_2^(B-a) of floor(x / 2^a) (x read as two's complement)."""
    _check(x, a)
    return run(rt, trunc_steps(rt, x, a, carry_digits=carry_digits))[0]


def trunc_steps(rt, x: Shared, a: int, *, carry_digits=None):
    """Step form of ``trunc`` (``protocols.steps``)."""
    parts = yield from trunc_parts_steps(rt, x, a, carry_digits=carry_digits)
    return parts.shared(rt, x.shape)


@dataclass(frozen=True, eq=False)
class TruncParts:
    """floor(x / 2^a) = pub + hu - 2 t u over ``ring``, flat: pub = d_h + t and t public
    on P1/P2 (None on P0); hu = r_h + u and u plaintext on P0, shares on P1/P2. A product
    with it needs dealt products with hu and u only."""

    ring: Ring
    pub: np.ndarray | None
    t: np.ndarray | None
    hu: np.ndarray
    u: np.ndarray

    def shared(self, rt, shape) -> Shared:
        """Plain shares of floor(x / 2^a) (a phantom on P0)."""
        R = self.ring
        if rt.is_dealer:
            return Shared.phantom(R, shape)
        out = self.hu - U64(2) * self.t * self.u + (self.pub if rt.rank == 1 else U64(0))
        return Shared(R, R.reduce(out).reshape(shape), rt.rank)


def trunc_parts_steps(rt, x: Shared, a: int, *, carry_digits=None):
    """Step form of ``trunc`` returning its ``TruncParts`` (flat)."""
    B = _check(x, a)
    n, R = x.size, ring(B - a)
    plan = C.carry_plan(a, carry_digits)
    r = rt.random_shared(ring(B), x.shape)
    rf = r.reshape(-1) if rt.is_dealer else None
    priv = PRG(fresh_seed(), "p0-private") if rt.is_dealer else None
    u = priv.bits((n,)) if priv else None
    ckey = C.deal_carry(rt, rf, a, plan, u, n)
    hu = R.reduce((rf >> U64(a)) + u) if priv else None
    hus = rt.dealer_shared(R, (n,), hu)
    us = rt.dealer_shared(R, (n,), u)
    if rt.is_dealer:
        return TruncParts(R, None, None, hu, u.astype(U64))
    mine = x - r
    (do,) = yield [(mine.dom, mine.data)]
    d = mine.dom.add(mine.data, do).reshape(-1)
    tsh = yield from C.carry_steps(ckey, d & U64((1 << a) - 1))
    (to,) = yield [(BOOL, tsh)]
    t = (tsh ^ to).astype(U64)
    return TruncParts(R, R.reduce((d >> U64(a)) + t), t, hus.data, us.data)


def reference_trunc(x, B: int, a: int) -> np.ndarray:
    """floor(x / 2^a) mod 2^(B-a) of x canonical in Z_2^B."""
    return ring(B - a).reduce(ring(B).reduce(np.asarray(x)) >> U64(a))


def cost_trunc(shape, B: int, a: int, *, carry_digits=None) -> Cost:
    n = int(np.prod(shape, dtype=np.int64))
    cc = C.cost_carry(n, a, C.carry_plan(a, carry_digits))
    on = msg(ring(B), n) + cc.online[0] + msg(BOOL, n)
    return Cost((on, on), (0, cc.offline[1] + 2 * msg(ring(B - a), n)), 2 + cc.rounds)
