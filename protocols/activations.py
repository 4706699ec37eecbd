"""Public tables for the BERT nonlinears (exp, reciprocal, rsqrt, GELU) and thin protocol
wrappers around a one-input LUT (``protocols.lut``) or an exact requant
(``protocols.convert``). Every table depends only on public fixed-point formats; private
scales are folded by the model owner into the integers that reach these tables.

Formats: ``Fixed(frac, bits)`` is a signed ``bits``-bit integer in units of 2^-frac.

* exp: ``exp_table(b, in_frac, out_frac)`` for NON-POSITIVE d in units 2^-in_frac with
  |d| < 2^b, indexed by d mod 2^b (injective on [-(2^b - 1), 0], so b bits suffice, not
  b + 1): entry min(round(2^out_frac exp(d 2^-in_frac)), 2^out_frac - 1). ``exp_lut`` is
  a one-hot LUT (``onehot.lut``): b + out_frac bits per party online, 2 rounds, 2^b +
  sum_j (m - j) bits offline per element.
* reciprocal of s >= 0 (Z_2^B, h = floor(s / 2^c), B - c index bits): plain table
  round(K / s_mid) at the bucket midpoint s_mid = (h + 1/2) 2^c, relative error
  <= 1/(2h + 1); or the tangent (Taylor) pair (alpha', beta) with
  q = alpha'[h] - beta[h] s = K (2 s_mid - s) / s_mid^2 up to rounding: relative error
  <= (1/(2h))^2 plus the rounding of beta times s - h 2^c < 2^c, and q <= K/s always
  (alpha rounded down, beta up), used by ``protocols.softmax``.
* rsqrt of v >= 0: round(2K / (sqrt(h 2^c) + sqrt((h+1) 2^c))), relative error
  <= 1/(4h) over the bucket [h 2^c, (h+1) 2^c); bucket 0 saturates at K / sqrt(2^(c-2)).
* GELU: ``gelu_requant`` = exact requant of an accumulator with the GELU table of
  ``convert.requant_table`` (rounded to nearest by adding 2^(c-1) first). Defaults: input
  Fixed(3, 9) ([-32, 32) in steps of 1/8: wraps beyond), output int8 Fixed(3, 8); the
  output is within 1/2 LSB of GELU(round(acc 2^-c) / 8). [128, 3072]: c <= 8: 2 rounds,
  0.88 MB online per party, 415 MB offline (2^10 x 8-bit U table per element); c = 12:
  3 rounds, 1.38 MB, 411 MB.

Wrappers cost what the underlying LUT / requant costs (``cost_*``); exact requants take
2 rounds with a one-digit carry (c <= 8, or up to 12 via ``carry_digits=1``) else 3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mpc.cost import Cost
from mpc.ring import DomainMismatch, Ring, ring
from mpc.shares import Shared
from protocols import convert as C
from protocols import lut as L
from protocols import onehot as O
from protocols.steps import run

U64 = np.uint64


@dataclass(frozen=True)
class Fixed:
    """Signed ``bits``-bit integers in units of 2^-frac (a public format)."""

    frac: int
    bits: int

    def __post_init__(self):
        if not 1 <= self.bits <= 64:
            raise ValueError(f"format width must be in 1..64, got {self.bits}")

    @property
    def lo(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def hi(self) -> int:
        return (1 << (self.bits - 1)) - 1


GELU_IN = Fixed(3, 9)  # GELU input: [-32, 32) in steps of 1/8 (9-bit table index)
GELU_OUT = Fixed(3, 8)  # GELU output: int8 in units of 1/8, clamped to [-16, 16)


def carry_digits_for(c: int, limit: int = L.MULTI_INDEX_BITS) -> int | None:
    """Carry plan for an exact requant of shift c over many elements: one digit (2 rounds)
    if c <= 8 (``convert``'s default), else the digit count k (3 rounds) with the fewest
    dealt bits (``convert.carry_bits``)."""
    if c <= 8:
        return None
    ks = [k for k in range(2, 7) if -(-c // k) <= limit and 2 * k <= limit and k <= c]
    if not ks:
        raise ValueError(f"cannot split a {c}-bit carry into tables of <= 2^{limit}")
    return min(ks, key=lambda k: C.carry_bits(c, k))


def _ring_share(x, what: str) -> Ring:
    if not isinstance(x, Shared) or not isinstance(x.dom, Ring):
        raise DomainMismatch(f"{what} must be a share over a ring Z_2^k, got {x!r}")
    return x.dom


def _fits(t: np.ndarray, k: int) -> np.ndarray:
    """Entries as canonical uint64 of Z_2^k (non-negative, < 2^k) or ValueError."""
    t = np.asarray(t)
    if t.size and (int(t.min()) < 0 or int(t.max()) >= 1 << k):
        raise ValueError(f"table entries do not fit the output ring Z2^{k}")
    return t.astype(U64)


# -- exp --------------------------------------------------------------------------------
def nonpositive_table(fn, b: int) -> np.ndarray:
    """Table of 2^b entries for inputs d in [-(2^b - 1), 0] indexed by d mod 2^b:
    entry 0 holds fn(0), entry j > 0 holds fn(j - 2^b)."""
    j = np.arange(1 << b, dtype=np.int64)
    return L._int_table(fn(np.where(j == 0, 0, j - (1 << b))), 1 << b)


def exp_table(b: int, in_frac: int, out_frac: int) -> np.ndarray:
    """exp of d <= 0 (units 2^-in_frac, |d| < 2^b) in units 2^-out_frac, at most
    2^out_frac - 1 (so a sum of L entries stays below L 2^out_frac)."""
    top = (1 << out_frac) - 1
    return nonpositive_table(
        lambda d: np.minimum(np.rint(np.exp(d * 2.0**-in_frac) * 2.0**out_frac), top).astype(
            np.int64
        ),
        b,
    )


def exp_lut(rt, d: Shared, b: int, in_frac: int, out_frac: int, out_bits: int) -> Shared:
    """Shares over Z_2^out_bits of exp_table(b, ..)[d mod 2^b] for d <= 0, |d| < 2^b:
    a one-hot LUT (``onehot.lut``, 2 rounds). Cost: ``cost_exp_lut``."""
    _ring_share(d, "exp input")
    if out_frac >= out_bits:
        raise ValueError(f"exp output of {out_frac} fractional bits needs a wider ring")
    return O.lut(rt, d, [(exp_table(b, in_frac, out_frac), out_bits)], bits=b)[0]


def reference_exp_lut(d, b: int, in_frac: int, out_frac: int, out_bits: int) -> np.ndarray:
    return O.reference_lut(d, b, [(exp_table(b, in_frac, out_frac), out_bits)])[0]


def cost_exp_lut(shape, b: int, out_frac: int, out_bits: int) -> Cost:
    """The table's entries have out_frac bits (at most 2^out_frac - 1)."""
    return O.cost_lut(shape, b, [(out_frac, out_bits)])


# -- reciprocal -------------------------------------------------------------------------
def _buckets(hb: int, c: int):
    h = np.arange(1 << hb, dtype=np.float64)
    return h, h * 2.0**c, (h + 0.5) * 2.0**c


def reciprocal_table(hb: int, c: int, K: float, top: int) -> np.ndarray:
    """T[h] = min(round(K / ((h + 1/2) 2^c)), top) for h < 2^hb."""
    _, _, mid = _buckets(hb, c)
    return np.minimum(np.rint(K / mid), top).astype(np.int64)


def reciprocal_taylor_tables(hb: int, c: int, K: float, k: int, h_min: int = 0):
    """(alpha', beta) over Z_2^k for q = alpha'[h] - beta[h] s ~ K / s, the tangent of K/s
    at the bucket midpoint (exact integer identity alpha' = alpha + beta h 2^c, so beta's
    rounding multiplies only s - h 2^c < 2^c). alpha is rounded down and beta up, so
    q <= tangent <= K / s for every s in the bucket (one-sided: no overshoot). Buckets
    below ``h_min`` (unreachable) use h_min's line. Entries are canonical uint64 of Z_2^k."""
    h = np.maximum(np.arange(1 << hb, dtype=np.int64), h_min)
    lo = h.astype(np.float64) * 2.0**c
    mid = lo + 2.0 ** (c - 1)
    beta = np.ceil(K / mid**2).astype(np.int64)  # rounded up / down: q <= K / s always
    alpha = np.floor(K * (2 * mid - lo) / mid**2).astype(np.int64)
    if int(alpha.max()) >= 1 << 62 or int(beta.max()) >= 1 << 62:
        raise ValueError("reciprocal tables overflow int64: lower K or raise h_min")
    mask = U64((1 << k) - 1) if k < 64 else U64(2**64 - 1)
    a2 = (alpha.astype(U64) + beta.astype(U64) * (h.astype(U64) << U64(c))) & mask
    return a2, beta.astype(U64) & mask


def _recip_tables(B: int, c: int, K: float, k: int, taylor: bool, h_min: int):
    if not 1 <= c < B:
        raise ValueError(f"shift c={c} must be in 1..{B - 1} for Z2^{B}")
    if taylor:
        return [(t, ring(k)) for t in reciprocal_taylor_tables(B - c, c, K, k, h_min)]
    return [(_fits(reciprocal_table(B - c, c, K, (1 << k) - 1), k), ring(k))]


def reciprocal(
    rt,
    s: Shared,
    c: int,
    K: float,
    out_bits: int,
    *,
    taylor=False,
    carry_digits=None,
    h_min: int = 1,
) -> list[Shared]:
    """Exact requant of s >= 0 (index h = floor(s / 2^c), B - c <= 11 bits): [q] with
    the plain table, or [alpha', beta] (both over Z_2^out_bits) with ``taylor`` (buckets
    below ``h_min`` reuse h_min's tangent). Cost: ``cost_reciprocal``."""
    B = _ring_share(s, "reciprocal input").k
    tabs = [(t, d, out_bits) for t, d in _recip_tables(B, c, K, out_bits, taylor, h_min)]
    return O.requant(rt, s, c, tabs, carry_digits=carry_digits)


def reference_reciprocal(
    s, B: int, c: int, K: float, out_bits: int, *, taylor=False, h_min: int = 1
) -> list[np.ndarray]:
    tabs = _recip_tables(B, c, K, out_bits, taylor, h_min)
    return C.reference_requant(s, B, c, tabs, exact=True)


def cost_reciprocal(
    shape, B: int, c: int, K: float, out_bits: int, *, taylor=False, carry_digits=None, h_min=1
):
    tabs = [(t, d, out_bits) for t, d in _recip_tables(B, c, K, out_bits, taylor, h_min)]
    return O.cost_requant(shape, B, c, tabs, carry_digits=carry_digits)


# -- rsqrt ------------------------------------------------------------------------------
def rsqrt_table(hb: int, c: int, K: float, top: int) -> np.ndarray:
    """T[h] = min(round(2K / (sqrt(h 2^c) + sqrt((h+1) 2^c))), top); T[0] = K/sqrt(2^(c-2))
    (saturation below the window)."""
    h, lo, _ = _buckets(hb, c)
    t = 2.0 * K / (np.sqrt(lo) + np.sqrt(lo + 2.0**c))
    t[0] = K / math.sqrt(2.0 ** (c - 2))
    return np.minimum(np.rint(t), top).astype(np.int64)


def rsqrt(rt, v: Shared, c: int, K: float, out_bits: int, *, carry_digits=None) -> Shared:
    """Exact requant of v >= 0 with ``rsqrt_table`` (B - c <= 11 index bits), output
    shares over Z_2^out_bits. Cost: ``cost_rsqrt``."""
    y = run(rt, rsqrt_steps(rt, v, c, K, out_bits, carry_digits=carry_digits))[0]
    return y.shared(rt, v.shape)


def rsqrt_steps(rt, v: Shared, c: int, K: float, out_bits: int, *, carry_digits=None):
    """Step form of ``rsqrt`` returning the value under dealer masks (``C.MaskedOut``):
    rows are few, so arithmetic tables (2^(B-c+1) entries per element) let a product
    with the result skip its opening (``protocols.layernorm``)."""
    B = _ring_share(v, "rsqrt input").k
    t = _fits(rsqrt_table(B - c, c, K, (1 << out_bits) - 1), out_bits)
    return C.requant_masked_steps(rt, v, c, t, ring(out_bits), carry_digits=carry_digits)


def reference_rsqrt(v, B: int, c: int, K: float, out_bits: int) -> np.ndarray:
    t = _fits(rsqrt_table(B - c, c, K, (1 << out_bits) - 1), out_bits)
    return C.reference_requant(v, B, c, [(t, ring(out_bits))], exact=True)[0]


def cost_rsqrt(shape, B: int, c: int, K: float, out_bits: int, *, carry_digits=None) -> Cost:
    return C.cost_requant_masked(shape, B, c, ring(out_bits), carry_digits=carry_digits)


# -- GELU -------------------------------------------------------------------------------
_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu(x):
    """Exact (erf) GELU on float arrays."""
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def gelu_table(in_format: Fixed = GELU_IN, out_format: Fixed = GELU_OUT) -> np.ndarray:
    """2^in_bits entries indexed by h mod 2^in_bits (h signed, units 2^-in_frac):
    clamp(round(gelu(h 2^-in_frac) 2^out_frac)) to the output format (half to even)."""
    return C.requant_table(
        gelu,
        in_format.bits,
        in_scale=2.0**-in_format.frac,
        out_scale=2.0**-out_format.frac,
        lo=out_format.lo,
        hi=out_format.hi,
    )


def _gelu_args(acc, c: int, in_format: Fixed, out_bits: int | None, out_format: Fixed):
    B = _ring_share(acc, "GELU accumulator").k
    if not 1 <= c or c + in_format.bits > B:
        raise ValueError(
            f"shift c={c} with a {in_format.bits}-bit index needs an accumulator ring of at "
            f"least {c + in_format.bits} bits, got Z2^{B}"
        )
    if in_format.bits + 1 > L.MULTI_INDEX_BITS:
        raise ValueError(f"GELU index of {in_format.bits} bits exceeds 11 (12-bit tables)")
    return out_format.bits if out_bits is None else out_bits


def gelu_requant(
    rt,
    acc: Shared,
    c: int,
    in_format: Fixed = GELU_IN,
    out_format: Fixed = GELU_OUT,
    *,
    out_bits: int | None = None,
    carry_digits=None,
) -> Shared:
    """GELU of the FFN1 accumulator: h = round(acc / 2^c) (acc read as a signed value,
    |acc| < 2^(c + in_bits - 1), else the index wraps) is the GELU input in ``in_format``;
    output gelu_table[h] over Z_2^out_bits (default the output format's width). The
    accumulator is first reduced (free) to Z_2^(c + in_bits) and 2^(c-1) is added (free).
    ``carry_digits`` None: one digit if c <= 8 (2 rounds) else ``carry_digits_for(c)``
    (3 rounds); 1 forces one digit up to c = 12 (2 rounds, 2^c bits offline per element).
    Cost: ``cost_gelu_requant``."""
    out_bits = _gelu_args(acc, c, in_format, out_bits, out_format)
    a = acc.reduce(c + in_format.bits) + (1 << (c - 1))
    tab = [(gelu_table(in_format, out_format), out_bits)]
    k = carry_digits_for(c) if carry_digits is None else carry_digits
    return O.requant(rt, a, c, tab, carry_digits=k)[0]


def reference_gelu_requant(
    acc, B: int, c: int, in_format=GELU_IN, out_format=GELU_OUT, *, out_bits=None
) -> np.ndarray:
    out_bits = out_format.bits if out_bits is None else out_bits
    k = c + in_format.bits
    a = ring(k).add(ring(k).reduce(ring(B).reduce(np.asarray(acc))), U64(1 << (c - 1)))
    tab = [(gelu_table(in_format, out_format), ring(out_bits))]
    return C.reference_requant(a, k, c, tab, exact=True)[0]


def cost_gelu_requant(
    shape, c: int, in_format=GELU_IN, out_format=GELU_OUT, *, out_bits=None, carry_digits=None
) -> Cost:
    out_bits = out_format.bits if out_bits is None else out_bits
    k = carry_digits_for(c) if carry_digits is None else carry_digits
    tab = [(gelu_table(in_format, out_format), out_bits)]
    return O.cost_requant(shape, c + in_format.bits, c, tab, carry_digits=k)
