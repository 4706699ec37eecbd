"""Exact matrix products over Z_2^k (1 <= k <= 64) on float64 BLAS.

``matmul(a, b, r)`` has the semantics of ``np.matmul(a, b) mod 2^k`` (2-D, 1-D and batched
operands with broadcast leading dimensions) but runs on float64 GEMM, one to two orders of
magnitude faster than numpy's (non-BLAS) integer matmul. ``matmul_reference`` is the slow
Python-int version used by the tests.

Exactness bound
---------------
Every integer ``x`` with ``|x| <= 2^53`` is a float64. If the entries of two integer
matrices satisfy ``|a| <= Da`` and ``|b| <= Db`` and the inner dimension is ``n`` with

    n * Da * Db <= 2^53,

then every product and every partial sum a GEMM can form (in any order, with or without
FMA) is an integer of magnitude ``<= 2^53``, so the float64 result is exact. (This assumes a
BLAS that computes sums of products, as OpenBLAS/MKL/BLIS do; Strassen-like or reduced-
precision "fast modes" would break it.) Signed limbs of ``w`` bits have ``|d| <= 2^(w-1)``,
one bit less than unsigned ones, so a pair of limbs of widths ``wa``, ``wb`` is exact iff

    wa + wb <= S(n) = 55 - ceil(log2 n)        (n = 768: S = 45; n = 64: S = 49)

Limbs
-----
Write ``c_t(x)`` for the centred residue of ``x`` mod ``2^t`` (``-2^(t-1) <= c_t < 2^(t-1)``;
``c_0 = 0``). The limb of ``x`` for the bit range ``[lo, hi)`` is

    x[lo:hi] = (c_hi(x) - c_lo(x)) / 2^lo,      |x[lo:hi]| <= 2^(hi-lo-1),

and for *any* cut points ``0 = t_0 < ... < t_L = k`` the limbs telescope exactly:
``sum_i 2^(t_i) x[t_i:t_(i+1)] = c_k(x) = x (mod 2^k)``. A limb is a pure function of its
range, so different parts of a plan may cut an operand at different points.

Plans: staircase covers of the triangle
---------------------------------------
``A @ B mod 2^k`` is the sum over bit pairs ``(x, y)`` with ``x + y < k`` of A-bit x times
B-bit y. A plan covers that triangle with rectangles ``[xa, xa+a) x [yb, yb+b)`` and computes
one float64 GEMM ``A[xa:xa+a] @ B[yb:yb+b]`` per rectangle, shifted by ``2^(xa+yb)``. Because
only ``mod 2^(k-xa-yb)`` of that product matters, the limbs are clipped to
``min(a, k-xa-yb)`` and ``min(b, k-xa-yb)`` bits, and a rectangle is exact iff its clipped
widths sum to at most ``S``. Rectangles are arranged as a staircase: one operand (the
"column" operand, normally the larger one, so it is split into few limbs) is cut into column
ranges, and within each column the other operand is cut greedily from the bottom, each piece
as tall as the bound allows. A small dynamic programme over the column cuts minimises a cost
model (GEMM multiply-adds per rectangle, limb extraction, combination, per-call overhead).
On a grid of (k, S) checked offline the staircase used as few rectangles as the best
guillotine cover in all but one corner case. Examples:

* ``k <= 22`` and n = 768: a single GEMM of centred values.
* ``(128 x 768) @ (768 x 768)`` mod 2^32 (S = 45): two GEMMs, ``A[0:32] @ B[0:10]`` and
  ``A[0:22] @ B[10:32]`` (uniform signed limbs would need three, unsigned ones four).
* mod 2^64 with n = 768: six GEMMs; with n = 64: five.

Rectangles sharing a column limb are fused into one GEMM, ``[A_1; A_2; ...] @ B_col`` (rows
stacked) or ``A_col @ [B_1 | B_2 | ...]`` (columns concatenated). The "other" operand's limbs
are extracted once; the column limb, its GEMM and the combination run group by group, so the
big temporaries hold one limb of the large operand and one group of products at a time. Each
float64 product is converted to int64 exactly, shifted and added with uint64 wrap-around,
then masked.

Inner-dimension chunks: ``S`` grows by one bit each time the inner dimension halves, so the
planner also considers splitting ``n`` into ``c`` chunks (handled as an extra batch axis;
the chunk products are summed mod 2^k). It must do so when ``n`` is so large that even 1-bit
limbs would overflow (``S < 2``, i.e. ``n > 2^53``); otherwise it does so only when the cost
model says the saved rectangles pay for the extra combination work (e.g. mod 2^24 with
n = 768: eight chunks of 96 make it a single GEMM instead of two).

Tiny products use numpy's uint64 matmul (exact mod 2^64) when the model says it is cheaper.
Inputs need not be canonical: limbs are extracted mod 2^k, so the result is always
``(a mod 2^k) @ (b mod 2^k) mod 2^k``. Kernels release the GIL (parties run as threads);
limb/product temporaries are reused per thread (``release_workspace()`` frees them).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numba import njit

U64 = np.uint64
F64_EXACT_BITS = 53  # |x| <= 2^53 is exact in float64

# Cost model in units of one float64 multiply-add inside BLAS (about 25 ps on the reference
# 2-core machine). Only relative values matter.
_COST_SPLIT = 12.0  # per operand element per limb (numba limb kernel, reused buffers)
_COST_COMBINE = 25.0  # per output element per rectangle per chunk (float->int, shift, add)
_COST_CALL = 4.0e5  # per np.matmul call (Python, dispatch, BLAS thread wake-up)
_COST_BLAS_CALL = 4.0e4  # per 2-D BLAS call inside a batched np.matmul
_COST_FIXED = 1.2e6  # per limb product (allocation, kernel calls, planning lookup)
_COST_INT_MAC = 40.0  # numpy uint64 matmul, per multiply-add (no BLAS)
_MIN_CHUNK = 32  # do not consider chunks shorter than this unless forced
_MAX_EXTRA_HALVINGS = 10  # chunking gains one bit per halving; stop looking after this many


def _k_of(r) -> int:
    k = int(r if isinstance(r, int | np.integer) else r.k)
    if not 1 <= k <= 64:
        raise ValueError(f"ring width must be in 1..64, got {k}")
    return k


def bit_budget(n: int) -> int:
    """S(n): largest total width wa + wb of two signed limbs whose n-term dot product is exact.

    Equivalently the largest S with ``n * 2^(S-2) <= 2^53``.
    """
    return F64_EXACT_BITS + 2 - (max(int(n), 1) - 1).bit_length()


def _gemm_efficiency(nc: int) -> float:
    """Relative cost of a multiply-add when the inner dimension is only nc long."""
    return 1.0 + 40.0 / nc


# ----------------------------------------------------------------------------- planning

Range = tuple[int, int]


@dataclass(frozen=True)
class Plan:
    """How ``matmul`` computes one product mod 2^k (see module docstring)."""

    k: int
    direct: bool  # numpy uint64 matmul; the remaining fields are unused
    chunks: int  # inner dimension split into this many pieces...
    chunk: int  # ...of this length (zero-padded at the end)
    col_is_b: bool  # column operand: B (rows of A limbs stacked) or A (B limbs concatenated)
    groups: tuple[tuple[Range, tuple[Range, ...]], ...]  # (column range, other ranges)
    cost: float

    @property
    def rects(self) -> tuple[tuple[Range, Range], ...]:
        """(A range, B range) of every limb product, in product-buffer order."""
        out = []
        for col, others in self.groups:
            for o in others:
                out.append((o, col) if self.col_is_b else (col, o))
        return tuple(out)

    @property
    def shifts(self) -> tuple[int, ...]:
        return tuple(ra[0] + rb[0] for ra, rb in self.rects)

    @property
    def a_slots(self) -> tuple[Range, ...]:
        return tuple(ra for ra, _ in self.rects) if self.col_is_b else self._cols()

    @property
    def b_slots(self) -> tuple[Range, ...]:
        return self._cols() if self.col_is_b else tuple(rb for _, rb in self.rects)

    def _cols(self) -> tuple[Range, ...]:
        return tuple(col for col, _ in self.groups)

    @property
    def gemm_calls(self) -> int:
        return 1 if self.direct else len(self.groups)

    def describe(self) -> str:
        if self.direct:
            return f"Z2^{self.k}: numpy uint64 matmul"
        rects = ", ".join(f"A[{a0}:{a1}]@B[{b0}:{b1}]" for (a0, a1), (b0, b1) in self.rects)
        return (
            f"Z2^{self.k}: {len(self.rects)} limb product(s) in {self.gemm_calls} GEMM call(s), "
            f"{self.chunks} chunk(s) of {self.chunk}: {rects}"
        )


def _greedy_column(width: int, top: int, kk: int, s: int):
    """Pieces (clipped column width, y, height) covering the other operand's bits [0, kk) of
    a column at x (``top`` = k - x: only mod 2^(k - x - y) of a piece matters), or None."""
    pieces = []
    y = 0
    while y < kk:
        a = min(width, top - y)
        h = min(s - a, kk - y)
        if h < 1:
            return None
        pieces.append((a, y, h))
        y += h
    return pieces


@lru_cache(maxsize=8192)
def _staircase(k: int, s: int, group_cost: float, xmax: int | None = None, ymax: int | None = None):
    """Min-cost staircase cover of {x + y < k, x < xmax, y < ymax} (column bits x, other
    bits y; a narrow operand's bits above its width are zero) with rectangles of clipped
    semiperimeter <= s.

    Costs are normalised so that one rectangle costs 1 and one fused group (one column limb,
    one GEMM call) costs ``group_cost``. Returns (cost, groups) with groups as
    ((column range), ((other range), ...)), or None if infeasible.
    """
    xmax, ymax = min(xmax or k, k), min(ymax or k, k)
    inf = math.inf
    best = [inf] * (xmax + 1)
    choice: list = [None] * (xmax + 1)
    best[xmax] = 0.0
    for x in range(xmax - 1, -1, -1):
        kk = min(k - x, ymax)
        for width in range(1, xmax - x + 1):
            if best[x + width] == inf:
                continue
            pieces = _greedy_column(width, k - x, kk, s)
            if pieces is None:
                continue
            ngroups = len({a for a, _, _ in pieces})
            cost = len(pieces) + group_cost * ngroups + best[x + width]
            if cost < best[x] - 1e-9:
                best[x], choice[x] = cost, (width, pieces)
    if best[0] == inf:
        return None
    groups = []
    x = 0
    while x < xmax:
        width, pieces = choice[x]
        cur: dict[int, list] = {}
        for a, y, h in pieces:
            cur.setdefault(a, []).append((y, y + h))
        for a, others in cur.items():
            groups.append(((x, x + a), tuple(others)))
        x += width
    return best[0], tuple(groups)


def _bucket(v: float) -> float:
    """Round a positive ratio to a quarter power of two (keeps the plan cache small)."""
    return 2.0 ** (round(4 * math.log2(max(v, 1e-12))) / 4)


@lru_cache(maxsize=4096)
def plan(
    k: int,
    n: int,
    size_a: int = 0,
    size_b: int = 0,
    size_c: int = 0,
    batch: int = 1,
    b_bits: int | None = None,
) -> Plan:
    """Cheapest exact plan for a product mod 2^k with inner dimension ``n``.

    ``size_a``/``size_b``/``size_c`` are the element counts of the operands and result (with
    batch dimensions), ``batch`` the number of broadcast 2-D products; they only steer the cost
    model. Without sizes a square ``n x n`` product is assumed. ``b_bits``: B's centred
    residues are signed ``b_bits``-bit integers (a narrow weight), so B's limbs stop there.
    """
    if not 1 <= k <= 64:
        raise ValueError(f"ring width must be in 1..64, got {k}")
    nb = k if b_bits is None else min(int(b_bits), k)
    if nb < 1:
        raise ValueError(f"b_bits must be >= 1, got {b_bits}")
    if n < 1:
        raise ValueError("inner dimension must be >= 1")
    if not (size_a and size_b and size_c):
        size_a = size_b = size_c = n * n
    macs = float(size_c) * n  # batch * M * n * m
    best = None
    chunks = 1
    extra = 0  # halvings tried since the first feasible chunk length
    while True:
        nc = -(-n // chunks)
        pad = chunks * nc / n
        s = bit_budget(nc)
        if s >= 2:
            for col_is_b in (True, False):
                size_col, size_other = (size_b, size_a) if col_is_b else (size_a, size_b)
                rect = (
                    macs * pad * _gemm_efficiency(nc)
                    + _COST_SPLIT * size_other * pad
                    + _COST_COMBINE * size_c * chunks
                )
                group = _COST_SPLIT * size_col * pad + _COST_CALL + _COST_BLAS_CALL * chunks * batch
                caps = (nb, None) if col_is_b else (None, nb)
                found = _staircase(k, s, _bucket(group / rect), *caps)
                if found is None:
                    continue
                _, groups = found
                nrect = sum(len(o) for _, o in groups)
                cost = nrect * rect + len(groups) * group + _COST_FIXED
                if best is None or cost < best.cost:
                    best = Plan(k, False, chunks, nc, col_is_b, groups, cost)
        if best is not None:
            extra += 1
        if nc <= 1 or (best is not None and (nc < 2 * _MIN_CHUNK or extra > _MAX_EXTRA_HALVINGS)):
            break
        chunks *= 2
    if _COST_INT_MAC * macs < best.cost:
        return Plan(k, True, 1, n, True, (((0, k), ((0, k),)),), _COST_INT_MAC * macs)
    return best


# ----------------------------------------------------------------------------- kernels


@njit(cache=True, nogil=True)
def _limb_kernel(x, out, chunk_rows, slot_major, lo, mlo, hlo, mhi, hhi):  # pragma: no cover
    """Limbs of x for bit ranges [lo_s, hi_s), inner dimension chunked, as float64.

    x: (Bt, R, C) integer words (uint64, or narrower / signed ones read as their value
    mod 2^64: an owner's int8 weight, uint32 masks), C-contiguous. out: C-contiguous
    float64, (Bt, nq, ns, Rc, Cc) if
    slot_major else (Bt, nq, Rc, ns, Cc). The inner dimension is R (chunk_rows, operand B)
    or C (operand A), cut into nq chunks of length Rc or Cc and zero-padded. Limb s is
    ((c_hi - c_lo) >> lo[s]) with c_t = ((x + h_t) & m_t) - h_t in wrapping uint64
    (h_t = 2^(t-1), m_t = 2^t - 1; t = 0 gives 0, t = 64 gives x), read as int64 and
    shifted arithmetically.
    """
    nb, nq = out.shape[0], out.shape[1]
    ns = lo.size
    if slot_major:
        nrc, ncc = out.shape[3], out.shape[4]
    else:
        nrc, ncc = out.shape[2], out.shape[4]
    nr_x = x.shape[1]
    nc_x = x.shape[2]
    for b in range(nb):
        for q in range(nq):
            for rr in range(nrc):
                r = q * nrc + rr if chunk_rows else rr
                c0 = 0 if chunk_rows else q * ncc
                valid = 0 if r >= nr_x else min(ncc, nc_x - c0)
                for s in range(ns):
                    row = out[b, q, s, rr] if slot_major else out[b, q, rr, s]
                    if valid > 0:
                        xrow = x[b, r, c0 : c0 + valid]
                        sh = lo[s]
                        ml, hl, mh, hh = mlo[s], hlo[s], mhi[s], hhi[s]
                        for cc in range(valid):
                            u = np.uint64(np.int64(xrow[cc]))  # sign-extends int words
                            d = (((u + hh) & mh) - hh) - (((u + hl) & ml) - hl)
                            row[cc] = np.float64(np.int64(d) >> sh)
                    for cc in range(max(valid, 0), ncc):
                        row[cc] = 0.0


@njit(cache=True, nogil=True)
def _combine_kernel(prods, shifts, out):  # pragma: no cover - numba
    """out (Bt, M, m) uint64 += sum_{q,p} int(prods[:, q, p]) << shifts[p]  (wrapping).

    prods: (Bt, nq, P, M, m) float64 holding exact integers (any strides).
    """
    nb, nq, npairs, nm, nn = prods.shape
    for b in range(nb):
        for q in range(nq):
            for p in range(npairs):
                s = shifts[p]
                for i in range(nm):
                    for j in range(nn):
                        out[b, i, j] += np.uint64(np.int64(prods[b, q, p, i, j])) << s


@njit(cache=True, nogil=True)
def _mask_kernel(out, mask):  # pragma: no cover - numba
    flat = out.reshape(-1)
    for i in range(flat.size):
        flat[i] &= mask


# ----------------------------------------------------------------------------- workspace
# Fresh multi-megabyte temporaries cost more in page faults than the limb kernels themselves
# (about 1 ms per 5 MB), so limb and product buffers are reused per thread. Buffers above
# the cap are allocated per call and not kept.

WORKSPACE_CAP_BYTES = 64 << 20  # per buffer role ("other", "col", "prod") and thread
_tls = threading.local()


def _buffer(role: str, shape: tuple[int, ...]) -> np.ndarray:
    size = math.prod(shape)
    if size * 8 > WORKSPACE_CAP_BYTES:
        return np.empty(shape, dtype=np.float64)
    ws = getattr(_tls, "ws", None)
    if ws is None:
        ws = _tls.ws = {}
    buf = ws.get(role)
    if buf is None or buf.size < size:
        buf = ws[role] = np.empty(size, dtype=np.float64)
    return buf[:size].reshape(shape)


def release_workspace() -> None:
    """Drop this thread's cached temporaries."""
    _tls.ws = {}


def _centre_consts(t: int) -> tuple[int, int]:
    """(m_t, h_t) for the centred residue mod 2^t in wrapping uint64 arithmetic."""
    return (1 << t) - 1, (1 << (t - 1)) if t else 0


def _limbs(
    x: np.ndarray, slots, chunks: int, chunk: int, inner_rows: bool, slot_major: bool, role: str
) -> np.ndarray:
    """Limbs of x (..., R, C) for the given bit ranges, inner dimension chunked.

    Returns the float64 buffer shaped (..., chunks, S, R', C') if slot_major else
    (..., chunks, R', S, C'), where the inner axis (R for B, C for A) is cut into chunks.
    """
    lead, (nr, nc) = x.shape[:-2], x.shape[-2:]
    nb = math.prod(lead)
    rc, cc = (chunk, nc) if inner_rows else (nr, chunk)
    ns = len(slots)
    if slot_major:
        buf = _buffer(role, (nb, chunks, ns, rc, cc))
    else:
        buf = _buffer(role, (nb, chunks, rc, ns, cc))
    x3 = np.ascontiguousarray(x if x.dtype.kind in "iu" else _to_u64(x)).reshape(nb, nr, nc)
    lo = np.array([r[0] for r in slots], dtype=np.int64)
    clo = [_centre_consts(r[0]) for r in slots]
    chi = [_centre_consts(r[1]) for r in slots]
    _limb_kernel(
        x3,
        buf,
        inner_rows,
        slot_major,
        lo,
        np.array([m for m, _ in clo], dtype=U64),
        np.array([h for _, h in clo], dtype=U64),
        np.array([m for m, _ in chi], dtype=U64),
        np.array([h for _, h in chi], dtype=U64),
    )
    return buf.reshape(*lead, *buf.shape[1:])


def _limb_product(a: np.ndarray, b: np.ndarray, p: Plan, batch, out3: np.ndarray) -> None:
    """out3 (Bt, M, m) += sum over rectangles of 2^shift * (A limb @ B limb), wrapping.

    The limbs of the "other" operand are extracted once for all rectangles (in product
    order); the column operand's limb, the GEMM and the combination run group by group, so
    the large temporaries hold one column limb and one group of products at a time.
    """
    m_rows, m_cols = a.shape[-2], b.shape[-1]
    nbt = math.prod(batch)
    c, nc = p.chunks, p.chunk
    shifts = np.array(p.shifts, dtype=U64)
    start = 0
    if p.col_is_b:
        # [A_1; ..; A_r] @ B_g: A limbs stacked along rows, one GEMM per B limb
        al = _limbs(a, p.a_slots, c, nc, False, True, "other")  # (..., c, P, M, nc)
        al = al.reshape(*al.shape[:-3], -1, nc)  # (..., c, P*M, nc)
        for col, others in p.groups:
            cnt = len(others)
            bl = _limbs(b, (col,), c, nc, True, True, "col")[..., 0, :, :]  # (..., c, nc, m)
            prods = _buffer("prod", (nbt, c, cnt * m_rows, m_cols))
            rows = slice(start * m_rows, (start + cnt) * m_rows)
            np.matmul(al[..., rows, :], bl, out=prods.reshape(*batch, c, cnt * m_rows, m_cols))
            view = prods.reshape(nbt, c, cnt, m_rows, m_cols)
            _combine_kernel(view, shifts[start : start + cnt], out3)
            start += cnt
    else:
        # A_g @ [B_1 | .. | B_r]: B limbs concatenated along columns, one GEMM per A limb
        bl = _limbs(b, p.b_slots, c, nc, True, False, "other")  # (..., c, nc, P, m)
        bl = bl.reshape(*bl.shape[:-2], -1)  # (..., c, nc, P*m)
        for col, others in p.groups:
            cnt = len(others)
            al = _limbs(a, (col,), c, nc, False, True, "col")[..., 0, :, :]  # (..., c, M, nc)
            prods = _buffer("prod", (nbt, c, m_rows, cnt * m_cols))
            cols = slice(start * m_cols, (start + cnt) * m_cols)
            np.matmul(al, bl[..., cols], out=prods.reshape(*batch, c, m_rows, cnt * m_cols))
            view = prods.reshape(nbt, c, m_rows, cnt, m_cols).transpose(0, 1, 3, 2, 4)
            _combine_kernel(view, shifts[start : start + cnt], out3)
            start += cnt


def _to_u64(x: np.ndarray) -> np.ndarray:
    if x.dtype == U64:
        return x
    if x.dtype == object:
        return np.vectorize(lambda v: int(v) & (2**64 - 1), otypes=[U64])(x)
    if x.dtype.kind in "iub":
        return x.astype(np.int64, copy=False).astype(U64) if x.dtype.kind != "u" else x.astype(U64)
    raise TypeError(f"matmul: expected an integer array, got dtype {x.dtype}")


def staircase_plan(k: int, n: int, chunks: int = 1, col_is_b: bool = True) -> Plan:
    """A limb plan with a fixed chunk count and orientation (tests, benchmarks)."""
    nc = -(-n // chunks)
    found = _staircase(k, bit_budget(nc), 0.5)
    if found is None:
        raise ValueError(f"no exact plan for k={k} with inner chunks of {nc}")
    return Plan(k, False, chunks, nc, col_is_b, found[1], 0.0)


def matmul(a, b, r, *, using: Plan | None = None, b_bits: int | None = None) -> np.ndarray:
    """``np.matmul(a, b) mod 2^k`` for uint64 arrays of elements of Ring ``r`` (or width k).

    ``using`` forces a plan (for tests and benchmarks); it must be for the same k and an
    inner dimension of at most ``chunks * chunk``. ``b_bits``: the caller guarantees that
    b's centred residues mod 2^k lie in [-2^(b_bits-1), 2^(b_bits-1)) (not checked: a wider
    b gives a wrong product), e.g. an int8 weight: fewer limbs of b, often one GEMM.
    """
    k = _k_of(r)
    a = _to_u64(np.asarray(a))
    b = np.asarray(b)
    if b.dtype.kind not in "iu":
        b = _to_u64(b)  # integer words of any width are read as is (``_limb_kernel``)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul: input operand does not have enough dimensions")
    squeeze_a, squeeze_b = a.ndim == 1, b.ndim == 1
    if squeeze_a:
        a = a[None, :]
    if squeeze_b:
        b = b[:, None]
    n = a.shape[-1]
    if b.shape[-2] != n:
        raise ValueError(f"matmul: inner dimensions differ: {a.shape} @ {b.shape}")
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    m_rows, m_cols = a.shape[-2], b.shape[-1]
    out_shape = (*batch, m_rows, m_cols)
    size_c = math.prod(out_shape)
    mask = U64((1 << k) - 1)
    if size_c == 0 or n == 0:
        res = np.zeros(out_shape, dtype=U64)
    else:
        p = using or plan(k, n, a.size, b.size, size_c, math.prod(batch), b_bits)
        if p.k != k or (not p.direct and p.chunks * p.chunk < n):
            raise ValueError(f"plan {p.describe()} does not fit k={k}, n={n}")
        if p.direct:
            res = np.matmul(a, _to_u64(b))  # uint64 wraps mod 2^64: exact mod 2^k
            if k < 64:
                res &= mask
        else:
            out3 = np.zeros((math.prod(batch), m_rows, m_cols), dtype=U64)
            _limb_product(a, b, p, batch, out3)
            if k < 64:
                _mask_kernel(out3, mask)
            res = out3.reshape(out_shape)
    if squeeze_b:
        res = res[..., 0]
    if squeeze_a:
        res = res[..., 0] if squeeze_b else res[..., 0, :]
    return res[()] if res.ndim == 0 else res


def matmul_reference(a, b, r) -> np.ndarray:
    """Slow exact reference: Python-int (object dtype) ``np.matmul``, then mod 2^k."""
    k = _k_of(r)
    ao = np.asarray(a).astype(object)
    bo = np.asarray(b).astype(object)
    prod = np.matmul(ao, bo)
    mod = 1 << k
    if not isinstance(prod, np.ndarray):
        return U64(int(prod) % mod)
    flat = [int(v) % mod for v in prod.ravel()]
    return np.array(flat, dtype=U64).reshape(prod.shape)
