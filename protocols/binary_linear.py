"""1-bit weight linear layer: Y = X S for shared X and a private sign matrix S.

The weight is W = S diag(alpha) with S in {+-1}^(d_in x d_out) and per-channel scales
alpha. Only Y = X S is computed here, exactly mod 2^k; alpha is NOT applied: it is folded
into the next lookup table (requantization), which is a secret table because alpha is
private. Pick k = ``accumulator_bits(k_x, d_in)`` so that X S (|X S| <= 2^(k_x-1) d_in)
never wraps: e.g. 8-bit activations and d_in = 768 give k = 19.

Protocol. With S_bits = (S + 1)/2 in {0,1}:  X S = 2 X S_bits - rowsum(X) 1^T.
2 X S_bits mod 2^k only depends on X S_bits mod 2^(k-1), so the secure product runs one
bit narrower: the private-weight protocol of ``protocols.beaver`` (``prepare_weight`` /
``linear_many``) on S_bits over Z_2^(k-1) with X reduced to Z_2^(k-1) (free), then each
party doubles its share read in Z_2^k (the lost carry becomes a multiple of 2^k) and
subtracts its share of rowsum(X) (local). Costs: once per weight, (k-1)|S| bits from
the owner (1 round); per query, (k-1)|X| bits from the non-owner, (k-1)|Y| bits offline
to P2, 1 round.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mpc.cost import Cost
from mpc.limbmatmul import matmul_reference
from mpc.ring import DomainMismatch, Ring, ring
from mpc.shares import Shared
from protocols.beaver import (
    PrivateWeight,
    cost_linear_many,
    cost_prepare_weight,
    linear_many,
    prepare_weight,
)


def accumulator_bits(k_x: int, d_in: int) -> int:
    """Ring width B = k_x + ceil(log2 d_in) + 1 that holds X S for signed k_x-bit X."""
    if k_x < 1 or d_in < 1:
        raise ValueError("activation bits and d_in must be positive")
    return k_x + math.ceil(math.log2(d_in)) + 1


@dataclass(frozen=True)
class BinaryWeight:
    """A prepared sign matrix: S_bits as a ``PrivateWeight`` over Z_2^(k-1)."""

    pw: PrivateWeight

    @property
    def k(self) -> int:
        return self.pw.ring.k + 1

    @property
    def shape(self) -> tuple[int, int]:
        return self.pw.shape


def prepare_binary_weight(rt, s, k: int, shape, owner: int = 2, name=None) -> BinaryWeight:
    """Once per weight: the owner of S (entries +-1; None elsewhere) opens S_bits - a over
    Z_2^(k-1). Cost: ``cost_prepare_binary_weight``."""
    if not 2 <= k <= 64:
        raise ValueError(f"binary layer needs an accumulator ring of 2..64 bits, got {k}")
    bits = None
    if rt.rank == owner:
        s = np.asarray(s)
        if s.dtype.kind not in "iu" or not np.isin(s, (-1, 1)).all():
            raise ValueError("a binary weight must be an integer array of +-1 entries")
        bits = (s > 0).astype(np.uint64)
    return BinaryWeight(prepare_weight(rt, bits, ring(k - 1), shape, owner, name))


def binary_linear_many(rt, x: Shared, bws: Sequence[BinaryWeight]) -> list[Shared]:
    """[X S_j for j] over Z_2^k with one opening (1 round). Cost: ``cost_binary_linear_many``."""
    bws = list(bws)
    if not bws:
        raise ValueError("binary_linear_many needs at least one weight")
    if not isinstance(x.dom, Ring):
        raise DomainMismatch(f"binary layer works over rings Z2^k, got {x.dom!r}")
    for bw in bws:
        if bw.k != x.dom.k:
            raise DomainMismatch(f"activation in {x.dom!r}, weight prepared for Z2^{bw.k}")
    k = x.dom.k
    half = linear_many(rt, x.reduce(k - 1), [bw.pw for bw in bws])
    rowsum = x.sum(axis=-1, keepdims=True)
    return [h.reinterpret(k) * 2 - rowsum for h in half]


def binary_linear(rt, x: Shared, bw: BinaryWeight) -> Shared:
    """X S over Z_2^k for shared X (1 round). Cost: ``cost_binary_linear``."""
    return binary_linear_many(rt, x, [bw])[0]


def cost_prepare_binary_weight(shape_s, k: int, owner: int = 2) -> Cost:
    return cost_prepare_weight(shape_s, k - 1, owner)


def cost_binary_linear_many(shape_x, shapes_s, k: int, owner: int = 2) -> Cost:
    return cost_linear_many(shape_x, shapes_s, k - 1, owner)


def cost_binary_linear(shape_x, shape_s, k: int, owner: int = 2) -> Cost:
    return cost_binary_linear_many(shape_x, [shape_s], k, owner)


def reference_binary_linear(x, s, k: int) -> np.ndarray:
    """X S mod 2^k with S in {+-1} (Python integers); alpha is not applied."""
    return matmul_reference(x, np.asarray(s, dtype=np.int64), k)
