"""Rings Z_2^k (1 <= k <= 64) and small prime fields F_p.

One storage rule for every domain: elements live in ``numpy.uint64`` arrays holding the
canonical representative (``0 <= x < 2^k`` or ``0 <= x < p``). uint64 arithmetic wraps
mod 2^64, so ring ops are one numpy op plus a mask. ``Ring(1)`` is the boolean domain:
addition is XOR, multiplication is AND.
"""

from __future__ import annotations

from functools import cache

import numpy as np

U64 = np.uint64


class DomainMismatch(ValueError):
    """Two operands live in different rings or fields."""


class Domain:
    """Common interface of ``Ring`` and ``PrimeField``."""

    bits: int  # wire width of one element
    modulus: int

    def nbytes(self, n: int) -> int:
        """Bytes of ``n`` elements bit-packed to ``bits`` each."""
        return (n * self.bits + 7) // 8

    def check(self, other: Domain) -> None:
        if other != self:
            raise DomainMismatch(f"operands in {self!r} and {other!r}")


class Ring(Domain):
    """Z_2^k. Use ``ring(k)`` to get the shared instance."""

    __slots__ = ("k", "bits", "modulus", "mask")

    def __init__(self, k: int):
        if not 1 <= k <= 64:
            raise ValueError(f"ring width must be in 1..64, got {k}")
        self.k = self.bits = k
        self.modulus = 1 << k
        self.mask = U64((1 << k) - 1)

    def __repr__(self) -> str:
        return f"Z2^{self.k}"

    def __eq__(self, other) -> bool:
        return isinstance(other, Ring) and other.k == self.k

    def __hash__(self) -> int:
        return hash(("ring", self.k))

    def reduce(self, a) -> np.ndarray:
        """Canonical representative of integer array ``a`` (signed values wrap)."""
        a = np.asarray(a)
        if a.dtype == object:
            a = np.vectorize(lambda v: int(v) & ((1 << 64) - 1), otypes=[U64])(a)
        elif a.dtype != U64:
            a = a.astype(np.int64, copy=False).astype(U64) if a.dtype.kind in "iub" else a
            if a.dtype != U64:
                raise TypeError(f"cannot reduce dtype {a.dtype} into {self!r}")
        return a & self.mask if self.k < 64 else a.copy()

    # np.add & co. on arrays never warn; on 0-d numpy scalars wrap-around would warn.
    def add(self, a, b):
        return np.add(a, b, dtype=U64) & self.mask

    def sub(self, a, b):
        return np.subtract(a, b, dtype=U64) & self.mask

    def neg(self, a):
        return np.subtract(U64(0), a, dtype=U64) & self.mask

    def mul(self, a, b):
        return np.multiply(a, b, dtype=U64) & self.mask

    def signed(self, a) -> np.ndarray:
        """Two's-complement value of each element as int64 (exact for k <= 64)."""
        a = np.asarray(a, dtype=U64)
        if self.k == 64:
            return a.view(np.int64)
        half = U64(1 << (self.k - 1))
        return (a ^ half).astype(np.int64) - np.int64(1 << (self.k - 1))

    def random(self, prg, shape) -> np.ndarray:
        return prg.ring(self, shape)


class PrimeField(Domain):
    """F_p for a prime p < 2^31 (products of two elements fit in uint64)."""

    __slots__ = ("p", "bits", "modulus")

    def __init__(self, p: int):
        if not 2 <= p < 1 << 31:
            raise ValueError(f"prime field modulus must be in 2..2^31, got {p}")
        if any(p % d == 0 for d in range(2, int(p**0.5) + 1)):
            raise ValueError(f"{p} is not prime")
        self.p = self.modulus = p
        self.bits = (p - 1).bit_length()

    def __repr__(self) -> str:
        return f"F{self.p}"

    def __eq__(self, other) -> bool:
        return isinstance(other, PrimeField) and other.p == self.p

    def __hash__(self) -> int:
        return hash(("field", self.p))

    def reduce(self, a) -> np.ndarray:
        a = np.asarray(a)
        if a.dtype.kind == "i":
            return (a % self.p).astype(U64)
        return np.asarray(a, dtype=U64) % U64(self.p)

    def add(self, a, b):
        return (a + b) % U64(self.p)

    def sub(self, a, b):
        return (a + (U64(self.p) - b)) % U64(self.p)

    def neg(self, a):
        return (U64(self.p) - a) % U64(self.p)

    def mul(self, a, b):
        return (a * b) % U64(self.p)

    def random(self, prg, shape) -> np.ndarray:
        return prg.field(self, shape)


def signed_width(lo: int, hi: int) -> int:
    """Bits of the two's complement integers in [lo, hi] (sign bit included)."""
    return max(max(hi, 0).bit_length(), (-lo - 1).bit_length() if lo < 0 else 0) + 1


@cache
def ring(k: int) -> Ring:
    return Ring(k)


@cache
def field(p: int) -> PrimeField:
    return PrimeField(p)


BOOL = ring(1)


def smallest_prime_at_least(n: int) -> int:
    p = max(2, n)
    while any(p % d == 0 for d in range(2, int(p**0.5) + 1)):
        p += 1
    return p
