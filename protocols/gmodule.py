"""G-module protocols (Zhang, Li, Yin, Sun, "MPC Protocol for G-module and its Application in
Secure Compare and ReLU"; PROTOCOLS.md §2). A G-module is an abelian group M with a
G-action, g(a + b) = ga + gb. Instances here:

* Z_2 on Z_2^k (or F_p) by t.x = (-1)^t x  (``pm1_act``; shared: ``cross_pm1``,
  ``bit_to_arith``);
* Z_2 on pairs by swapping                (shared: ``cross_swap``, select in Z_2^64);
* Z_n on vectors D^n by cyclic shift, (L_i v)[j] = v[(j + i) mod n]
  (``cyclic_shift``, ``assistant_ot``, ``pick_known``);
* Z_n x| (F_p^*)^n on F_p^n by (i, u).v = L_i(u * v)  (shared: ``recover_shift_scale``).

Here: one party A holds the group element, the other B the module element (A/B are P1/P2
in either order, ``g_owner``). Protocols on shared operands (cross action, recover,
bit -> arithmetic) are in ``protocols.gshared``. Every protocol is batched over a tensor of
independent instances; bits below are per instance, ``cost_*`` give exact packed bytes.
Seeded draws go through ``protocols.gkernels`` on every party.
"""

from __future__ import annotations

from math import prod

import numpy as np

from mpc.cost import Cost, msg
from mpc.ring import BOOL, Domain, Ring, ring
from mpc.shares import ShapeMismatch, Shared
from protocols import gkernels as gk
from protocols.gkernels import rotate

U64 = np.uint64


# -- the cyclic group Z_n as a wire domain --------------------------------------------------
class ZMod(Domain):
    """Z_n for a shift amount (n >= 2, not a power of two: those use ``ring``)."""

    __slots__ = ("n", "bits", "modulus")

    def __init__(self, n: int):
        if n < 2:
            raise ValueError(f"Z_n needs n >= 2, got {n}")
        self.n = self.modulus = n
        self.bits = (n - 1).bit_length()

    def __repr__(self) -> str:
        return f"Z{self.n}"

    def __eq__(self, other) -> bool:
        return isinstance(other, ZMod) and other.n == self.n

    def __hash__(self) -> int:
        return hash(("zmod", self.n))

    def reduce(self, a) -> np.ndarray:
        a = np.asarray(a)
        if a.dtype.kind == "i":
            return (a % self.n).astype(U64)
        return np.asarray(a, dtype=U64) % U64(self.n)

    def add(self, a, b):
        return (a + b) % U64(self.n)

    def sub(self, a, b):
        return (a + (U64(self.n) - b)) % U64(self.n)

    def neg(self, a):
        return (U64(self.n) - a) % U64(self.n)

    def mul(self, a, b):
        return (a * b) % U64(self.n)

    def random(self, prg, shape) -> np.ndarray:
        return prg.below(self.n, shape)


def shift_domain(n: int) -> Domain:
    """Domain of a shift of a length-n vector: Z_2^b if n = 2^b, else ``ZMod(n)``."""
    if n >= 2 and n & (n - 1) == 0:
        return ring(n.bit_length() - 1)
    return ZMod(n)


# -- local group actions --------------------------------------------------------------------
def entry(v: np.ndarray, i: np.ndarray) -> np.ndarray:
    """v[..., i] per vector, i.e. entry 0 of L_i v."""
    return np.take_along_axis(v, np.asarray(i, dtype=np.int64)[..., None], axis=-1)[..., 0]


def pm1(t: np.ndarray, v: np.ndarray, dom: Domain) -> np.ndarray:
    """(-1)^t v elementwise (t a 0/1 array broadcast against v)."""
    t = np.asarray(t, dtype=U64)
    if isinstance(dom, Ring):
        with np.errstate(over="ignore"):
            return dom.mul(v, U64(1) - U64(2) * t)
    shape = np.broadcast_shapes(t.shape, np.shape(v))
    t, v = np.broadcast_to(t, shape), np.broadcast_to(v, shape)
    return gk.pm1_add(t, v, dom, False)


def _pm1_add(t, v, dom, add_t: bool) -> np.ndarray:
    """(-1)^t v (+ t if ``add_t``) for 0/1 t and v of one shape."""
    if isinstance(dom, Ring):
        out = pm1(t, v, dom)
        return gk.add(out, t, dom) if add_t else out
    return gk.pm1_add(t, v, dom, add_t)


def swap(t: np.ndarray, v: np.ndarray, dom: Domain | None = None) -> np.ndarray:
    """Swap the pair v[..., 0], v[..., 1] where t = 1."""
    return np.where(np.asarray(t, dtype=bool)[..., None], v[..., ::-1], v)


# -- helpers --------------------------------------------------------------------------------
def _check_party(p: int) -> int:
    if p not in (1, 2):
        raise ValueError(f"party must be 1 or 2, got {p}")
    return p


def _by_party(a_party: int, a_val: int, b_val: int) -> tuple[int, int]:
    """(P1's, P2's) value when A = ``a_party`` has ``a_val`` and B has ``b_val``."""
    return (a_val, b_val) if a_party == 1 else (b_val, a_val)


def _private(rt, owner: int, value, shape, bound: int, name: str) -> np.ndarray | None:
    """The owner's private input as uint64 of ``shape`` (broadcast), checked < bound."""
    if rt.rank != owner:
        return None
    if value is None:
        raise ValueError(f"P{owner} must pass its {name}")
    v = np.asarray(value)
    if v.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array, got {v.dtype}")
    try:
        v = np.broadcast_to(v, shape)
    except ValueError:
        raise ShapeMismatch(f"{name} of shape {v.shape} does not fit {tuple(shape)}") from None
    if v.size and (v.min() < 0 or (bound < 1 << 64 and v.max() >= bound)):
        raise ValueError(f"{name} has entries outside [0, {bound})")
    return v.astype(U64)


def _send_recv(rt, items, specs):
    """Send ``items`` and receive arrays of ``specs`` in the same round."""
    rt.send(items)
    return rt.recv(specs)


# -- Z_2 acting by +-1: A holds bits t, B holds x --------------------------------------------
def pm1_act(rt, t, x, dom: Domain, shape, g_owner: int) -> Shared:
    """<(-1)^t x> over ``dom`` from bits t (A = ``g_owner``) and x in dom (B).

    Offline: P0 draws t' (seed A), x' (seed B), shares y = (-1)^t' x'. Online, 1 round:
    A -> B dt = t xor t' (1 bit), B -> A dx = x - x' (|dom| bits).
    z_A = (-1)^t dx + (-1)^dt y_A, z_B = (-1)^dt y_B.  Offline |dom| bits (to P2)."""
    return _act(rt, t, x, dom, tuple(shape), (), g_owner, BOOL, pm1)


def reference_pm1_act(t, x, dom: Domain) -> np.ndarray:
    return pm1(np.asarray(t, dtype=U64), dom.reduce(np.asarray(x)), dom)


def cost_pm1_act(shape, dom: Domain, g_owner: int) -> Cost:
    n = prod(shape)
    return Cost(_by_party(g_owner, msg(BOOL, n), msg(dom, n)), (0, msg(dom, n)), 1)


# -- Z_n acting by cyclic shift: A holds shifts, B holds vectors -----------------------------
def cyclic_shift(rt, shift, table, dom: Domain, shape, n: int, g_owner: int) -> Shared:
    """<L_i T> over ``dom``: shifts i in Z_n of ``shape`` (A), vectors T of shape+(n,) (B).

    Offline: P0 draws i' (seed A), T' (seed B), shares Y = L_i' T'. Online, 1 round:
    A -> B di = i - i' mod n (ceil log2 n bits), B -> A dT = T - T' (n|dom| bits).
    z_A = L_i dT + L_di Y_A, z_B = L_di Y_B.  Offline n|dom| bits (to P2)."""
    return _act(rt, shift, table, dom, tuple(shape), (n,), g_owner, shift_domain(n), _shift)


def assistant_ot(rt, shift, table, dom: Domain, shape, n: int, g_owner: int) -> Shared:
    """<T[i]> (entry 0 of the cyclic shift): 1-out-of-n OT with a helper. Same messages
    and cost as ``cyclic_shift``; only the output entry is computed."""
    return _act(
        rt, shift, table, dom, tuple(shape), (n,), g_owner, shift_domain(n), _shift, entry_only=True
    )


def reference_cyclic_shift(shift, table, dom: Domain) -> np.ndarray:
    t = dom.reduce(np.asarray(table))
    s = np.asarray(shift)
    return rotate(np.broadcast_to(t, s.shape + t.shape[-1:]), s)


def reference_assistant_ot(shift, table, dom: Domain) -> np.ndarray:
    return reference_cyclic_shift(shift, table, dom)[..., 0]


def cost_cyclic_shift(shape, n: int, dom: Domain, g_owner: int) -> Cost:
    k = prod(shape)
    return Cost(
        _by_party(g_owner, msg(shift_domain(n), k), msg(dom, k * n)), (0, msg(dom, k * n)), 1
    )


cost_assistant_ot = cost_cyclic_shift


def _shift(i, v, dom=None):
    return rotate(v, i)


def _act(rt, g, x, dom, gshape, mtail, g_owner, gdom, act, entry_only=False) -> Shared:
    """Generic one-sided action <g.x> for an abelian G written additively (dg = g - g')."""
    a, b = _check_party(g_owner), 3 - g_owner
    mshape = gshape + mtail
    g = _private(rt, a, g, gshape, gdom.modulus, "group element")
    x = _private(
        rt, b, None if x is None else dom.reduce(np.asarray(x)), mshape, 1 << 64, "module element"
    )
    out_shape = gshape if entry_only else mshape
    g1 = gk.private(rt, gdom, gshape, a)
    x1 = gk.private(rt, dom, mshape, b)
    if rt.is_dealer:
        gk.dealer_share(rt, dom, mshape, act(g1, x1, dom))
        return Shared.phantom(dom, out_shape)
    y = gk.dealer_share(rt, dom, mshape)
    if rt.rank == a:
        dg = gdom.sub(g, g1)
        (dx,) = _send_recv(rt, [(gdom, dg)], [(dom, mshape)])
        if entry_only:
            return Shared(dom, gk.add(entry(dx, g), entry(y, dg), dom), rt.rank)
        return Shared(dom, gk.add(act(g, dx, dom), act(dg, y, dom), dom), rt.rank)
    (dg,) = _send_recv(rt, [(dom, gk.sub(x, x1, dom))], [(gdom, gshape)])
    return Shared(dom, entry(y, dg) if entry_only else act(dg, y, dom), rt.rank)


# -- entry pick with a dealer-known shift ----------------------------------------------------
def pick_known(rt, idx, vec, dom: Domain, shape, n: int, idx_party: int) -> Shared:
    """<v[i]> where i (shape) is known to P0 and ``idx_party`` (e.g. drawn by P0) and the
    vectors v (shape+(n,)) to the other party: the cyclic-shift action with g' = g, so
    nothing about i is sent. Offline: P0 draws a mask M (seed of v's owner) and shares
    M[i]. Online, 1 round one way: owner -> idx_party dv = v - M (n|dom| bits).
    Outputs: idx_party dv[i] + c_A, owner c_B, c_A + c_B = M[i].  Offline |dom| bits."""
    a, b = _check_party(idx_party), 3 - idx_party
    shape = tuple(shape)
    if rt.is_dealer or rt.rank == a:
        idx = _private_any(idx, shape, n)
    v = _private(
        rt, b, None if vec is None else dom.reduce(np.asarray(vec)), shape + (n,), 1 << 64, "vector"
    )
    m = gk.private(rt, dom, shape + (n,), b)
    if rt.is_dealer:
        gk.dealer_share(rt, dom, shape, entry(m, idx))
        return Shared.phantom(dom, shape)
    c = gk.dealer_share(rt, dom, shape)
    if rt.rank == b:
        rt.send([(dom, gk.sub(v, m, dom))])
        return Shared(dom, c, rt.rank)
    (dv,) = rt.recv([(dom, shape + (n,))])
    return Shared(dom, gk.add(c, entry(dv, idx), dom), rt.rank)


def _private_any(idx, shape, n):
    if idx is None:
        raise ValueError("the index party and P0 must pass the index")
    idx = np.broadcast_to(np.asarray(idx), shape)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"index has entries outside [0, {n})")
    return idx


def reference_pick_known(idx, vec, dom: Domain) -> np.ndarray:
    return entry(dom.reduce(np.asarray(vec)), np.asarray(idx))


def cost_pick_known(shape, n: int, dom: Domain, idx_party: int) -> Cost:
    k = prod(shape)
    return Cost(_by_party(idx_party, 0, msg(dom, k * n)), (0, msg(dom, k)), 1)
