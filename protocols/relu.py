"""Select, ReLU and max without bit-to-arithmetic conversion (PROTOCOLS.md §2.5(e)).

``mul_bit``: <s x> over Z_2^l from <s>_2 and <x>. Read x's shares in Z_2^(l+1): they sum
to X = x + c 2^l (carry c). The cross action gives <(-1)^s X>; V = X - (-1)^s X =
2 s X = 2 (s x mod 2^l) mod 2^(l+1) (the carry term s c 2^(l+1) vanishes). V is even, so
its shares have equal parity and floor(V_1 / 2) + ceil(V_2 / 2) = V / 2 mod 2^l = s x.
For l = 64 (no Z_2^65) the swap action on the pair (0, x) is used instead.
"""

from __future__ import annotations

import numpy as np

from mpc.cost import Cost
from mpc.ring import BOOL, DomainMismatch, Ring, ring
from mpc.shares import ShapeMismatch, Shared, concatenate, stack
from protocols.compare import _seq, cost_drelu, drelu, msb_pattern, reference_drelu
from protocols.gshared import cost_cross_pm1, cost_cross_swap, cross_pm1, cross_swap

U64 = np.uint64


def mul_bit(rt, s: Shared, x: Shared) -> Shared:
    """<s x> over x's ring Z_2^l from <s>_2 (same shape). 1 round; each party sends
    1 + (l + 1) bits ((1 + 2l) for l = 64); offline l + 1 (2l) bits to P2."""
    BOOL.check(s.dom)
    if not isinstance(x.dom, Ring):
        raise DomainMismatch(f"select works over a ring Z_2^l, got {x.dom!r}")
    if s.shape != x.shape:
        raise ShapeMismatch(f"bit shape {s.shape} and value shape {x.shape} differ")
    ell = x.dom.k
    if ell == 64:
        zero = x.like(None if x.is_phantom else np.zeros_like(x.data))
        return cross_swap(rt, s, stack([zero, x], axis=x.ndim))[..., 0]
    big = x.reinterpret(ell + 1)
    v = big - cross_pm1(rt, s, big)
    if v.is_phantom:
        return Shared.phantom(x.dom, x.shape)
    half = v.data >> U64(1)
    return Shared(x.dom, x.dom.reduce(half if rt.rank == 1 else v.data - half), rt.rank)


def reference_mul_bit(s, x, ell: int) -> np.ndarray:
    return ring(ell).mul(np.asarray(s, dtype=U64), ring(ell).reduce(np.asarray(x)))


def cost_mul_bit(shape, ell: int) -> Cost:
    if ell == 64:
        return cost_cross_swap(shape, ring(64))
    return cost_cross_pm1(shape, ring(ell + 1))


def select(rt, s: Shared, x: Shared, y: Shared) -> Shared:
    """<s ? x : y> = <s (x - y)> + <y>. Cost of ``mul_bit``."""
    return mul_bit(rt, s, x - y) + y


def reference_select(s, x, y, ell: int) -> np.ndarray:
    r = ring(ell)
    return r.add(reference_mul_bit(s, r.sub(r.reduce(x), r.reduce(y)), ell), r.reduce(y))


cost_select = cost_mul_bit


def relu(rt, x: Shared) -> Shared:
    """<max(x, 0)> (two's complement) = mul_bit(drelu(x), x): 5 rounds."""
    return mul_bit(rt, drelu(rt, x), x)


def reference_relu(x, ell: int) -> np.ndarray:
    return reference_mul_bit(reference_drelu(x, ell), x, ell)


def relu_pattern(ell: int):
    return msb_pattern(ell) + ["x"]


def cost_relu(shape, ell: int) -> Cost:
    return _seq([cost_drelu(shape, ell), cost_mul_bit(shape, ell)], relu_pattern(ell))


def max2(rt, a: Shared, b: Shared) -> Shared:
    """<max(a, b)> = b + relu(a - b); exact when a - b does not wrap in Z_2^l."""
    return b + relu(rt, a - b)


def reference_max2(a, b, ell: int) -> np.ndarray:
    r = ring(ell)
    return r.add(r.reduce(b), reference_relu(r.sub(r.reduce(a), r.reduce(b)), ell))


cost_max2 = cost_relu


def _levels(length: int):
    """Pairs compared per level of the max tree: halves, an odd element carried over."""
    out = []
    while length > 1:
        out.append(length // 2)
        length -= length // 2
    return out


def row_max(rt, x: Shared) -> Shared:
    """Max over the last axis by a tree of ``max2``: ceil(log2 L) levels, each comparing
    the first half with the second (an odd last element waits a level)."""
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ShapeMismatch(f"row max needs a non-empty last axis, got shape {x.shape}")
    while x.shape[-1] > 1:
        h = x.shape[-1] // 2
        m = max2(rt, x[..., :h], x[..., h : 2 * h])
        x = concatenate([m, x[..., 2 * h :]], axis=-1) if x.shape[-1] % 2 else m
    return x[..., 0]


def reference_row_max(x, ell: int) -> np.ndarray:
    x = ring(ell).reduce(np.asarray(x))
    while x.shape[-1] > 1:
        h = x.shape[-1] // 2
        m = reference_max2(x[..., :h], x[..., h : 2 * h], ell)
        x = np.concatenate([m, x[..., 2 * h :]], axis=-1)
    return x[..., 0]


def cost_row_max(shape, ell: int) -> Cost:
    """``shape`` includes the reduced axis of length L."""
    batch = tuple(shape[:-1])
    costs, pattern = [], []
    for h in _levels(shape[-1]):
        costs.append(cost_relu(batch + (h,), ell))
        pattern += relu_pattern(ell)
    return _seq(costs, pattern)
