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
(``private_words``), Po sends dW = W - a to Pq (k|W| bits, 1 round); Pq keeps dW,
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

Two speed-ups that change nothing on the wire:
* narrow owner weights: a weight given as W = W_int diag(m) (``prepare_weight(...,
  scale=m)``, e.g. int8 W_int and per-channel multipliers) is held factored by the owner,
  whose product is (d + Xo) W_int (a limb plan for a narrow operand: one float64 GEMM up
  to k = 45 - 8 at n = 768) times m per column, instead of a product with a k-bit W.
* pre-query products: b is drawn from a stream named by the weights and the use count
  (``Runtime.keyed_random``), not from the running stream, so Pq can draw it and compute
  b dW before the query (``precompute_linear``: input-independent work, e.g. while
  waiting for a client); ``linear_many`` then takes them instead of computing them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numba import njit

from mpc.cost import Cost, msg
from mpc.limbmatmul import matmul as ring_matmul
from mpc.limbmatmul import matmul_reference
from mpc.ring import DomainMismatch, Ring, ring, signed_width
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


class PrivateWeight:
    """One party's handle on a prepared private weight (immutable, bound to one session).

    Owner: ``w`` = W (or W_int with ``scale`` = m for W = W_int diag(m)) and ``bits``, the
    signed width of ``w``'s entries (an owner's narrow signed integers stay in their dtype,
    e.g. int8: 8x less memory, and the limb product reads them directly); other computing
    party: ``w`` = dW = W - a; P0: ``w`` = a (both as uint32 words for rings up to Z_2^32,
    else uint64)."""

    __slots__ = (
        "weight_id", "ring", "shape", "owner", "session", "rank", "w", "scale", "bits", "serial"
    )  # fmt: skip

    def __init__(
        self, weight_id, r, shape, owner, session, rank, w, scale=None, bits=None, serial=0,
        *, own=False,
    ):  # fmt: skip
        # frozen; a private copy unless the caller hands over a fresh array (``own``):
        # copying BERT-base's 85 M words costs ~1 s of page faults per party
        dt = np.asarray(w).dtype
        if not ((bits is not None and dt.kind == "i") or dt == np.uint32):
            dt = U64
        w = np.asarray(w, dtype=dt) if own else np.array(w, dtype=dt)
        w.setflags(write=False)
        if scale is not None:
            scale = np.array(scale, dtype=U64)
            scale.setflags(write=False)
        vals = (weight_id, r, tuple(shape), owner, session, rank, w, scale, bits, serial)
        for name, v in zip(self.__slots__, vals, strict=True):
            object.__setattr__(self, name, v)

    def __setattr__(self, name, value):
        raise AttributeError("a PrivateWeight is immutable: its mask belongs to one weight")

    def __repr__(self) -> str:
        return (
            f"PrivateWeight({self.weight_id!r}, {self.ring!r}, {self.shape}, owner=P{self.owner})"
        )

    def times(self, u: np.ndarray) -> np.ndarray:
        """u @ (this party's w) mod 2^k, through the factored form on the owner."""
        out = ring_matmul(u, self.w, self.ring, b_bits=self.bits)
        return out if self.scale is None else self.ring.mul(out, self.scale)


def prepare_weight(rt, w, r: Ring, shape, owner: int = 2, name=None, scale=None) -> PrivateWeight:
    """Once per weight: the owner sends dW = W - a to the other party (k|W| bits, 1
    round). ``w`` is the owner's weight (None elsewhere); with ``scale`` (the owner's
    per-column integers m, shape (d_out,)) the weight is W = w diag(m), kept factored by the
    owner (see module doc). Cost: ``cost_prepare_weight``."""
    shape = tuple(int(s) for s in shape)
    if owner not in (1, 2):
        raise ValueError(f"the weight owner must be P1 or P2, got {owner}")
    if not isinstance(r, Ring):
        raise DomainMismatch(f"private weights live in rings Z2^k, got {r!r}")
    if len(shape) != 2:
        raise ShapeMismatch(f"a weight is a matrix (d_in, d_out), got shape {shape}")
    bits = None
    if rt.rank == owner:
        w = np.asarray(w)
        if w.shape != shape:
            raise ShapeMismatch(f"weight of shape {w.shape}, declared {shape}")
        if w.dtype.kind in "iu" and w.dtype != U64 and w.size:
            bits = signed_width(int(w.min()), int(w.max()))
        if bits is None or w.dtype.kind != "i":
            w = r.reduce(w)
        if scale is not None:
            scale = np.asarray(scale)
            if scale.shape != shape[1:] or scale.dtype.kind not in "iu":
                raise ShapeMismatch(f"scale must be integers of shape ({shape[1]},)")
            scale = r.reduce(scale)
    serial = rt.stash.get("weights_prepared", 0)  # the same on every party: one order
    rt.stash["weights_prepared"] = serial + 1
    wid = name if name is not None else f"w{serial}"
    a = rt.private_words(r, shape, owner)  # words: a mod 2^k is the mask
    word = np.uint32 if r.k <= 32 else U64  # the non-owners' words: half the memory
    if rt.is_dealer:  # the limb products read words mod 2^k
        held, scale = a.astype(word, copy=False), None
    elif rt.rank == owner:
        ones = np.ones(shape[1], dtype=U64)
        dw = np.empty(shape, dtype=word)
        _masked_weight(w, ones if scale is None else scale, a, U64(r.mask), dw)
        rt.send([(r, dw)])
        held = w
    else:
        (held,) = rt.recv([(r, shape)], word)
        scale = None
    fresh = rt.rank != owner or held.dtype == U64  # not the caller's narrow array
    return PrivateWeight(
        wid, r, shape, owner, rt.session, rt.rank, held, scale, bits, serial, own=fresh
    )


@njit(cache=True, nogil=True)
def _masked_weight(w, m, a, mask, out):  # pragma: no cover - numba
    """out = (w diag(m) - a) mod 2^k in one pass (w: any integer words, read two's
    complement; a: any unsigned words, read mod 2^k; out: words of at least k bits)."""
    for i in range(w.shape[0]):
        for j in range(w.shape[1]):
            out[i, j] = (np.uint64(np.int64(w[i, j])) * m[j] - np.uint64(a[i, j])) & mask


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


def _linear_key(pws: Sequence[PrivateWeight], use: int) -> str:
    """Names the stream of b: the weights' session serials and the use count (unique: b
    is never drawn twice)."""
    return "linear/" + "+".join(str(p.serial) for p in pws) + f"#{use}"


def _uses(rt) -> dict:
    """This session's count of ``linear_many`` calls per tuple of weight serials."""
    return rt.stash.setdefault("linear_uses", {})


def _next_use(rt, pws) -> int:
    """The use count of these weights, then + 1."""
    counts, ids = _uses(rt), tuple(p.serial for p in pws)
    counts[ids] = counts.get(ids, 0) + 1
    return counts[ids] - 1


def precompute_linear(rt, x_shape, pws: Sequence[PrivateWeight]) -> None:
    """Pq, before the query: b and b dW_j for the next ``linear_many`` of these weights
    that has nothing precomputed yet, on an activation of ``x_shape`` (kept in ``rt.stash``
    until that call takes them; input-independent, no communication). A no-op on P0 and
    the owner."""
    pws = list(pws)
    x_shape = tuple(int(s) for s in x_shape)
    if rt.is_dealer or rt.rank == pws[0].owner:
        return
    pre = rt.stash.setdefault("linear_pre", {})
    use = _uses(rt).get(tuple(p.serial for p in pws), 0)
    while _linear_key(pws, use) in pre:
        use += 1
    key = _linear_key(pws, use)
    b = rt.keyed_random(pws[0].ring, x_shape, rt.rank, key)
    pre[key] = (x_shape, b, [p.times(b) for p in pws])


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
    key = _linear_key(pws, _next_use(rt, pws))
    if rt.is_dealer:
        b = rt.keyed_random(R, x.shape, 3 - owner, key)
        a = pws[0].w if len(pws) == 1 else np.concatenate([p.w for p in pws], axis=1)
        rt.dealer_shared(R, cat, ring_matmul(b, a, R))
        return [Shared.phantom(R, s) for s in outs]
    c = rt.dealer_shared(R, cat).data
    c = [c] if len(pws) == 1 else np.split(c, splits, axis=-1)
    if rt.rank == owner:
        (d,) = rt.recv([(R, x.shape)])
        prods = [p.times(R.add(d, x.data)) for p in pws]  # (Xq - b + Xo) W
    else:
        pre = rt.stash.get("linear_pre", {}).pop(key, None)
        if pre is not None and pre[0] != x.shape:
            raise ShapeMismatch(f"precomputed for an activation of shape {pre[0]}, got {x.shape}")
        b = pre[1] if pre else rt.keyed_random(R, x.shape, rt.rank, key)
        rt.send([(R, R.sub(x.data, b))])  # first, so that the owner's product overlaps ours
        prods = pre[2] if pre else [p.times(b) for p in pws]
    return [Shared(R, R.add(pj, cj), rt.rank) for pj, cj in zip(prods, c, strict=True)]


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
