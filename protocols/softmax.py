"""Softmax over the last axis of shared integer scores, bit-exact with an integer reference.

Public format ``SoftmaxFormat``: scores are signed ``in_bits``-bit integers x in units
2^-in_frac, shared over Z_2^k with k >= in_bits + 1; the output is round(p * out_one)
(p in [0, 1], default out_one = 255: uint8 with 255 = 1.0) over Z_2^out_bits. With
fe = exp_frac, L the row length, lg = ceil(log2 L), b = in_bits:

1. row top m >= max x (``_row_top``): with ``max_shift`` ms > 0 (the default 3), by counting
   over the coarse scores floor(x / 2^ms) (``count_max``: thermometer bits by a one-hot LUT,
   row sums, a flag LUT per threshold; 3 rounds whatever L; the coarse scores come from the
   caller's score requant, or from one requant more, 2 rounds), m = 2^ms max + 2^ms - 1;
   with ms = 0 the exact max by a tree of max(a, b) = b + ReLU(a - b) (LUT ReLU, 1 round per
   level, ceil(log2 L) levels).
2. e_i = EXP[x_i - m]: one LUT on the non-positive difference, indexed mod 2^b (b bits
   suffice as -(2^b - 1) <= x_i - m <= 0), e_i = min(round(2^fe exp(.)), 2^fe - 1), one
   table over Z_2^W (W = c + hb + 1 below; it serves both the sum and the product, so no
   narrow copy is dealt). 1 round.
3. S = sum_i e_i (local; 2^fe - 1 <= S < 2^(fe + lg)). Exact requant of S (index h = top
   11 bits of S in Z_2^(fe + lg), one-digit carry: 2 rounds, rows only) into the tangent
   pair (alpha', beta) of K/S at the bucket midpoint, K = out_one 2^c
   (``activations.reciprocal_taylor_tables``): q = alpha' - beta S <= K/S always.
4. y_i = e_i (alpha' - beta S) by one trilinear Beaver round (``scale_rows``), so
   y_i ~ p_i out_one 2^c; the tangent error is <= (2^(lg - 12))^2 relative.
5. floor((y + 2^(c-1)) / 2^c) by an exact truncation (``trunc``; c = 2 fe + lg - 9: beta
   rounded up costs < 1/4 LSB). As q <= K/S, e_i <= S and the rounding errors stay
   < 1/4 LSB, y + 2^(c-1) lies in (0, (out_one + 1/2) 2^c], so the result is in
   [0, out_one] (hb = bitlen(out_one) bits) and y's ring Z_2^W, W = c + hb + 1, keeps a
   zero top bit: the truncation emits the value straight into the output ring (no table,
   no one-hot). Multi-digit carry (c > 12), 3 rounds.

Rounds (defaults): 11 with the coarse scores given (the BERT pipeline), 13 without. For
[12, 128, 128]: online 3.59 / 4.01 MB per party, offline 59.4 / 62.1 MB (``cost_softmax``;
count_max 16.8 MB of it).

Precision (defaults, L = 128, 4000 rows each; max |p - softmax| in units of 1/255 vs the
float softmax of the dequantized scores x 2^-3): scores N(0, 2^2) 0.72, N(0, 2) 0.69,
one peaked score + N(0, 1) 0.98, U(-16, 16) 0.69, one-hot 0, rows whose other 127 scores
are equal 1.58 (coherent rounding of e in S; 0.95 with exp_frac = 14, W = 34, which
doubles the table words P1/P2 materialize). L = 384..512: realistic rows <= 1.6,
adversarial <= 3.7. Against the unquantized scores the 1/8 input grid dominates (5-9).
Without the tangent step an 11-bit reciprocal index gives up to 8 LSB on peaked rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mpc.cost import Cost, msg
from mpc.ring import DomainMismatch, Ring, ring
from mpc.shares import ShapeMismatch, Shared, concatenate, stack
from protocols import activations as A
from protocols import lut as L
from protocols import onehot as O
from protocols import trunc as T

U64 = np.uint64


@dataclass(frozen=True)
class SoftmaxFormat:
    in_bits: int = 8  # scores: signed in_bits-bit integers ...
    in_frac: int = 3  # ... in units of 2^-in_frac (int8, [-16, 16) by default)
    exp_frac: int = 15  # e = round(2^exp_frac exp(x - m)), clamped to 2^exp_frac - 1
    out_one: int = 255  # the output integer for probability 1.0
    out_bits: int = 8  # default output ring; must hold out_one
    max_shift: int = 3  # row max of floor(x / 2^max_shift) (0: of x itself)


@dataclass(frozen=True)
class _Plan:
    lg: int  # ceil(log2 L)
    W: int  # ring of e, the reciprocal tables and y
    Ws: int  # ring of S for its requant
    cs: int  # shift of the S requant
    cs_digits: int | None
    c: int  # shift of the final requant
    hb: int  # index bits of the final requant
    K: float
    h_min: int  # lowest reachable reciprocal bucket


def plan(L_: int, fmt: SoftmaxFormat) -> _Plan:
    """Derived rings and shifts for rows of length L_ (validates the format)."""
    b, fe = fmt.in_bits, fmt.exp_frac
    if L_ < 1:
        raise ShapeMismatch("softmax needs rows of length >= 1")
    if not 1 <= b <= L.MULTI_INDEX_BITS - 1:
        raise ValueError(f"in_bits={b}: the max-tree table has 2^(in_bits+1) <= 2^12 entries")
    if not 1 <= fmt.out_one < 1 << 11 or not fmt.out_one.bit_length() <= fmt.out_bits <= 64:
        raise ValueError("out_one must be in 1..2047 and out_bits in bitlen(out_one)..64")
    if not 0 <= fmt.max_shift <= b - 1:
        raise ValueError(f"max_shift={fmt.max_shift} must be in 0..{b - 1}")
    lg = (L_ - 1).bit_length()
    hb = fmt.out_one.bit_length()
    if not 2 <= fe <= 24 or lg > 10:
        raise ValueError(f"exp_frac={fe} must be in 2..24 and rows at most 1024 long")
    Ws = fe + lg
    c = max(2 * fe + lg - 9, Ws + 1 - hb, 1)  # beta rounding < 1/4 LSB of y; W > Ws
    W = c + hb + 1  # y < 2^(c + hb): a zero top bit for the final truncation
    if W > 64:
        raise ValueError(f"exp_frac={fe} with rows of {L_} needs rings beyond 64 bits")
    hs = min(12, Ws - 1)
    cs = Ws - hs
    e_min = int(A.exp_table(b, fmt.in_frac, fe)[(-((1 << fmt.max_shift) - 1)) % (1 << b)])
    return _Plan(
        lg,
        W,
        Ws,
        cs,
        1 if cs <= 12 else None,
        c,
        hb,
        float(fmt.out_one << c),
        max(e_min >> cs, 1),
    )


def _relu_table(b: int) -> np.ndarray:
    return L.signed_table(lambda s: np.maximum(s, 0), b + 1)


def _levels(n: int) -> list[int]:
    out = []
    while n > 1:
        out.append(n // 2)
        n -= n // 2
    return out


# -- row max ----------------------------------------------------------------------------
def row_max(rt, x: Shared, b: int) -> Shared:
    """Max over the last axis (kept, length 1) of signed b-bit values shared over
    Z_2^(b+1): a tree of b + ReLU(a - b) with a LUT ReLU, 1 round per level."""
    r, tab = ring(b + 1), _relu_table(b)
    while x.shape[-1] > 1:
        n, h = x.shape[-1], x.shape[-1] // 2
        lo, hi = x[..., :h], x[..., h : 2 * h]
        m = hi + L.lut(rt, lo - hi, [(tab, r)])[0]
        x = concatenate([m, x[..., 2 * h :]], axis=-1) if n % 2 else m
    return x


def reference_row_max(x, b: int) -> np.ndarray:
    r, tab = ring(b + 1), _relu_table(b)
    x = r.reduce(np.asarray(x))
    while x.shape[-1] > 1:
        n, h = x.shape[-1], x.shape[-1] // 2
        lo, hi = x[..., :h], x[..., h : 2 * h]
        m = r.add(hi, L.reference_lut(r.sub(lo, hi), [(tab, r)], b + 1)[0])
        x = np.concatenate([m, x[..., 2 * h :]], axis=-1) if n % 2 else m
    return x


def cost_row_max(shape, b: int) -> Cost:
    out = Cost()
    for h in _levels(shape[-1]):
        out = out + L.cost_lut(tuple(shape[:-1]) + (h,), b + 1, [ring(b + 1)])
    return out


# -- e * (a - b s) with per-row a, b, s: one trilinear Beaver round -------------------------
def scale_rows(rt, e: Shared, a: Shared, b: Shared, s: Shared) -> Shared:
    """Shares of e * (a - b * s) for e [..., L] and a, b, s [..., 1] over one ring.

    Masks A, Ba, Bb, Bs from the seeds (free); P0 shares A Ba, A Bb, A Bs, A Bb Bs (4|e|
    elements) and Bb Bs (|a|). One round: open e - A, a - Ba, b - Bb, s - Bs; expand
    e a = (de + A)(da + Ba) and e b s = (de + A)(db + Bb)(ds + Bs) term by term (public
    products added by P1). Cost: ``cost_scale_rows``."""
    R = e.dom
    for v in (a, b, s):
        R.check(v.dom)
        if v.shape != e.shape[:-1] + (1,):
            raise ShapeMismatch(f"row operand of shape {v.shape} for e of shape {e.shape}")
    masks = [rt.random_shared(R, v.shape) for v in (e, a, b, s)]
    rows = a.shape
    if rt.is_dealer:
        mA, ma, mb, ms = masks
        ab = R.mul(mA, mb)
        stacked = np.stack([R.mul(mA, ma), ab, R.mul(mA, ms), R.mul(ab, ms)])
        rt.dealer_shared(R, (4,) + e.shape, stacked)
        rt.dealer_shared(R, rows, R.mul(mb, ms))
        return Shared.phantom(R, e.shape)
    cA = rt.dealer_shared(R, (4,) + e.shape).data
    cbs = rt.dealer_shared(R, rows).data
    mine = [R.sub(v.data, m.data) for v, m in zip((e, a, b, s), masks, strict=True)]
    de, da, db, ds = (
        R.add(m, o) for m, o in zip(mine, rt.exchange([(R, m) for m in mine]), strict=True)
    )
    mA, ma, mb, ms = (m.data for m in masks)
    dbs = db * ds
    pos = de * ma + mA * da + cA[0]
    neg = de * db * ms + de * ds * mb + dbs * mA + de * cbs + db * cA[2] + ds * cA[1] + cA[3]
    out = pos - neg
    if rt.rank == 1:
        out = out + de * da - de * dbs
    return Shared(R, out & R.mask, rt.rank)


def reference_scale_rows(e, a, b, s, k: int) -> np.ndarray:
    r = ring(k)
    e, a, b, s = (r.reduce(np.asarray(v)) for v in (e, a, b, s))
    return (e * a - e * b * s) & r.mask


def cost_scale_rows(shape, k: int) -> Cost:
    R, rows = ring(k), tuple(shape[:-1]) + (1,)
    n, nr = int(np.prod(shape, dtype=np.int64)), int(np.prod(rows, dtype=np.int64))
    on = msg(R, n) + 3 * msg(R, nr)
    return Cost((on, on), (0, msg(R, 4 * n) + msg(R, nr)), 1)


# -- softmax ----------------------------------------------------------------------------
def _check(x, fmt: SoftmaxFormat, out_ring: int | None) -> _Plan:
    if out_ring is not None and not fmt.out_one.bit_length() <= out_ring <= 64:
        raise ValueError(f"output ring Z2^{out_ring} cannot hold out_one={fmt.out_one}")
    if not isinstance(x, Shared) or not isinstance(x.dom, Ring):
        raise DomainMismatch(f"softmax input must be a share over a ring, got {x!r}")
    if x.ndim < 1:
        raise ShapeMismatch("softmax needs at least one axis")
    if x.dom.k < fmt.in_bits + 1:
        raise DomainMismatch(
            f"softmax of {fmt.in_bits}-bit scores needs them over Z2^{fmt.in_bits + 1} or "
            f"wider (the max tree subtracts them), got {x.dom!r}"
        )
    return plan(x.shape[-1], fmt)


def coarse_scores(rt, x9: Shared, fmt: SoftmaxFormat) -> Shared:
    """floor(x / 2^max_shift) over Z_2^(in_bits - max_shift + 1) (exact one-hot requant of
    x over Z_2^(in_bits+1); ``protocols.onehot``)."""
    cb = fmt.in_bits - fmt.max_shift
    return O.requant(rt, x9, fmt.max_shift, [(_coarse_table(cb), cb + 1)])[0]


def _coarse_table(cb: int) -> np.ndarray:
    return L.signed_table(lambda s: s, cb + 1)


def _row_top(rt, x9: Shared, xc, fmt: SoftmaxFormat) -> Shared:
    """m >= every x of the row with m - max(x) < 2^max_shift: 2^ms max(xc) + 2^ms - 1."""
    b, ms = fmt.in_bits, fmt.max_shift
    if not ms:
        return row_max(rt, x9, b)
    cb = b - ms
    xc = coarse_scores(rt, x9, fmt) if xc is None else xc.reduce(cb + 1)
    return count_max(rt, xc, cb, b + 1, 1 << ms) + ((1 << ms) - 1)


# -- row max by counting (few distinct values) --------------------------------------------
def _thermo_tables(b: int) -> list:
    """[x >= v] for v = -2^(b-1) + 1 .. 2^(b-1) - 1, indexed by signed b-bit x."""
    return [L.signed_table(lambda s, v=v: (s >= v).astype(np.int64), b) for v in _levels_of(b)]


def _levels_of(b: int) -> range:
    return range(-(1 << (b - 1)) + 1, 1 << (b - 1))


def count_max(rt, x: Shared, b: int, k: int, scale: int = 1) -> Shared:
    """scale * max over the last axis (kept, length 1) of signed b-bit values x (shared over
    Z_2^(b+1) or wider), over Z_2^k, by counting: a one-hot LUT (``onehot.lut``) gives the
    2^b - 1 thermometer bits [x >= v] over Z_2^(lg+1) (2 rounds); their sums over the row
    count_v go through a LUT scale [count_v > 0] (1 round); max = lowest + sum_v.
    3 rounds whatever the row length. Cost: ``cost_count_max``."""
    lg = (x.shape[-1] - 1).bit_length()
    th = O.lut(rt, x, [(t, lg + 1) for t in _thermo_tables(b)], bits=b)
    cnt = stack([t.sum(axis=-1) for t in th], axis=x.ndim - 1)  # [..., 2^b - 1]
    tz, kf = _flag_ring(scale, k)
    tab = (scale >> tz) * (np.arange(1 << (lg + 1)) > 0)
    flags = L.lut(rt, cnt, [(tab, ring(kf))])[0]
    top = flags.sum(axis=-1, keepdims=True).reinterpret(k) * (1 << tz)
    return top + scale * -(1 << (b - 1))


def _flag_ring(scale: int, k: int) -> tuple[int, int]:
    """(tz, k - tz): the flags' table holds scale / 2^tz over Z_2^(k - tz), tz the power of
    two in scale; shares times 2^tz are then shares over Z_2^k (the dealt table is tz bits
    per entry narrower: 2^ms = 8 saves a third of it at k = 9)."""
    tz = min((scale & -scale).bit_length() - 1, k - 1) if scale else 0
    return tz, k - tz


def cost_count_max(shape, b: int, k: int, scale: int = 1) -> Cost:
    lg = (shape[-1] - 1).bit_length()
    rows = tuple(shape[:-1]) + (len(_levels_of(b)),)
    tabs = [(1, lg + 1)] * len(_levels_of(b))
    return O.cost_lut(shape, b, tabs) + L.cost_lut(rows, lg + 1, [ring(_flag_ring(scale, k)[1])])


def softmax(
    rt, x: Shared, fmt: SoftmaxFormat = SoftmaxFormat(), out_ring: int | None = None, xc=None
) -> Shared:
    """round(out_one * softmax(x)) over the last axis, over Z_2^out_ring (default
    out_bits; it must hold out_one; see module doc). ``xc``:
    shares of floor(x / 2^max_shift) if the caller has them (else one requant more).
    Cost: ``cost_softmax``."""
    p = _check(x, fmt, out_ring)
    b, fe = fmt.in_bits, fmt.exp_frac
    x9 = x.reduce(b + 1)
    m = _row_top(rt, x9, xc, fmt)
    e = A.exp_lut(rt, (x9 - m).reduce(b), b, fmt.in_frac, fe, p.W)
    S = e.sum(axis=-1, keepdims=True)
    alpha, beta = A.reciprocal(
        rt,
        S.reduce(p.Ws),
        p.cs,
        p.K,
        p.W,
        taylor=True,
        carry_digits=p.cs_digits,
        h_min=p.h_min,
    )
    y = scale_rows(rt, e, alpha, beta, S) + (1 << (p.c - 1))
    k = out_ring or fmt.out_bits
    return T.trunc(rt, y, p.c, out_bits=k, unsigned=True, carry_digits=A.carry_digits_for(p.c))


def reference_softmax(
    x, k: int, fmt: SoftmaxFormat = SoftmaxFormat(), out_ring: int | None = None
) -> np.ndarray:
    """The same integer pipeline in plaintext: x canonical in Z_2^k, output canonical
    uint64 over Z_2^out_ring (the coarse scores are floor(x / 2^max_shift))."""
    x = np.asarray(x)
    p = plan(x.shape[-1], fmt)
    b, fe, RW, ms = fmt.in_bits, fmt.exp_frac, ring(p.W), fmt.max_shift
    x9 = ring(b + 1).reduce(ring(k).reduce(x))
    if ms:
        cb = b - ms
        xc = ring(cb + 1).reduce(ring(b + 1).signed(x9) >> ms)
        mc = ring(cb + 1).signed(reference_row_max(xc, cb))
        m = ring(b + 1).reduce((mc << ms) + (1 << ms) - 1)
    else:
        m = reference_row_max(x9, b)
    e = A.reference_exp_lut(ring(b + 1).sub(x9, m), b, fmt.in_frac, fe, p.W)
    S = RW.reduce(e.sum(axis=-1, keepdims=True, dtype=U64))
    alpha, beta = A.reference_reciprocal(
        ring(p.Ws).reduce(S), p.Ws, p.cs, p.K, p.W, taylor=True, h_min=p.h_min
    )
    y = RW.add(reference_scale_rows(e, alpha, beta, S, p.W), U64(1 << (p.c - 1)))
    return T.reference_trunc(y, p.W, p.c, out_bits=out_ring or fmt.out_bits, unsigned=True)


def cost_softmax(
    shape, fmt: SoftmaxFormat = SoftmaxFormat(), out_ring: int | None = None, xc_given=False
) -> Cost:
    shape = tuple(shape)
    p = plan(shape[-1], fmt)
    rows = shape[:-1] + (1,)
    b, ms = fmt.in_bits, fmt.max_shift
    top = cost_count_max(shape, b - ms, b + 1, 1 << ms) if ms else cost_row_max(shape, b)
    if ms and not xc_given:
        cb = b - ms
        top = O.cost_requant(shape, b + 1, ms, [(_coarse_table(cb), cb + 1)]) + top
    return (
        top
        + A.cost_exp_lut(shape, b, fmt.exp_frac, p.W)
        + A.cost_reciprocal(
            rows, p.Ws, p.cs, p.K, p.W, taylor=True, carry_digits=p.cs_digits, h_min=p.h_min
        )
        + cost_scale_rows(shape, p.W)
        + T.cost_trunc(
            shape, p.W, p.c, out_bits=out_ring or fmt.out_bits, carry_digits=A.carry_digits_for(p.c)
        )
    )


def softmax_float(x, fmt: SoftmaxFormat = SoftmaxFormat()) -> np.ndarray:
    """Float softmax of the dequantized scores x 2^-in_frac (x signed integers), for
    error reports."""
    z = np.asarray(x, dtype=np.float64) * 2.0**-fmt.in_frac
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)
