"""Extended Beaver triples for bilinear maps over Z_2^k (Morse-STF), and private weights.

Shared x shared (``bilinear``, ``mul``, ``matmul``, ``bmm``, ``matmul_many``)
-----------------------------------------------------------------------------
For a bilinear f: A x B -> C, P0 draws a in A and b_j in B from the seeds (free) and
shares c_j = f(a, b_j) (a correction of |C_j| elements to P2, offline). Online, one round:
each party sends its shares of x - a and of every y_j - b_j in one frame, both learn
dx = x - a and dy_j = y_j - b_j, and Pi outputs

    z_ij = f(x_i, dy_j) + f(dx, b_ij) + c_ij

(summed: f(x, y - b) + f(x - a, b) + f(a, b) = f(x, y); this is the textbook output
P1: f(dx,dy) + f(a1,dy) + f(dx,b1) + c1, P2: f(a2,dy) + f(dx,b2) + c2 rewritten so both
parties evaluate f twice). One opening of dx serves every y_j (mask reuse, one round).
Cost per party online: (k|x| + sum_j k|y_j|) bits (one packed array each), offline to P2:
sum_j k|f(x, y_j)| bits, 1 round.

Private weight x shared activation (``prepare_weight``, ``linear``, ``linear_many``)
-----------------------------------------------------------------------------------
The owner Po (P2 by default) holds W in the clear; X = X1 + X2 is shared; the other
party is Pq. Y = X W = Xo W + Xq W, where Xo W is local to Po and Xq W is a private x
private product. ``prepare_weight`` (once per weight): P0 and Po draw a uniform mask a
(``private_random``), Po sends dW = W - a to Pq (k|W| bits, 1 round); Pq keeps dW,
Po keeps W, P0 keeps a, in a ``PrivateWeight``. Per query: P0 and Pq draw a fresh mask
b for Xq, P0 shares c = b a; Pq sends d = Xq - b (k|X| bits, 1 round, nothing from Po);
outputs Pq: b dW + c_q and Po: (d + Xo) W + c_o. Check: b(W - a) + (Xq - b) W + Xo W +
b a = X W. Offline: k|Y| bits to P2 per query.

Why reusing dW is safe: a is uniform and drawn for this weight only, so dW is a one-time
pad of W, revealed once; Pq's later view is fresh pads d (for Po) and seed-derived c_q.
Each query's c = b a uses a fresh b, so no two openings ever share a mask. A mask must
never be reused with another weight (W - a and W' - a would reveal W - W'): the mask is
drawn inside ``prepare_weight`` and lives only in the immutable ``PrivateWeight`` that
binds it to that weight (id, ring, shape, owner, session); there is no way to rebind it.
``linear_many`` serves several weights of one owner with ONE opening of d: c is the
product of b with the concatenated masks [a_1|a_2|...].
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np

from mpc.cost import Cost, msg
from mpc.limbmatmul import matmul as ring_matmul
from mpc.limbmatmul import matmul_reference
from mpc.ring import DomainMismatch, Ring, ring
from mpc.shares import ShapeMismatch, Shared, matmul_shape

U64 = np.uint64
BilinearFn = Callable[[np.ndarray, np.ndarray, Ring], np.ndarray]
ShapeFn = Callable[[tuple, tuple], tuple]

# -- shapes of the bilinear maps ---------------------------------------------------------


def mul_shape(sx, sy) -> tuple:
    try:
        return tuple(np.broadcast_shapes(tuple(sx), tuple(sy)))
    except ValueError:
        raise ShapeMismatch(f"element-wise product of shapes {sx} and {sy}") from None


def bmm_shape(sx, sy) -> tuple:
    if len(sx) != 3 or len(sy) != 3 or sx[0] != sy[0] or sx[2] != sy[1]:
        raise ShapeMismatch(f"bmm needs [B,n,m] x [B,m,p], got {sx} and {sy}")
    return (sx[0], sx[1], sy[2])


def _f_mul(a, b, r: Ring):
    with np.errstate(over="ignore"):  # 0-d operands are numpy scalars, which warn on wrap
        return np.asarray(r.mul(a, b))


# -- shared x shared -------------------------------------------------------------------


def _ring_of(x: Shared, ys: Sequence[Shared]) -> Ring:
    if not isinstance(x.dom, Ring):
        raise DomainMismatch(f"bilinear triples work over rings Z2^k, got {x.dom!r}")
    for y in ys:
        if y.dom != x.dom:
            raise DomainMismatch(f"operands in {x.dom!r} and {y.dom!r}")
    return x.dom


def bilinear_many(rt, x: Shared, ys: Sequence[Shared], f: BilinearFn, shape_fn: ShapeFn):
    """Shares of f(x, y_j) for every y_j, opening x - a once (1 round; see module doc).

    ``f(a, b, ring)`` evaluates the bilinear map on uint64 ring arrays; ``shape_fn`` gives
    the output shape (raising ShapeMismatch). Cost: ``cost_bilinear_many``."""
    ys = list(ys)
    if not ys:
        raise ValueError("bilinear_many needs at least one right operand")
    R = _ring_of(x, ys)
    out_shapes = [tuple(shape_fn(x.shape, y.shape)) for y in ys]
    a = rt.random_shared(R, x.shape)
    bs = [rt.random_shared(R, y.shape) for y in ys]
    if rt.is_dealer:
        for b, s in zip(bs, out_shapes, strict=True):
            rt.dealer_shared(R, s, f(a, b, R))
        return [Shared.phantom(R, s) for s in out_shapes]
    cs = [rt.dealer_shared(R, s) for s in out_shapes]
    mine = [R.sub(x.data, a.data)] + [R.sub(y.data, b.data) for y, b in zip(ys, bs, strict=True)]
    theirs = rt.exchange([(R, m) for m in mine])
    dx = R.add(mine[0], theirs[0])
    outs = []
    for b, c, my, th in zip(bs, cs, mine[1:], theirs[1:], strict=True):
        dy = R.add(my, th)
        z = R.add(f(x.data, dy, R), f(dx, b.data, R))
        outs.append(Shared(R, R.add(z, c.data), rt.rank))
    return outs


def bilinear(rt, x: Shared, y: Shared, f: BilinearFn, shape_fn: ShapeFn) -> Shared:
    """Shares of f(x, y) for a bilinear f (1 round). Cost: ``cost_bilinear``."""
    return bilinear_many(rt, x, [y], f, shape_fn)[0]


def mul(rt, x: Shared, y: Shared) -> Shared:
    """Element-wise x * y (numpy broadcasting). Cost: ``cost_mul``."""
    return bilinear(rt, x, y, _f_mul, mul_shape)


def matmul(rt, x: Shared, y: Shared) -> Shared:
    """x @ y (np.matmul semantics, batch dims broadcast). Cost: ``cost_matmul``."""
    return bilinear(rt, x, y, ring_matmul, matmul_shape)


def bmm(rt, x: Shared, y: Shared) -> Shared:
    """Batched [B,n,m] @ [B,m,p], e.g. attention Q K^T and P V over heads."""
    return bilinear(rt, x, y, ring_matmul, bmm_shape)


def matmul_many(rt, x: Shared, ys: Sequence[Shared]) -> list[Shared]:
    """[x @ y_j for j]: one opening of x - a plus each y_j - b_j, all in one round."""
    return bilinear_many(rt, x, ys, ring_matmul, matmul_shape)


# -- private weight x shared activation --------------------------------------------------

_ids = itertools.count(1)


class PrivateWeight:
    """One party's handle on a prepared private weight (immutable, bound to one session).

    Owner: ``w`` = W; other computing party: ``w`` = dW = W - a; P0: ``w`` = a."""

    __slots__ = ("weight_id", "ring", "shape", "owner", "session", "rank", "w")

    def __init__(self, weight_id, r: Ring, shape, owner: int, session: int, rank: int, w):
        w = np.array(w, dtype=U64)  # private copy, frozen
        w.setflags(write=False)
        for name, v in zip(
            self.__slots__, (weight_id, r, tuple(shape), owner, session, rank, w), strict=True
        ):
            object.__setattr__(self, name, v)

    def __setattr__(self, name, value):
        raise AttributeError("a PrivateWeight is immutable: its mask belongs to one weight")

    def __repr__(self) -> str:
        return (
            f"PrivateWeight({self.weight_id!r}, {self.ring!r}, {self.shape}, owner=P{self.owner})"
        )


def prepare_weight(rt, w, r: Ring, shape, owner: int = 2, name=None) -> PrivateWeight:
    """Once per weight: the owner sends dW = W - a to the other party (k|W| bits, 1
    round). ``w`` is the owner's weight (None elsewhere). Cost: ``cost_prepare_weight``."""
    shape = tuple(int(s) for s in shape)
    if owner not in (1, 2):
        raise ValueError(f"the weight owner must be P1 or P2, got {owner}")
    if not isinstance(r, Ring):
        raise DomainMismatch(f"private weights live in rings Z2^k, got {r!r}")
    if len(shape) != 2:
        raise ShapeMismatch(f"a weight is a matrix (d_in, d_out), got shape {shape}")
    if rt.rank == owner:
        w = np.asarray(w)
        if w.shape != shape:
            raise ShapeMismatch(f"weight of shape {w.shape}, declared {shape}")
        w = r.reduce(w)
    wid = name if name is not None else f"w{next(_ids)}"
    a = rt.private_random(r, shape, owner)
    if rt.is_dealer:
        held = a
    elif rt.rank == owner:
        rt.send([(r, r.sub(w, a))])
        held = w
    else:
        (held,) = rt.recv([(r, shape)])
    return PrivateWeight(wid, r, shape, owner, rt.session, rt.rank, held)


def _check_linear(rt, x: Shared, pws: Sequence[PrivateWeight]) -> Ring:
    if not pws:
        raise ValueError("linear_many needs at least one weight")
    first = pws[0]
    if len({id(p) for p in pws}) != len(pws):
        raise ValueError("the same weight appears twice in linear_many")
    for p in pws:
        if not isinstance(p, PrivateWeight):
            raise TypeError(f"expected a PrivateWeight, got {type(p).__name__}")
        if p.session != rt.session or p.rank != rt.rank:
            raise ValueError(f"weight {p.weight_id!r} was prepared in another session/party")
        if p.owner != first.owner:
            raise ValueError("linear_many weights must have one owner")
        if p.ring != x.dom:
            raise DomainMismatch(f"activation in {x.dom!r}, weight {p.weight_id!r} in {p.ring!r}")
        if x.ndim < 1 or x.shape[-1] != p.shape[0]:
            raise ShapeMismatch(f"activation of shape {x.shape} by weight of shape {p.shape}")
    return first.ring


def linear_many(rt, x: Shared, pws: Sequence[PrivateWeight]) -> list[Shared]:
    """[X @ W_j for j] with one opening of Xq - b (1 round, k|X| bits from the non-owner,
    k sum_j |Y_j| bits offline). Cost: ``cost_linear_many``."""
    pws = list(pws)
    R = _check_linear(rt, x, pws)
    owner = pws[0].owner
    outs = [matmul_shape(x.shape, p.shape) for p in pws]
    widths = [p.shape[1] for p in pws]
    cat = (*outs[0][:-1], sum(widths))
    splits = np.cumsum(widths)[:-1]
    b = rt.private_random(R, x.shape, 3 - owner)
    if rt.is_dealer:
        a = pws[0].w if len(pws) == 1 else np.concatenate([p.w for p in pws], axis=1)
        rt.dealer_shared(R, cat, ring_matmul(b, a, R))
        return [Shared.phantom(R, s) for s in outs]
    c = rt.dealer_shared(R, cat).data
    c = [c] if len(pws) == 1 else np.split(c, splits, axis=-1)
    if rt.rank == owner:
        (d,) = rt.recv([(R, x.shape)])
        u = R.add(d, x.data)  # Xq - b + Xo
    else:
        rt.send([(R, R.sub(x.data, b))])
        u = b
    return [
        Shared(R, R.add(ring_matmul(u, p.w, R), cj), rt.rank) for p, cj in zip(pws, c, strict=True)
    ]


def linear(rt, x: Shared, pw: PrivateWeight) -> Shared:
    """X @ W for shared X and a prepared private W (1 round). Cost: ``cost_linear``."""
    return linear_many(rt, x, [pw])[0]


# -- declared costs ------------------------------------------------------------------------


def _n(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def cost_bilinear_many(shape_x, shapes_y, out_shapes, k: int) -> Cost:
    R = ring(k)
    on = msg(R, _n(shape_x)) + sum(msg(R, _n(s)) for s in shapes_y)
    off = sum(msg(R, _n(s)) for s in out_shapes)
    return Cost((on, on), (0, off), 1)


def cost_bilinear(shape_x, shape_y, out_shape, k: int) -> Cost:
    return cost_bilinear_many(shape_x, [shape_y], [out_shape], k)


def cost_mul(shape, k: int, shape_y=None) -> Cost:
    shape_y = shape if shape_y is None else shape_y
    return cost_bilinear(shape, shape_y, mul_shape(shape, shape_y), k)


def cost_matmul(shape_x, shape_y, k: int) -> Cost:
    return cost_bilinear(shape_x, shape_y, matmul_shape(shape_x, shape_y), k)


def cost_bmm(shape_x, shape_y, k: int) -> Cost:
    return cost_bilinear(shape_x, shape_y, bmm_shape(shape_x, shape_y), k)


def cost_matmul_many(shape_x, shapes_y, k: int) -> Cost:
    outs = [matmul_shape(shape_x, s) for s in shapes_y]
    return cost_bilinear_many(shape_x, shapes_y, outs, k)


def cost_prepare_weight(shape_w, k: int, owner: int = 2) -> Cost:
    m = msg(ring(k), _n(shape_w))
    return Cost((m, 0) if owner == 1 else (0, m), (0, 0), 1)


def cost_linear_many(shape_x, shapes_w, k: int, owner: int = 2) -> Cost:
    R = ring(k)
    m = msg(R, _n(shape_x))
    out = _n(matmul_shape(shape_x, (shapes_w[0][0], sum(s[1] for s in shapes_w))))
    return Cost((0, m) if owner == 1 else (m, 0), (0, msg(R, out)), 1)


def cost_linear(shape_x, shape_w, k: int, owner: int = 2) -> Cost:
    return cost_linear_many(shape_x, [shape_w], k, owner)


# -- plaintext references (Python integers, then mod 2^k) ----------------------------------


def reference_mul(x, y, k: int) -> np.ndarray:
    prod = np.asarray(x).astype(object) * np.asarray(y).astype(object)
    return np.array([int(v) % (1 << k) for v in np.ravel(prod)], dtype=U64).reshape(np.shape(prod))


def reference_matmul(x, y, k: int) -> np.ndarray:
    return matmul_reference(x, y, k)


reference_bmm = reference_matmul
reference_linear = reference_matmul


def reference_matmul_many(x, ys, k: int) -> list[np.ndarray]:
    return [matmul_reference(x, y, k) for y in ys]


reference_linear_many = reference_matmul_many
