"""Float Hugging Face BERT classifier -> integer model (``QBertConfig`` + ``QBertParams``).

Post-training quantization from calibration statistics (``models.calibrate``, valid tokens
only). Weights: symmetric per output channel; 8 bit W_int = round(W_j / s_j) with
s_j = absmax_j / 127; 4 bit with the MSE-optimal clip per channel, s_j = clip_j / 7; 1 bit
S = sign(W), s_j = alpha_j = mean |W_j|. Below 8 bits the rounding is GPTQ (input Gram
matrices from the calibration run). Activations: int8, per-tensor scale = calibrated
absmax / 127.

Scale chain (private scales s_*, public formats 2^-frac). A linear layer with input scale
s_in whose accumulator must be in units ``unit`` / 2^shift gets the private integers
m_j = round(s_in s_j 2^shift / unit), W' = W_int diag(m), b'_j = round(b_j 2^shift / unit)
(the bias directly in accumulator units: one rounding instead of two); the pipeline adds
2^(shift-1) before every floor, so requants round to nearest.

* layer input h: s_h (layer 0: the public input format 2^-input_frac; later: LayerNorm 2's
  private output scale);
* Q, K, V int8 in s_q, s_k, s_v; s_q s_k / sqrt(d_head) = 2^-(in_frac + c_scores) exactly
  (both scaled up by the same factor < sqrt 2 from their calibrated values), so Q K^T
  >> c_scores is the score in the softmax's public units;
* context = (P V) >> 8 is in s_v 2^8 / 255 (folded into W_o's multipliers);
* attention output / FFN2 accumulators in (residual input scale) / 2^t, t public, the
  largest whose multipliers stay < 2^res_mult_bits and whose LayerNorm fits 64 bits;
* LayerNorm: gamma, beta in units 2^-gamma_frac of the output scale; the public variance
  window (``var_bits``) covers 1.5x the calibrated largest row std;
* FFN1 into the public GELU input format (1/8 units, index for 2x the calibrated max), GELU
  output int8 in the finest 2^-frac holding the 99.9th percentile, FFN2 from it;
* softmax input 1/8 units, 9 bits when a calibrated score reaches 15 (score index 2 bits
  wider: real scores up to 4x the clamp are told apart from masked keys);
* pooler into the public tanh input, classifier from round(127 tanh) to integer logits in
  one common (private) logit scale 2^-shift.

Public shifts of requant linears make the largest multiplier of a layer just below
2^mult_bits. Rings come from ``qmodel.with_rings`` (worst case over the integer weights).
Values beyond an index range wrap exactly as in the secure run: int8 requants have 2x
headroom over the calibrated absmax (9-bit index), LayerNorm outputs 4x (10 bits).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from models.calibrate import Stat, collect
from models.client import DEFAULT_INPUT_FRAC
from models.client import input_frac as input_frac_of  # noqa: F401 (re-export)
from models.qmodel import KINDS, HeadFormat, LayerFormat, QBertConfig, QBertParams, ln_need
from models.qmodel import with_rings as _with_rings
from mpc.ring import DomainMismatch
from protocols import layernorm as LN
from protocols.activations import Fixed
from protocols.softmax import SoftmaxFormat

LN_STD_MARGIN = 1.5  # LayerNorm window top >= this x the calibrated largest row std


@dataclass(frozen=True)
class Options:
    """Tunable (public) choices of the converter."""

    seq_len: int = 64
    mult_bits: int = 10  # multipliers of requant linears < 2^mult_bits
    res_mult_bits: int = 12  # multipliers of residual branches (capped by LayerNorm's ring)
    act_pct: float = 100.0  # percentile of |x| giving an int8 scale (100: absmax)
    softmax: SoftmaxFormat | None = None  # None: from the calibrated score range
    gelu_in: Fixed | None = None  # None: from the calibrated FFN1 range
    gelu_out: Fixed | None = None
    gelu_pct: float = 99.9  # GELU output format: finest holding this percentile
    idx_bits: int = 9
    gptq: bool = True  # GPTQ rounding of < 8-bit weights (needs stats with grams)
    gptq_damp: float = 0.01
    batch_size: int = 32
    seed: int = 0


def normalize_bits(bits: dict | None) -> dict[str, int]:
    """Per-kind weight bits from {"weights": b, "activations": 8, <kind>: b}; the
    classifier (2 x hidden weights) stays 8-bit unless given explicitly."""
    bits = dict(bits or {})
    act = bits.pop("activations", 8)
    if act != 8:
        raise ValueError("only int8 activations are supported")
    w = bits.pop("weights", 8)
    out = {k: w for k in KINDS}
    out["classifier"] = 8
    for k, v in bits.items():
        if k not in out:
            raise ValueError(f"unknown bits key {k!r}: use weights, activations or {KINDS}")
        out[k] = v
    if any(b not in (1, 4, 8) for b in out.values()):
        raise ValueError(f"weight bits must be 1, 4 or 8, got {out}")
    return out


# -- weights ----------------------------------------------------------------------------
def quant_weight(w: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(W_int [in, out] int8, s [out]) for a torch-layout float weight [out, in]."""
    w = np.asarray(w, dtype=np.float64)
    a = np.abs(w)
    if bits == 1:
        s = a.mean(axis=1)
        return np.where(w < 0, -1, 1).T.astype(np.int8), s
    top = 2 ** (bits - 1) - 1
    amax = a.max(axis=1)
    s = np.where(amax > 0, amax, 1.0) / top
    if bits < 8:  # MSE-optimal clipping per channel on a grid of ratios
        best, err = s.copy(), np.full(s.shape, np.inf)
        for ratio in np.linspace(0.3, 1.0, 36):
            sr = s * ratio
            q = np.clip(np.rint(w / sr[:, None]), -top, top) * sr[:, None]
            e = ((q - w) ** 2).sum(axis=1)
            better = e < err
            best, err = np.where(better, sr, best), np.where(better, e, err)
        s = best
    q = np.clip(np.rint(w / s[:, None]), -top, top)
    return q.T.astype(np.int8), s


def _grid(w: np.ndarray, s: np.ndarray, bits: int) -> np.ndarray:
    """Integer levels of one or more weight columns with fixed per-row scales s."""
    if bits == 1:
        return np.where(w < 0, -1.0, 1.0)
    top = 2 ** (bits - 1) - 1
    return np.clip(np.rint(w / s), -top, top)


def gptq(w: np.ndarray, s: np.ndarray, bits: int, gram: np.ndarray, damp: float = 0.01):
    """GPTQ rounding (Frantar et al. 2023) with per-output-channel scales s: input columns
    are quantized one at a time in order of decreasing input energy, and each column's
    error, weighted by the inverse (damped) input Gram matrix H = X^T X, is pushed onto the
    columns not yet quantized. The scales are kept (a least-squares refit under H shrinks
    outputs and measured worse). Returns W_int [in, out] int8."""
    w0 = np.array(w, dtype=np.float64)
    n = w0.shape[1]
    h = np.array(gram, dtype=np.float64)
    dead = np.diag(h) <= 0
    h[dead, dead] = 1.0
    h += damp * float(np.mean(np.diag(h))) * np.eye(n)
    perm = np.argsort(-np.diag(h), kind="stable")
    w = np.where(dead, 0.0, w0)[:, perm]
    u = np.linalg.cholesky(np.linalg.inv(h[np.ix_(perm, perm)])).T  # H^-1 = U^T U
    q = np.zeros_like(w)
    sc = np.asarray(s, dtype=np.float64)
    for i in range(n):
        q[:, i] = _grid(w[:, i], sc, bits)
        err = (w[:, i] - q[:, i] * sc) / u[i, i]
        w[:, i + 1 :] -= np.outer(err, u[i, i + 1 :])
    out = np.empty_like(q)
    out[:, perm] = q
    return out.T.astype(np.int8)


def shift_for(ratio: np.ndarray, mult_bits: int) -> int:
    """Largest shift c with max round(ratio 2^c) < 2^mult_bits (may be <= 0)."""
    r = float(np.max(ratio))
    if not r > 0:
        return mult_bits
    c = math.floor(math.log2((2**mult_bits - 0.5) / r))
    while round(r * 2.0**c) >= 2**mult_bits:
        c -= 1
    return c


def fold(s_w, b, s_in: float, unit: float, shift: int, offset: int = 0):
    """(m int32, b' int64): m_j = round(s_in s_w_j / unit 2^shift) and the bias in the
    accumulator's units b'_j = round(b_j / unit 2^shift) + offset."""
    scale = 2.0**shift / unit
    m = np.rint(np.asarray(s_w, dtype=np.float64) * s_in * scale)
    if m.max(initial=0) >= 2**31:
        raise ValueError("multiplier beyond int32: lower mult_bits")
    bb = np.rint(np.asarray(b, dtype=np.float64) * scale) + offset
    return m.astype(np.int32), bb.astype(np.int64)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy()


# -- formats from statistics ------------------------------------------------------------
def _frac_for(amax: float, bits: int, margin: float = 1.0) -> int:
    """Largest frac with margin * amax <= the top of a signed ``bits``-bit format."""
    top = 2 ** (bits - 1) - 1
    return math.floor(math.log2(top / max(margin * amax, 1e-9)))


def softmax_format(stats: dict[str, Stat], layers: int) -> SoftmaxFormat:
    """int8 scores in units 1/8 unless a calibrated score reaches 16: then 9 bits."""
    smax = max(stats[f"l{i}.scores"].absmax for i in range(layers))
    return SoftmaxFormat(in_bits=8 if smax < 15 else 9, in_frac=3)


def gelu_formats(stats: dict[str, Stat], layers: int, pct: float) -> tuple[Fixed, Fixed]:
    """GELU input (1/8 units, index wide enough for 2x the calibrated max: beyond it the
    index wraps) and output (int8, the finest frac holding the calibrated ``pct``-th
    percentile of every layer: resolution matters more than the rare clamped tail)."""
    fmax = max(stats[f"l{i}.ffn1"].absmax for i in range(layers))
    bits = 9
    while bits < 11 and 2 * fmax >= 2 ** (bits - 1) / 8:
        bits += 1
    gmax = max(stats[f"l{i}.gelu"].percentile(pct) for i in range(layers))
    return Fixed(3, bits), Fixed(min(6, _frac_for(gmax, 8)), 8)


# -- the converter ----------------------------------------------------------------------
class _Converter:
    def __init__(self, model, stats: dict[str, Stat], cfg: QBertConfig, opts: Options):
        self.model, self.stats, self.cfg, self.o = model, stats, cfg, opts
        self.t: dict[str, np.ndarray] = {}

    def act(self, name: str) -> float:
        """int8 scale of a calibrated tensor."""
        return max(self.stats[name].percentile(self.o.act_pct), 1e-6) / 127

    def weight(self, name: str, lin, kind: str):
        bits = self.cfg.w_bits[kind]
        w, s = quant_weight(_np(lin.weight), bits)
        x = self.stats.get(name + ".x")
        if self.o.gptq and bits < 8 and x is not None and x.gram is not None:
            w = gptq(_np(lin.weight), s, bits, x.gram, self.o.gptq_damp)
        b = _np(lin.bias) if lin.bias is not None else np.zeros(w.shape[1])
        self.t[name + ".w"] = w
        return s, b

    def put(self, name: str, s_w, b, s_in: float, unit: float, shift: int) -> None:
        self.t[name + ".m"], self.t[name + ".b"] = fold(s_w, b, s_in, unit, shift)

    def layernorm(self, ln, s_out: float, std_int: float):
        """LayerNorm format for a residual of calibrated max row std ``std_int`` (integer
        units), and gamma / beta folded into the output scale s_out."""
        fmt = LN.LayerNormFormat(in_bits=32)
        vb = LN.var_bits_for(self.cfg.hidden, LN_STD_MARGIN * std_int)
        g = np.rint(_np(ln.weight) / s_out * 2.0**fmt.gamma_frac).astype(np.int64)
        b = np.rint(_np(ln.bias) / s_out * 2.0**fmt.gamma_frac).astype(np.int64)
        gb = max(16, int(max(np.abs(g).max(), np.abs(b).max())).bit_length() + 1)
        fmt = replace(fmt, var_bits=vb, gamma_bits=gb)
        return fmt, g, b

    def residual(self, name, lin, kind, s_in, s_res, ln, ln_name: str, ln_in: str, s_out):
        """Residual branch ``name`` + LayerNorm ``ln_name``: the largest t <= the multiplier
        target whose LayerNorm fits a 64-bit ring. Returns (t, LayerNorm format)."""
        s_w, b = self.weight(name, lin, kind)
        t = shift_for(s_in * s_w / s_res, self.o.res_mult_bits)
        while True:
            if t < 0:
                raise ValueError(f"{name}: no residual shift fits LayerNorm in 64 bits")
            std = self.stats[ln_in].row_std_max * 2.0**t / s_res
            fmt, g, bl = self.layernorm(ln, s_out, std)
            if _ln_fits(self.cfg.hidden, fmt):
                break
            t -= 1
        self.put(name, s_w, b, s_in, s_res, t)
        self.t[ln_name + ".g"], self.t[ln_name + ".b"] = g, bl
        return t, fmt

    def layer(self, i: int, layer, s_h: float) -> tuple[LayerFormat, float]:
        cfg, p, s = self.cfg, f"layer{i}.", f"l{i}."
        att = layer.attention
        # Q, K, V: s_q s_k / sqrt(dh) = 2^-(in_frac + c_scores), public c_scores
        sq, sk, sv = self.act(s + "q"), self.act(s + "k"), self.act(s + "v")
        ideal = sq * sk / math.sqrt(cfg.head_dim)
        e = max(math.floor(-math.log2(ideal)), cfg.softmax.in_frac + 1)
        f = math.sqrt(2.0**-e / ideal)
        sq, sk = sq * f, sk * f
        ws = {
            n: self.weight(p + n, getattr(att.self, full), "qkv")
            for n, full in (("q", "query"), ("k", "key"), ("v", "value"))
        }
        units = {"q": sq, "k": sk, "v": sv}
        c_qkv = max(1, min(shift_for(s_h * ws[n][0] / units[n], self.o.mult_bits) for n in units))
        for n in units:
            self.put(p + n, *ws[n], s_h, units[n], c_qkv)
        # attention output + residual + LayerNorm 1
        s_ctx = sv * 2.0**cfg.ctx_shift / cfg.softmax.out_one
        s1 = self.act(s + "ln1_out")
        t_a, ln1 = self.residual(
            p + "o",
            att.output.dense,
            "attn_out",
            s_ctx,
            s_h,
            att.output.LayerNorm,
            p + "ln1",
            s + "ln1_in",
            s1,
        )
        # FFN1 into the GELU input format
        s_w, b = self.weight(p + "f1", layer.intermediate.dense, "ffn1")
        u_in = 2.0**-cfg.gelu_in.frac
        c_f1 = max(1, shift_for(s1 * s_w / u_in, self.o.mult_bits))
        self.put(p + "f1", s_w, b, s1, u_in, c_f1)
        # FFN2 from the GELU output format + residual + LayerNorm 2
        s2 = self.act(s + "ln2_out")
        t_f, ln2 = self.residual(
            p + "f2",
            layer.output.dense,
            "ffn2",
            2.0**-cfg.gelu_out.frac,
            s1,
            layer.output.LayerNorm,
            p + "ln2",
            s + "ln2_in",
            s2,
        )
        lf = LayerFormat(0, c_qkv, e - cfg.softmax.in_frac, 0, t_a, ln1, 0, c_f1, 0, t_f, ln2)
        return lf, s2

    def head(self, s_h: float) -> HeadFormat:
        bert, cfg = self.model.bert, self.cfg
        s_w, b = self.weight("pooler", bert.pooler.dense, "pooler")
        u = 2.0**-cfg.tanh_in.frac
        c_p = max(1, shift_for(s_h * s_w / u, self.o.mult_bits))
        self.put("pooler", s_w, b, s_h, u, c_p)
        s_w, b = self.weight("classifier", self.model.classifier, "classifier")
        c = shift_for(s_w / 127, self.o.mult_bits)
        self.put("classifier", s_w, b, 1 / 127, 1.0, c)
        return HeadFormat(0, c_p, 0)


def _ln_fits(d: int, fmt: LN.LayerNormFormat) -> bool:
    try:
        return ln_need(d, fmt) <= 64
    except (ValueError, DomainMismatch):
        return False


def _has_input_frac() -> bool:
    return any(f.name == "input_frac" for f in fields(QBertConfig))


def quantize(
    hf_model,
    calib_sentences: Sequence,
    bits: dict | None = None,
    *,
    tokenizer=None,
    options: Options | None = None,
    stats: dict[str, Stat] | None = None,
    progress: bool = False,
) -> tuple[QBertConfig, QBertParams]:
    """Quantize a ``BertForSequenceClassification`` (see module doc). ``calib_sentences``:
    strings or (text, label) pairs; ``tokenizer`` defaults to the checkpoint's; ``stats``
    reuses a previous ``models.calibrate.collect`` (bits / options then cost no float run).
    Returns the public config and the owner's validated parameters."""
    o = options or Options()
    hf = hf_model.config
    if getattr(hf, "position_embedding_type", "absolute") != "absolute":
        raise ValueError("only absolute position embeddings are supported")
    if stats is None:
        if tokenizer is None:
            from models.checkpoint import load_tokenizer

            tokenizer = load_tokenizer()
        low = o.gptq and min(normalize_bits(bits).values()) < 8
        stats = collect(
            hf_model,
            tokenizer,
            calib_sentences,
            o.seq_len,
            o.batch_size,
            o.seed,
            grams=low,
            progress=progress,
        )
    n = hf.num_hidden_layers
    gin, gout = gelu_formats(stats, n, o.gelu_pct)
    sm = o.softmax or softmax_format(stats, n)
    cfg = QBertConfig(
        layers=n,
        hidden=hf.hidden_size,
        heads=hf.num_attention_heads,
        ffn=hf.intermediate_size,
        labels=hf.num_labels,
        seq_len=o.seq_len,
        w_bits=normalize_bits(bits),
        idx_bits=o.idx_bits,
        score_idx_bits=sm.in_bits + 2,
        softmax=sm,
        gelu_in=o.gelu_in or gin,
        gelu_out=o.gelu_out or gout,
    )
    frac = DEFAULT_INPUT_FRAC
    if _has_input_frac():
        frac = _frac_for(stats["emb"].percentile(o.act_pct), 8)
        cfg = replace(cfg, input_frac=frac)
    conv = _Converter(hf_model, stats, cfg, o)
    s_h, lfs = 2.0**-frac, []
    for i, layer in enumerate(hf_model.bert.encoder.layer):
        lf, s_h = conv.layer(i, layer, s_h)
        lfs.append(lf)
    cfg = replace(cfg, layer_formats=tuple(lfs), head=conv.head(s_h))
    params = QBertParams(_with_rings(cfg, conv.t), conv.t)
    params.validate()
    return params.config, params
