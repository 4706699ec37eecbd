"""LayerNorm over the last axis (length d) of a shared integer x, bit-exact with an integer
reference; gamma and beta are private to the model owner P2.

Public format ``LayerNormFormat``: x is an integer with |x| < 2^(in_bits - 1) shared over
Z_2^R (R = x's ring, e.g. 64); gamma_int and beta_int (P2's integers, per channel) are in
units of 2^-gamma_frac output LSBs, so the output is
    y = clamp(round(gamma_int xhat / 2^gf + beta_int / 2^gf)),  xhat = (x - mean) / std,
over Z_2^out_bits (int8 by default). Protocol:

1. One round (``moments``): open dx = x - A and dg = gamma - B (gamma freshly shared by P2
   with ``rt.input``, free); locally V' = d sum x^2 - (sum x)^2 = d^2 var and
   u = gamma (d x - sum x) = gamma d (x - mean) (P0 deals d sum A^2 - (sum A)^2 per row
   and B (d A - sum A) per element). Each party sends R (n + d) bits.
2. In parallel (2-3 rounds): r = rsqrt(V') by an exact requant of V' mod 2^var_bits
   (11-bit index, rows only) with K = 2^(c - gf): r ~ K / sqrt(V') (relative error
   <= 1/(4h) in bucket h, see below), revealed under dealer masks (r = pub_r - lam:
   arithmetic tables, both carry candidates opened masked, ``convert.requant_masked_steps``);
   and u' = floor(u / 2^a) (``trunc``, a >= 1 chosen to minimise the carry tables), whose
   parts are u' = pub + hu - 2 t us with pub, t public and hu, us dealt.
3. z = u' r = u' pub_r - lam (pub + hu - 2 t us) locally, from dealt lam hu and lam us (no
   Beaver opening: ``scaled_product``) = gamma_int xhat K; P2 adds beta_int 2^(c - gf) and
   P1 adds 2^(c - 1) to their shares.
4. exact requant of z mod 2^(c + out_index_bits) by 2^c, c = gf + r_bits +
   ceil(var_bits/2) - a, table clamp(h, out_lo, out_hi): |y| must stay below
   2^(out_index_bits - 1) (saturates to int8 up to there, wraps beyond). 2-3 rounds.

Rounds: 7 (default). For [128, 768] over Z_2^64 (defaults: a = 18, c = 21): online 2.24 MB
per party, offline 29.2 MB (``cost_layernorm``).

Variance range (the rsqrt window): V' < 2^var_bits is assumed; default var_bits = the
largest V' the input format allows (never wraps). With h = floor(V' / 2^(var_bits - 11)),
the relative error of r is <= 1/(4h): <= 0.2% for std >= std_top/4, <= 0.8% for
std >= std_top/8, where std_top = 2^(var_bits/2)/d (integer units of x). Measured
(d = 768, gamma ~ 16 LSB/unit, 3 outlier channels): within 1 LSB of the rounded float
LayerNorm for std in [std_top/8, std_top], 3-4 LSB at std_top/16, ~18 LSB at std_top/32.
Below the window (h = 0: constant rows) r saturates at K/sqrt(2^(c_v - 2)), a bounded
output (beta for constant rows). Above std_top (only when var_bits is set below the
default) V' wraps and the output is garbage: choose var_bits (public, ``var_bits_for``)
and the private scale of x so that the calibrated std stays in [std_top/8, std_top].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mpc.cost import Cost, msg
from mpc.ring import DomainMismatch, Ring, ring
from mpc.shares import ShapeMismatch, Shared
from protocols import activations as A
from protocols import convert as C
from protocols import onehot as O
from protocols import trunc as T
from protocols.steps import run

U64 = np.uint64


@dataclass(frozen=True)
class LayerNormFormat:
    in_bits: int = 12  # |x| < 2^(in_bits - 1)
    var_bits: int | None = None  # rsqrt window top: V' < 2^var_bits (None: never wraps)
    gamma_bits: int = 16  # |gamma_int|, |beta_int| < 2^(gamma_bits - 1)
    gamma_frac: int = 8  # gamma_int, beta_int in units of 2^-gamma_frac output LSBs
    r_bits: int = 10  # rsqrt integer at the window top ~ 2^r_bits
    out_index_bits: int = 10  # final requant index: |y| < 2^(out_index_bits - 1)
    out_lo: int = -128
    out_hi: int = 127
    out_bits: int = 8  # output ring


@dataclass(frozen=True)
class _Plan:
    d: int
    R: int
    Vt: int  # rsqrt window top (bits of V')
    cv: int  # rsqrt requant shift
    cv_digits: int | None
    K: float
    c: int  # final requant shift (after the truncation of u by a)
    hb: int
    a: int  # u is truncated by a >= 1 bits, alongside the rsqrt


def plan(d: int, R: int, fmt: LayerNormFormat) -> _Plan:
    """Derived shifts for rows of length d over Z_2^R (validates the format)."""
    if d < 1:
        raise ShapeMismatch("LayerNorm needs rows of length >= 1")
    b, hb = fmt.in_bits, fmt.out_index_bits
    if not 1 <= b <= 32 or not 2 <= hb <= 11 or fmt.out_lo > fmt.out_hi:
        raise ValueError("LayerNorm format: in_bits in 1..32, out_index_bits in 2..11")
    if not 1 <= fmt.out_bits <= 64 or not 1 <= fmt.gamma_bits <= 32:
        raise ValueError("LayerNorm format: out_bits in 1..64, gamma_bits in 1..32")
    vmax = (d * d) << (2 * b - 2)  # V' = d sum (x - mean)^2 <= d^2 2^(2b - 2)
    Vt = vmax.bit_length() if fmt.var_bits is None else int(fmt.var_bits)
    if not 2 <= Vt <= R:
        raise ValueError(f"variance window of {Vt} bits outside 2..{R} (the ring of x)")
    cv = Vt - min(11, Vt - 1)
    k_log = fmt.r_bits + (Vt + 1) // 2
    c = fmt.gamma_frac + k_log
    need = c + hb  # everything else is exact mod 2^R: z is only read mod 2^(c + hb)
    if need > R:
        raise DomainMismatch(f"LayerNorm of this format needs x over Z2^{need} or wider")
    a = min(range(1, c - fmt.gamma_frac + 1), key=lambda a: _carry_bits(a) + _carry_bits(c - a))
    return _Plan(d, R, Vt, cv, 1 if cv <= 12 else None, float(2**k_log), c - a, hb, a)


def _carry_bits(c: int) -> int:
    """Dealt bits per element of the carry of c low bits (0 for c = 0)."""
    if not c:
        return 0
    return 8 * C.cost_carry(8, c, C.carry_plan(c, A.carry_digits_for(c))).offline[1] // 8


def var_bits_for(d: int, std_max: float) -> int:
    """Smallest var_bits whose window top std_top = 2^(var_bits/2)/d covers ``std_max``
    (integer units of x); std down to std_max/8 then gets <= 1 LSB error (see module doc)."""
    return max(2, int(np.ceil(2 * np.log2(d * float(std_max)))))


def _out_table(fmt: LayerNormFormat, hb: int) -> np.ndarray:
    return C.requant_table(None, hb, lo=fmt.out_lo, hi=fmt.out_hi)


# -- one round: d^2 var per row and gamma * d (x - mean) ------------------------------------
def moments(rt, x: Shared, g: Shared) -> tuple[Shared, Shared]:
    """(V', u) with V' = d sum x^2 - (sum x)^2 per row ([..., 1]) and u = g (d x - sum x)
    for x [..., d] and g [d] over one ring: one opening of x - A and g - B (see module
    doc). Cost: ``cost_moments``."""
    R, d = x.dom, x.shape[-1]
    R.check(g.dom)
    if g.shape != (d,):
        raise ShapeMismatch(f"per-channel operand of shape {g.shape} for rows of {d}")
    rows = x.shape[:-1] + (1,)
    mA, mB = rt.random_shared(R, x.shape), rt.random_shared(R, g.shape)
    if rt.is_dealer:
        sa = R.reduce(mA.sum(axis=-1, keepdims=True, dtype=U64))
        a2 = R.reduce((mA * mA).sum(axis=-1, keepdims=True, dtype=U64))
        rt.dealer_shared(R, rows, R.sub(R.mul(U64(d), a2), R.mul(sa, sa)))
        rt.dealer_shared(R, x.shape, R.mul(mB, R.sub(R.mul(U64(d), mA), sa)))
        return Shared.phantom(R, rows), Shared.phantom(R, x.shape)
    q = rt.dealer_shared(R, rows).data
    cu = rt.dealer_shared(R, x.shape).data
    mine = [R.sub(x.data, mA.data), R.sub(g.data, mB.data)]
    dx, dg = (R.add(m, o) for m, o in zip(mine, rt.exchange([(R, m) for m in mine]), strict=True))
    D = U64(d)
    sdx = dx.sum(axis=-1, keepdims=True, dtype=U64)
    dv = D * dx - sdx  # public part of v = d x - sum x
    av = D * mA.data - mA.data.sum(axis=-1, keepdims=True, dtype=U64)  # share of its mask
    V = U64(2) * (dx * av).sum(axis=-1, keepdims=True, dtype=U64) + q
    u = dg * av + mB.data * dv + cu
    if rt.rank == 1:
        V = V + D * (dx * dx).sum(axis=-1, keepdims=True, dtype=U64) - sdx * sdx
        u = u + dg * dv
    return Shared(R, V & R.mask, rt.rank), Shared(R, u & R.mask, rt.rank)


def reference_moments(x, g, k: int) -> tuple[np.ndarray, np.ndarray]:
    r = ring(k)
    x, g = r.reduce(np.asarray(x)), r.reduce(np.asarray(g))
    d = U64(x.shape[-1])
    s = x.sum(axis=-1, keepdims=True, dtype=U64)
    V = d * (x * x).sum(axis=-1, keepdims=True, dtype=U64) - s * s
    return V & r.mask, (g * (d * x - s)) & r.mask


def cost_moments(shape, k: int) -> Cost:
    R, d = ring(k), shape[-1]
    n = int(np.prod(shape, dtype=np.int64))
    on = msg(R, n) + msg(R, d)
    return Cost((on, on), (0, msg(R, n // d) + msg(R, n)), 1)


# -- LayerNorm --------------------------------------------------------------------------
def _check(rt, x, gamma, beta, fmt) -> _Plan:
    if not isinstance(x, Shared) or not isinstance(x.dom, Ring):
        raise DomainMismatch(f"LayerNorm input must be a share over a ring, got {x!r}")
    if x.ndim < 1:
        raise ShapeMismatch("LayerNorm needs at least one axis")
    p = plan(x.shape[-1], x.dom.k, fmt)
    if rt.rank == 2:  # the owner checks its parameters (without printing them)
        lim = 1 << (fmt.gamma_bits - 1)
        for name, v in (("gamma", gamma), ("beta", beta)):
            v = np.asarray(v)
            if v.shape != (p.d,) or v.dtype.kind not in "iu":
                raise ShapeMismatch(f"{name} must be an integer array of shape ({p.d},)")
            if v.size and (int(v.min()) < -lim or int(v.max()) >= lim):
                raise ValueError(f"{name} outside the {fmt.gamma_bits}-bit format")
    return p


def layernorm(
    rt, x: Shared, gamma=None, beta=None, fmt=LayerNormFormat(), out_ring: int | None = None
) -> Shared:
    """LayerNorm of x over the last axis (see module doc); ``gamma``/``beta`` are P2's
    integer arrays of shape (d,) (None on the other parties). Output over Z_2^out_ring
    (default out_bits). Cost: ``cost_layernorm``."""
    p = _check(rt, x, gamma, beta, fmt)
    R = x.dom
    g = rt.input(2, R, (p.d,), gamma if rt.rank == 2 else None)
    V, u = moments(rt, x, g)
    Ru = ring(p.R - p.a)
    r, ut = run(
        rt,
        A.rsqrt_steps(rt, V.reduce(p.Vt), p.cv, p.K, Ru.k, carry_digits=p.cv_digits),
        T.trunc_parts_steps(rt, u, p.a, carry_digits=A.carry_digits_for(p.a)),
    )
    z = scaled_product(rt, ut, r, x.shape) + (1 << (p.c - 1))
    if rt.rank == 2:
        off = Ru.reduce(np.asarray(beta, dtype=np.int64)) << U64(p.c - fmt.gamma_frac)
        z = Shared(Ru, Ru.add(z.data, off), 2)
    tab = [(_out_table(fmt, p.hb), out_ring or fmt.out_bits)]
    k = A.carry_digits_for(p.c)
    return O.requant(rt, z.reduce(p.c + p.hb), p.c, tab, carry_digits=k)[0]


def scaled_product(rt, u: T.TruncParts, r: C.MaskedOut, shape) -> Shared:
    """Shares of u r over u's ring for u = pub + hu - 2 t us (``trunc``'s parts, flat
    ``shape``) and r = pub_r[t_r] - lam[t_r] (``rsqrt``'s masked output, one per row of
    shape[-1] elements), with no opening: u r = u pub_r - lam (pub + hu - 2 t us), where
    P0 deals lam_s hu and lam_s us for both slots s (4n elements; lam itself is free)."""
    R, n = u.ring, u.hu.size
    R.check(r.dom)
    if u.mr is not None or n != int(np.prod(shape, dtype=np.int64)):
        raise ValueError("scaled_product takes a narrow truncation of the given shape")
    rows = np.arange(n) // shape[-1]
    if rt.is_dealer:
        lam = r.lam[rows]  # (n, 2)
        prods = np.stack([lam * u.hu[:, None], lam * u.u[:, None]])  # (2, n, 2)
        rt.dealer_shared(R, (2, n, 2), R.reduce(prods))
        return Shared.phantom(R, shape)
    slot = r.t.astype(np.intp)[rows]
    lh, lu = (v[np.arange(n), slot] for v in rt.dealer_shared(R, (2, n, 2)).data)
    lam, pr = r.select(r.lam)[rows], r.select(r.pub)[rows]
    z = u.shared(rt, (n,)).data * pr - u.pub * lam - lh + U64(2) * u.t * lu
    return Shared(R, R.reduce(z).reshape(shape), rt.rank)


def reference_layernorm(
    x, gamma, beta, k: int, fmt=LayerNormFormat(), out_ring: int | None = None
) -> np.ndarray:
    """The same integer pipeline in plaintext (x canonical over Z_2^k)."""
    x = np.asarray(x)
    p = plan(x.shape[-1], k, fmt)
    R, Ru = ring(k), ring(k - p.a)
    V, u = reference_moments(x, R.reduce(np.asarray(gamma, dtype=np.int64)), k)
    r = A.reference_rsqrt(ring(p.Vt).reduce(V), p.Vt, p.cv, p.K, Ru.k)
    u = T.reference_trunc(u, k, p.a)
    off = Ru.reduce(np.asarray(beta, dtype=np.int64)) << U64(p.c - fmt.gamma_frac)
    z = Ru.add(Ru.add(Ru.mul(u, r), off), U64(1 << (p.c - 1)))
    tab = [(_out_table(fmt, p.hb), out_ring or fmt.out_bits)]
    return O.reference_requant(ring(p.c + p.hb).reduce(z), p.c + p.hb, p.c, tab)[0]


def cost_layernorm(shape, k: int, fmt=LayerNormFormat(), out_ring: int | None = None) -> Cost:
    shape = tuple(shape)
    p = plan(shape[-1], k, fmt)
    rows = shape[:-1] + (1,)
    n = int(np.prod(shape, dtype=np.int64))
    side = A.cost_rsqrt(rows, p.Vt, p.cv, p.K, k - p.a, carry_digits=p.cv_digits)
    side = side | T.cost_trunc(shape, k, p.a, carry_digits=A.carry_digits_for(p.a))
    return (
        cost_moments(shape, k)
        + side
        + Cost((0, 0), (0, msg(ring(k - p.a), 4 * n)), 0)
        + O.cost_requant(
            shape,
            p.c + p.hb,
            p.c,
            [(_out_table(fmt, p.hb), out_ring or fmt.out_bits)],
            carry_digits=A.carry_digits_for(p.c),
        )
    )


def layernorm_float(x, gamma, beta, fmt=LayerNormFormat()) -> np.ndarray:
    """Float LayerNorm in output LSBs (unclamped) of signed integers x, for error reports."""
    x = np.asarray(x, dtype=np.float64)
    xh = (x - x.mean(axis=-1, keepdims=True)) / x.std(axis=-1, keepdims=True)
    s = 2.0**-fmt.gamma_frac
    return xh * np.asarray(gamma) * s + np.asarray(beta) * s
