"""The quantized BERT classifier as ONE integer pipeline over an ``ops`` object.

Values are ``mpc.shares.Shared``: secret shares in the secure model (``models.ops_secure``),
and in the plaintext reference (``models.ops_plain``) a "one-party sharing" (party 1 holds
the whole value, so every local operation — add, public scale, reshape, slices, free ring
reduction — means the same thing). Everything that needs a protocol goes through ``ops``:

    ops.scope(name)                      accounting scope (context manager)
    ops.dense_many(x, names) -> [acc]    x W'_j + b'_j (private weights, one opening of x)
    ops.requant(acc, c, [(T, k), ..]) -> [T[floor(acc / 2^c)] over Z_2^k, ..] (exact)
    ops.bmm(x, y)                        batched shared x shared product
    ops.softmax(x, fmt, k, xc) / ops.layernorm(x, name, fmt, k) / ops.gelu(acc, c, in, out, k)
                                         (outputs over the consumer's ring Z_2^k)
    ops.extend(x, k)                     x over Z_2^k (k wider; |x| < 2^(x's ring - 2))
    ops.reveal(x) -> signed ints (P1) or None

Layer i (L tokens, int8 input h over Z_2^max(ring_qkv, ring_attn - t_attn)):
  qkv        Q, K, V = h W'_{q,k,v} + b' (linear_many); ONE exact requant (round, clamp to
             int8, ``idx_bits`` index) of all three, emitted over the score / context ring.
  scores     S = Q K^T per head (bmm over Z_2^(c_s + hb + 1), hb = score_idx_bits); padded
             keys get + 2^(c_s + hb) (local: (1 - mask) mod 2 times 2^(c_s + hb)); ONE exact
             requant (``score_table``, hb + 1 index bits) to clamp(round(S / 2^c_s), floor,
             127) in the softmax input format, padded keys (and real scores beyond hb bits)
             to the lowest input -128, plus the coarse scores floor(s / 2^max_shift) for
             the softmax's row max. floor = -128 + g where exp(-g 2^-in_frac) rounds to 0 in
             the softmax: a masked key lies >= g below every row max, so its probability is
             exactly 0 (needs one real key per row, e.g. [CLS]). Real scores below floor
             (-6.25 with the default softmax format) are clamped there.
  softmax    P = round(255 softmax(S)) (uint8, ``protocols.softmax``).
  context    C = P V (bmm over Z_2^(8 + idx_bits)), requant C >> 8 (V's scale; the owner
             folds 255/256 into W_o) to int8.
  attn_out   r = h 2^t_attn + (C W'_o + b'_o), local add over ring_attn.
  ln1        LayerNorm(r) with the owner's gamma/beta -> int8 h1.
  ffn1_gelu  GELU requant of h1 W'_1 + b'_1 (shift c_ffn1 into the GELU input format).
  ffn2       r = h1 2^t_ffn2 + (g W'_2 + b'_2) over ring_ffn2 (narrow: one bit above its
             worst case), extended to LayerNorm 2's ring (``ops.extend``, 1 round).
  ln2        LayerNorm -> int8, the next layer's input.
The last layer computes every row of K and V but only the [CLS] row of everything else
(rows are independent outside attention, so the logits are unchanged).
Head: pooler ([CLS] row, dense, requant with a tanh table to round(127 tanh)), classifier
(dense) -> integer logits over ring_cls, revealed to P1 only.

Conventions: every requant rounds half up (the pipeline adds 2^(c-1) to the accumulator, so
a converter must NOT add it to b'); every requant / LayerNorm / GELU / softmax emits its
int8 (uint8) result directly over the consumer's ring (one-hot output stage,
``protocols.onehot``: no ring extension).
"""

from __future__ import annotations

import numpy as np

from models.qmodel import QBertConfig
from mpc.shares import Shared, concatenate
from protocols import activations as A
from protocols import convert as C


# -- public tables --------------------------------------------------------------------------
def clamp_table(bits: int, lo: int = -128, hi: int = 127) -> np.ndarray:
    """Index h (signed, ``bits`` bits) -> clamp(h, lo, hi)."""
    return C.requant_table(None, bits, lo=lo, hi=hi)


def score_floor(cfg: QBertConfig) -> int:
    """Lowest real score: masked keys (-2^(in_bits-1)) are >= g below it, exp -> 0."""
    f = cfg.softmax
    t = A.exp_table(f.in_bits, f.in_frac, f.exp_frac)
    d = np.arange(1 << f.in_bits) - (1 << f.in_bits)  # entry j <-> d = j - 2^b (j > 0)
    g = -int(d[1:][t[1:] == 0].max())
    floor = -(1 << (f.in_bits - 1)) + g
    if floor > 0:
        raise ValueError("softmax format cannot express a masked score")
    return floor


def score_table(cfg: QBertConfig) -> np.ndarray:
    """Signed index j of hb + 1 bits (hb = ``score_idx_bits``): clamp(j, floor,
    2^(in_bits-1) - 1) for j in [-2^(hb-1), 2^(hb-1)) (real keys), else -2^(in_bits-1)
    (padded keys, pushed there by + 2^hb; real scores beyond hb bits land there too)."""
    hb, b = cfg.score_idx_bits, cfg.softmax.in_bits
    j = C.requant_table(None, hb + 1, lo=-(1 << hb), hi=(1 << hb) - 1)
    real = (j >= -(1 << (hb - 1))) & (j < 1 << (hb - 1))
    return np.where(real, np.clip(j, score_floor(cfg), (1 << (b - 1)) - 1), -(1 << (b - 1)))


def score_tables(cfg: QBertConfig) -> list:
    """(table, ring) of the scores and, if the softmax takes its row max of coarse scores,
    of floor(score / 2^max_shift)."""
    f, t = cfg.softmax, score_table(cfg)
    out = [(t, f.in_bits + 1)]
    if f.max_shift:
        out.append((t >> f.max_shift, f.in_bits - f.max_shift + 1))
    return out


def tanh_table(cfg: QBertConfig) -> np.ndarray:
    f = cfg.tanh_in
    return C.requant_table(np.tanh, f.bits, in_scale=2.0**-f.frac, out_scale=1 / 127, lo=-127)


# -- pipeline ---------------------------------------------------------------------------------
def _round(acc: Shared, c: int, bits: int) -> Shared:
    """acc + 2^(c-1) read mod 2^(c + bits): what a rounding requant of shift c indexes."""
    return acc.reduce(c + bits) + (1 << (c - 1))


def _to_int8(ops, acc: Shared, c: int, bits: int, k: int) -> Shared:
    """round(acc / 2^c) clamped to int8, over the consumer's ring Z_2^k."""
    return ops.requant(_round(acc, c, bits), c, [(clamp_table(bits), k)])[0]


def _scaled(x: Shared, t: int, k: int) -> Shared:
    """x 2^t over Z_2^k, for x over Z_2^j with j >= k - t: the share words read in Z_2^k sum
    to x + carry 2^j, and carry 2^(j+t) vanishes mod 2^k."""
    return (x.reduce(k) if x.dom.k >= k else x.reinterpret(k)) * (1 << t)


def _heads(x: Shared, H: int, order) -> Shared:
    L, d = x.shape
    return x.reshape(L, H, d // H).transpose(*order)


def layer(ops, cfg: QBertConfig, i: int, h: Shared, mask: Shared, cls_only: bool) -> Shared:
    """One encoder layer on int8 h [L, hidden] (see module doc); returns int8 over the next
    layer's input ring ([1, hidden] if ``cls_only``)."""
    lf, p, H, d = cfg.layer_formats[i], f"layer{i}.", cfg.heads, cfg.hidden
    L, Lq = h.shape[0], 1 if cls_only else h.shape[0]
    rs, rc = cfg.score_ring(lf), cfg.ctx_ring
    with ops.scope("qkv"):
        q, k, v = ops.dense_many(h.reduce(lf.ring_qkv), [p + "q", p + "k", p + "v"])
        q = q[:Lq]
        flat = concatenate([a.reshape(-1) for a in (q, k, v)])
        flat = _to_int8(ops, flat, lf.c_qkv, cfg.idx_bits, cfg.qkv_out_ring(lf))
        n, m = Lq * d, L * d
        q = _heads(flat[:n].reshape(Lq, d), H, (1, 0, 2)).reduce(rs)
        k = _heads(flat[n : n + m].reshape(L, d), H, (1, 2, 0)).reduce(rs)
        v = _heads(flat[n + m :].reshape(L, d), H, (1, 0, 2)).reduce(rc)
    with ops.scope("scores"):
        s = ops.bmm(q, k)  # [H, Lq, L]
        hb, cs = cfg.score_idx_bits, lf.c_scores
        s = s + _scaled(1 - mask.reduce(1), cs + hb, rs)  # padded keys: + 2^(c_s + hb)
        s, *sc = ops.requant(_round(s, cs, hb + 1), cs, score_tables(cfg))
    with ops.scope("softmax"):
        prob = ops.softmax(s, cfg.softmax, rc, sc[0] if sc else None)
    with ops.scope("context"):
        ctx = ops.bmm(prob, v)  # [H, Lq, dh]
        ctx = ctx.transpose(1, 0, 2).reshape(Lq, d)
        ctx = _to_int8(ops, ctx, cfg.ctx_shift, cfg.idx_bits, lf.ring_attn)
    with ops.scope("attn_out"):
        (acc,) = ops.dense_many(ctx, [p + "o"])
        r = _scaled(h[:Lq], lf.t_attn, lf.ring_attn) + acc
    with ops.scope("ln1"):
        h1 = ops.layernorm(r, p + "ln1", lf.ln1, cfg.ln1_out_ring(lf))
    with ops.scope("ffn1_gelu"):
        (acc,) = ops.dense_many(h1.reduce(lf.ring_ffn1), [p + "f1"])
        g = ops.gelu(acc, lf.c_ffn1, cfg.gelu_in, cfg.gelu_out, lf.ring_ffn2)
    with ops.scope("ffn2"):
        (acc,) = ops.dense_many(g, [p + "f2"])
        r = _scaled(h1, lf.t_ffn2, lf.ring_ffn2) + acc
        k = cfg.ln_ring(lf.ln2, r.dom.k)
        r = r if k == r.dom.k else ops.extend(r, k)
    with ops.scope("ln2"):
        return ops.layernorm(r, p + "ln2", lf.ln2, cfg.layer_in_ring(i + 1))


def logits(ops, cfg: QBertConfig, x: Shared, mask: Shared):
    """Integer logits [labels] of int8 embeddings x [L, hidden] (over ``cfg.input_ring``)
    and attention mask [L] (1 real, 0 padding; over ``cfg.mask_ring``), revealed by
    ``ops.reveal`` (to P1 only in the secure model)."""
    if not cfg.built:
        raise ValueError("the config has no formats: build or load a model")
    L = x.shape[0]
    if x.shape != (L, cfg.hidden) or mask.shape != (L,):
        raise ValueError(f"input of shape {x.shape} and mask {mask.shape} for hidden={cfg.hidden}")
    if x.dom.k != cfg.input_ring or mask.dom.k != cfg.mask_ring:
        raise ValueError(f"input over Z2^{cfg.input_ring} and mask over Z2^{cfg.mask_ring}")
    h = x
    for i in range(cfg.layers):
        with ops.scope(f"layer{i}"):
            h = layer(ops, cfg, i, h, mask, cls_only=i == cfg.layers - 1)
    hd = cfg.head
    with ops.scope("pooler"):
        (acc,) = ops.dense_many(h[:1], ["pooler"])
        f = cfg.tanh_in.bits
        t = ops.requant(_round(acc, hd.c_pool, f), hd.c_pool, [(tanh_table(cfg), hd.ring_cls)])[0]
    with ops.scope("classifier"):
        (out,) = ops.dense_many(t, ["classifier"])
    with ops.scope("reveal"):
        return ops.reveal(out.reshape(cfg.labels))
