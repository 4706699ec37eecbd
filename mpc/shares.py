"""One party's share of a secret tensor, and plaintext share/reconstruct helpers.

``Shared`` holds this party's additive share over a domain (``Ring`` Z_2^k, boolean
``Ring(1)`` for XOR sharing, or a ``PrimeField``). The helper P0 runs the same program on
*phantoms*: shares with a shape but no data, so protocol and model code is one code path
for all three parties. Local operations (add, subtract, public scale, reshape, slice,
sum, product with a public matrix, free reduction to a narrower ring) cost nothing.
``Dual`` is one value shared in a narrow and a wide ring at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mpc.ring import Domain, DomainMismatch, Ring, ring

U64 = np.uint64


class ShapeMismatch(ValueError):
    """Operands or messages have incompatible shapes."""


def _view_shape(shape, fn) -> tuple[int, ...]:
    """Shape of ``fn(x)`` for a view-only ``fn`` without allocating ``x``."""
    return fn(np.broadcast_to(np.empty((), dtype=np.uint8), shape)).shape


def matmul_shape(sx, sy) -> tuple:
    """Shape of np.matmul(x, y), computed without multiplying anything."""
    sx, sy = tuple(sx), tuple(sy)
    if len(sx) == 0 or len(sy) == 0:
        raise ShapeMismatch("matmul needs operands of at least one dimension")
    ax = sx if len(sx) > 1 else (1, *sx)
    ay = sy if len(sy) > 1 else (*sy, 1)
    if ax[-1] != ay[-2]:
        raise ShapeMismatch(f"matmul of shapes {sx} and {sy}: inner dimensions differ")
    try:
        batch = tuple(np.broadcast_shapes(ax[:-2], ay[:-2]))
    except ValueError:
        raise ShapeMismatch(f"matmul of shapes {sx} and {sy}: batch dimensions") from None
    return batch + sx[-2:-1] + sy[-1:] if len(sy) > 1 else batch + sx[-2:-1]


def _public_array(c) -> np.ndarray:
    c = np.asarray(c)
    if c.dtype.kind not in "iub":
        raise TypeError(f"public operand must be integer, got {c.dtype}")
    return c


class Shared:
    """This party's share of a secret tensor over ``dom`` (data is None on P0)."""

    __slots__ = ("dom", "data", "shape", "party")
    __array_priority__ = 100  # make ndarray + Shared defer to Shared.__radd__

    def __init__(self, dom: Domain, data: np.ndarray | None, party: int, shape=None):
        self.dom = dom
        self.party = party
        if data is None:
            if shape is None:
                raise ValueError("a phantom share needs a shape")
            self.data = None
            self.shape = tuple(int(s) for s in shape)
        else:
            if data.dtype != U64:
                raise TypeError(f"share data must be uint64, got {data.dtype}")
            self.data = data
            self.shape = data.shape

    # -- construction -------------------------------------------------------------------
    @classmethod
    def phantom(cls, dom: Domain, shape) -> Shared:
        return cls(dom, None, 0, shape)

    def like(self, data: np.ndarray | None, shape=None, dom: Domain | None = None) -> Shared:
        """A share of the same party (phantom if this one is)."""
        dom = dom or self.dom
        if self.data is None:
            return Shared(dom, None, self.party, shape if shape is not None else self.shape)
        return Shared(dom, data, self.party)

    @property
    def is_phantom(self) -> bool:
        return self.data is None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:  # never print share values
        kind = "phantom" if self.data is None else f"P{self.party}"
        return f"Shared({self.dom!r}, shape={self.shape}, {kind})"

    # -- arithmetic -----------------------------------------------------------------------
    def _combine(self, other, op):
        if isinstance(other, Shared):
            if other.dom != self.dom:
                raise DomainMismatch(f"cannot combine shares over {self.dom!r} and {other.dom!r}")
            try:
                shape = np.broadcast_shapes(self.shape, other.shape)
            except ValueError:
                raise ShapeMismatch(f"shapes {self.shape} and {other.shape}") from None
            if self.data is None or other.data is None:
                return self.like(None, shape)
            return self.like(op(self.data, other.data))
        # public operand: only P1 adds it, so the shares sum to x + c
        c = _public_array(other)
        shape = np.broadcast_shapes(self.shape, c.shape)
        if self.data is None:
            return self.like(None, shape)
        if self.party != 1:
            return self.like(np.broadcast_to(self.data, shape).copy())
        return self.like(op(self.data, self.dom.reduce(c)))

    def __add__(self, other):
        return self._combine(other, self.dom.add)

    __radd__ = __add__

    def __sub__(self, other):
        return self._combine(other, self.dom.sub)

    def __rsub__(self, other):
        return (-self) + other

    def __neg__(self):
        return self.like(None if self.data is None else self.dom.neg(self.data))

    def __mul__(self, c):
        """Product with a public integer scalar or array (local)."""
        if isinstance(c, Shared):
            raise TypeError("share x share products need a protocol (protocols.beaver)")
        c = _public_array(c)
        shape = np.broadcast_shapes(self.shape, c.shape)
        if self.data is None:
            return self.like(None, shape)
        return self.like(self.dom.mul(self.data, self.dom.reduce(c)))

    __rmul__ = __mul__

    def matmul_public(self, w, right: bool = True) -> Shared:
        """``share @ W`` (or ``W @ share`` if not right) for a public integer matrix W."""
        from mpc.limbmatmul import matmul

        if not isinstance(self.dom, Ring):
            raise TypeError("public matmul is defined over rings")
        w = self.dom.reduce(_public_array(w))
        a, b = (self, w) if right else (w, self)
        shape = matmul_shape(a.shape, b.shape)
        if self.data is None:
            return self.like(None, shape)
        if right:
            return self.like(matmul(self.data, w, self.dom))
        return self.like(matmul(w, self.data, self.dom))

    # -- rings ------------------------------------------------------------------------------
    def reduce(self, k: int) -> Shared:
        """Free conversion to Z_2^k for k <= current width (keeps x mod 2^k)."""
        if not isinstance(self.dom, Ring) or k > self.dom.k:
            raise DomainMismatch(f"cannot reduce {self.dom!r} to Z2^{k} for free")
        r = ring(k)
        return self.like(None if self.data is None else self.data & r.mask, dom=r)

    def reinterpret(self, k: int) -> Shared:
        """Read the same share words in Z_2^k (k >= width). Not a sharing of x by itself:
        the shares sum to x + c*2^width for a carry c; protocols use it deliberately."""
        if not isinstance(self.dom, Ring) or k < self.dom.k:
            raise DomainMismatch(f"cannot reinterpret {self.dom!r} as Z2^{k}")
        return self.like(self.data, dom=ring(k))

    # -- shape ops (views) ----------------------------------------------------------------
    def _view(self, fn) -> Shared:
        if self.data is None:
            return self.like(None, _view_shape(self.shape, fn))
        return self.like(fn(self.data))

    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], tuple) else shape
        return self._view(lambda a: a.reshape(shape))

    def transpose(self, *axes):
        return self._view(lambda a: a.transpose(*axes))

    @property
    def T(self):
        return self._view(lambda a: a.T)

    def swapaxes(self, a1, a2):
        return self._view(lambda a: a.swapaxes(a1, a2))

    def __getitem__(self, idx):
        return self._view(lambda a: a[idx])

    def broadcast_to(self, shape):
        return self._view(lambda a: np.broadcast_to(a, shape))

    def sum(self, axis=None, keepdims=False) -> Shared:
        if self.data is None:
            shape = np.empty(self.shape, dtype=np.uint8).sum(axis=axis, keepdims=keepdims).shape
            return self.like(None, shape)
        s = self.data.sum(axis=axis, keepdims=keepdims, dtype=U64)
        return self.like(np.asarray(self.dom.reduce(s) if isinstance(self.dom, Ring) else s))

    def copy(self) -> Shared:
        return self.like(None if self.data is None else self.data.copy())


def concatenate(shares: list[Shared], axis: int = 0) -> Shared:
    first = shares[0]
    for s in shares[1:]:
        first.dom.check(s.dom)
    if first.data is None:
        shape = np.concatenate([np.empty(s.shape, dtype=np.uint8) for s in shares], axis).shape
        return first.like(None, shape)
    return first.like(np.concatenate([s.data for s in shares], axis=axis))


def stack(shares: list[Shared], axis: int = 0) -> Shared:
    return concatenate([s.reshape(s.shape[:axis] + (1,) + s.shape[axis:]) for s in shares], axis)


@dataclass(frozen=True)
class Dual:
    """One secret held in a narrow ring (LUT index) and a wide ring (accumulator)."""

    narrow: Shared
    wide: Shared

    def __post_init__(self):
        if self.narrow.shape != self.wide.shape:
            raise ShapeMismatch(f"dual views of shapes {self.narrow.shape}, {self.wide.shape}")


# -- plaintext helpers (tests, dealer, client-side input) ----------------------------------
def share_plain(x, dom: Domain, rng: np.random.Generator | None = None):
    """Split plaintext ``x`` into two uniformly random shares (P1's, P2's) over ``dom``."""
    rng = rng or np.random.default_rng()
    x = dom.reduce(np.asarray(x))
    if isinstance(dom, Ring):
        r = rng.integers(0, 1 << 63, size=x.shape, dtype=np.uint64) * U64(2) + rng.integers(
            0, 2, size=x.shape, dtype=np.uint64
        )
        r = dom.reduce(r)
    else:
        r = rng.integers(0, dom.modulus, size=x.shape, dtype=np.uint64)
    return Shared(dom, dom.sub(x, r), 1), Shared(dom, r, 2)


def reconstruct(s1: Shared, s2: Shared) -> np.ndarray:
    s1.dom.check(s2.dom)
    return s1.dom.add(s1.data, s2.data)
