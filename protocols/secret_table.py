"""Rotating secret lookup tables without showing them to the helper (PROTOCOLS.md §4.2).

A LUT T of length n (a secret scale folded in, so only the model owner knows it) is
rotated by a secret r = r_1 + r_2 mod n into T'[j] = T[(j + r) mod n]; a later lookup
opens d = x - r and reads T'[d] = T[x] (``lookup``). r is drawn through the seeds
(``rt.random_shared``): P0 knows r but never sees T or any online message, and can rotate
public tables by the same r. Everything here is input-independent, so it runs in the
offline phase, but its P1 <-> P2 traffic is counted as ``online`` bytes of ``Cost``.

* ``rotate_private_table``: T known to one party (the owner). The owner pre-rotates by its
  share, L_{r_o} T, and one cyclic-shift action with the other party's share r_x gives
  <L_{r_x} L_{r_o} T> = <L_r T>: 1 round, the owner sends n|dom| bits per table, the other
  ceil(log2 n) bits; n|dom| bits offline (to P2).
* ``rotate_shared_table``: T secret-shared. P_i pre-rotates its share by r_i; two actions
  run in the same round (P1 shifts P2's part by r_1, P2 shifts P1's part by r_2): each
  party sends ceil(log2 n) + n|dom| bits; 2 n|dom| bits offline (to P2).

Tables are batched: a batch ``shape`` of independent rotations, tables broadcast to
shape + (n,) (e.g. per-channel tables [C, n] for elements [N, C]).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np

from mpc.cost import Cost, msg
from mpc.ring import Domain
from mpc.shares import ShapeMismatch, Shared
from protocols.gmodule import (
    _check_party,
    _private,
    cost_cyclic_shift,
    cyclic_shift,
    entry,
    rotate,
    shift_domain,
)

U64 = np.uint64


@dataclass(frozen=True)
class RotatedTable:
    """Shares of T'[..., j] = T[..., (j + r) mod n] and of the rotation r (shift_domain)."""

    table: Shared
    r: Shared

    def __post_init__(self):
        if self.table.shape[:-1] != self.r.shape:
            raise ShapeMismatch(f"table {self.table.shape} and rotation {self.r.shape}")


def rotate_private_table(rt, table, dom: Domain, shape, n: int, owner: int = 2) -> RotatedTable:
    """Rotate the ``owner``'s tables (broadcast to shape + (n,)) by a fresh shared r."""
    other = 3 - _check_party(owner)
    shape = tuple(shape)
    if n < 2:
        raise ValueError(f"tables need n >= 2 entries, got {n}")
    sdom = shift_domain(n)
    t = _private(
        rt,
        owner,
        None if table is None else dom.reduce(np.asarray(table)),
        shape + (n,),
        1 << 64,
        "table",
    )
    r = rt.random_shared(sdom, shape)
    if rt.is_dealer:
        return RotatedTable(
            cyclic_shift(rt, None, None, dom, shape, n, other), Shared.phantom(sdom, shape)
        )
    pre = rotate(t, r.data) if rt.rank == owner else None
    out = cyclic_shift(rt, r.data if rt.rank == other else None, pre, dom, shape, n, other)
    return RotatedTable(out, r)


def cost_rotate_private_table(shape, n: int, dom: Domain, owner: int = 2) -> Cost:
    return cost_cyclic_shift(tuple(shape), n, dom, 3 - owner)


def rotate_shared_table(rt, table: Shared) -> RotatedTable:
    """Rotate shared tables <T> (last axis n) by a fresh shared r: 1 round, two actions."""
    if table.ndim < 1 or table.shape[-1] < 2:
        raise ShapeMismatch(f"tables need a last axis of length >= 2, got {table.shape}")
    dom, shape, n = table.dom, table.shape[:-1], table.shape[-1]
    sdom = shift_domain(n)
    r = rt.random_shared(sdom, shape)
    # action k (k = 1, 2): Pk holds the shift r_k, P(3-k) holds its pre-rotated share.
    g1 = {k: rt.private_random(sdom, shape, k) for k in (1, 2)}
    x1 = {k: rt.private_random(dom, table.shape, 3 - k) for k in (1, 2)}
    if rt.is_dealer:
        for k in (1, 2):
            rt.dealer_shared(dom, table.shape, rotate(x1[k], g1[k]))
        return RotatedTable(Shared.phantom(dom, table.shape), Shared.phantom(sdom, shape))
    me, o = rt.rank, 3 - rt.rank
    y = {k: rt.dealer_shared(dom, table.shape).data for k in (1, 2)}
    pre = rotate(table.data, r.data)
    dg_me = sdom.sub(r.data, g1[me])
    dg_o, dx_o = rt.exchange([(sdom, dg_me), (dom, dom.sub(pre, x1[o]))])
    # as G-holder of action ``me``: L_r dx + L_dg y; as module holder of action ``o``: L_dg y
    mine = dom.add(rotate(dx_o, r.data), rotate(y[me], dg_me))
    return RotatedTable(Shared(dom, dom.add(mine, rotate(y[o], dg_o)), me), r)


def cost_rotate_shared_table(shape, dom: Domain) -> Cost:
    """``shape`` includes the table length n."""
    n, k = shape[-1], prod(shape[:-1])
    online = msg(shift_domain(n), k) + msg(dom, k * n)
    return Cost.symmetric(online, 1, offline_p2=2 * msg(dom, k * n))


def reference_rotated(table, r, dom: Domain) -> np.ndarray:
    """T'[..., j] = T[..., (j + r) mod n] for the opened rotation r."""
    r = np.asarray(r)
    t = dom.reduce(np.asarray(table))
    return rotate(np.broadcast_to(t, r.shape + t.shape[-1:]), r)


def lookup(rt, rot: RotatedTable, x: Shared) -> Shared:
    """<T[x]> for <x> over ``shift_domain(n)``: open d = x - r, read T'[d]. 1 round,
    ceil(log2 n) bits each way; the rotated table is used once."""
    rot.r.dom.check(x.dom)
    if x.shape != rot.r.shape:
        raise ShapeMismatch(f"index shape {x.shape}, rotation shape {rot.r.shape}")
    if rt.is_dealer:
        return Shared.phantom(rot.table.dom, x.shape)
    d = rt.open(x - rot.r)
    return rot.table.like(entry(rot.table.data, d))


def reference_lookup(table, x, dom: Domain) -> np.ndarray:
    x = np.asarray(x)
    t = np.broadcast_to(dom.reduce(np.asarray(table)), x.shape + np.shape(table)[-1:])
    return entry(t, x)


def cost_lookup(shape, n: int) -> Cost:
    return Cost.symmetric(msg(shift_domain(n), prod(shape)), 1)
