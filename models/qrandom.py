"""Random VALID integer models and inputs (tests, demos and shape benchmarks).

``random_qbert(config, seed)`` draws the owner's integers like a calibrated model would have
them and picks every public shift analytically from the draws, so that activations have
realistic ranges: int8 tensors RMS ~ 20 (of 127), attention scores RMS ~ 1.5 (softmax units
2^-3), GELU inputs RMS ~ 1.5, pooler tanh inputs RMS ~ 1; a residual branch lands in the
residual input's scale times 2^t with t chosen so both summands are of the same size;
LayerNorm windows (``var_bits``) put the expected row std at std_top / 4. Rings are then
sized from the worst case of the drawn weights (``qmodel.with_rings``). Time and bytes of a
secure run depend only on shapes and rings, not on the weights.

The RMS of a requant input is sqrt(d_in) rms(x) rms(W_int) mean(m) (independent zero-mean
weights); multipliers are m_j in [2^(mb-1), 2^mb). Residual linears use fewer multiplier
bits when LayerNorm's ring would exceed 64 bits (a real converter faces the same bound).
"""

from __future__ import annotations

import functools
import hashlib
import math
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from models.qmodel import (
    CONFIG_FILE,
    PARAMS_FILE,
    HeadFormat,
    LayerFormat,
    QBertConfig,
    QBertParams,
    ln_need,
    load_config,
    preset,
    with_rings,
)
from protocols import activations as A
from protocols import layernorm as LN

RMS8 = 20.0  # target RMS of an int8 activation
SCORE_RMS = 1.5  # attention scores (real units)
GELU_RMS = 1.5  # GELU input (real units)
TANH_RMS = 1.0  # pooler tanh input (real units)
CTX_FACTOR = 0.7  # RMS of P V / out_one relative to V (softmax averages)
LN_MARGIN = 4.0  # LayerNorm window top = LN_MARGIN x expected row std


def _draw_w(rng, bits: int, shape) -> np.ndarray:
    if bits == 1:
        return np.where(rng.random(shape) < 0.5, -1, 1).astype(np.int8)
    top = 2 ** (bits - 1) - 1
    return np.clip(np.rint(rng.normal(0, top / 4.5, shape)), -top, top).astype(np.int8)


def _gelu_out_rms(cfg: QBertConfig) -> float:
    """RMS of the GELU output integers for inputs ~ N(0, GELU_RMS^2) (deterministic grid)."""
    z = np.linspace(-6, 6, 4001)
    w = np.exp(-z * z / 2)
    g = A.gelu(z * GELU_RMS) * 2.0**cfg.gelu_out.frac
    return float(np.sqrt((w * g * g).sum() / w.sum()))


class _Builder:
    def __init__(self, cfg: QBertConfig, seed: int, mult_bits: int, res_mult_bits: int):
        self.cfg, self.rng = cfg, np.random.default_rng(seed)
        self.mb, self.mb_res = mult_bits, res_mult_bits
        self.t: dict[str, np.ndarray] = {}

    def linear(self, name, kind, d_in, d_out, rms_in, mb) -> float:
        """Draw W_int, m, b'; return the RMS of x W' (without bias)."""
        w = _draw_w(self.rng, self.cfg.w_bits[kind], (d_in, d_out))
        m = self.rng.integers(1 << (mb - 1), 1 << mb, d_out).astype(np.int32)
        rms = math.sqrt(d_in) * rms_in * float(np.sqrt(np.mean(w.astype(np.float64) ** 2)))
        rms *= float(m.mean())
        self.t[name + ".w"], self.t[name + ".m"] = w, m
        self.t[name + ".b"] = np.rint(self.rng.normal(0, 0.25 * rms, d_out)).astype(np.int64)
        return rms

    def ln(self, name, fmt: LN.LayerNormFormat) -> None:
        d, one = self.cfg.hidden, RMS8 * 2.0**fmt.gamma_frac
        g = np.rint(one * self.rng.uniform(0.8, 1.2, d)).astype(np.int64)
        b = np.rint(self.rng.normal(0, 0.1 * one, d)).astype(np.int64)
        lim = (1 << (fmt.gamma_bits - 1)) - 1
        self.t[name + ".g"], self.t[name + ".b"] = np.clip(g, -lim, lim), np.clip(b, -lim, lim)

    def residual(self, name, kind, d_in, rms_in) -> tuple[int, LN.LayerNormFormat]:
        """Residual branch: the largest multiplier width whose LayerNorm ring fits 64 bits."""
        for mb in range(self.mb_res, 0, -1):
            rms = self.linear(name, kind, d_in, self.cfg.hidden, rms_in, mb)
            t = max(0, round(math.log2(rms / RMS8)))
            std = math.hypot(RMS8 * 2.0**t, rms)
            vb = LN.var_bits_for(self.cfg.hidden, LN_MARGIN * std)
            fmt = LN.LayerNormFormat(in_bits=32, var_bits=vb, out_index_bits=self.cfg.idx_bits)
            if ln_need(self.cfg.hidden, fmt) <= 64:
                return t, fmt
        raise ValueError(f"{name}: no residual scale fits LayerNorm in 64 bits")


def _shift(rms: float, target: float) -> int:
    return max(1, round(math.log2(rms / target)))


def random_qbert(
    config: QBertConfig, seed: int = 0, mult_bits: int = 10, res_mult_bits: int = 8
) -> QBertParams:
    """A random valid model of ``config``'s shape and bit-widths, with formats and rings."""
    cfg = replace(config, layer_formats=(), head=None)
    b = _Builder(cfg, seed, mult_bits, res_mult_bits)
    d, f = cfg.hidden, cfg.ffn
    lfs = []
    for i in range(cfg.layers):
        p = f"layer{i}."
        rms = max(b.linear(p + n, "qkv", d, d, RMS8, mult_bits) for n in "qkv")
        c_qkv = _shift(rms, RMS8)
        score = math.sqrt(cfg.head_dim) * RMS8 * RMS8
        c_s = _shift(score, SCORE_RMS * 2.0**cfg.softmax.in_frac)
        t_a, ln1 = b.residual(p + "o", "attn_out", d, CTX_FACTOR * RMS8)
        b.ln(p + "ln1", ln1)
        rms = b.linear(p + "f1", "ffn1", d, f, RMS8, mult_bits)
        c_f1 = _shift(rms, GELU_RMS * 2.0**cfg.gelu_in.frac)
        t_f, ln2 = b.residual(p + "f2", "ffn2", f, _gelu_out_rms(cfg))
        b.ln(p + "ln2", ln2)
        lfs.append(LayerFormat(0, c_qkv, c_s, 0, t_a, ln1, 0, c_f1, 0, t_f, ln2))
    rms = b.linear("pooler", "pooler", d, d, RMS8, mult_bits)
    c_p = _shift(rms, TANH_RMS * 2.0**cfg.tanh_in.frac)
    b.linear("classifier", "classifier", d, cfg.labels, 127 * 0.6, mult_bits)
    cfg = replace(cfg, layer_formats=tuple(lfs), head=HeadFormat(0, c_p, 0))
    params = QBertParams(with_rings(cfg, b.t), b.t)
    params.validate()
    return params


def random_input(config: QBertConfig, seq_len: int | None = None, seed: int = 0, valid=None):
    """The client's int8 embeddings [L, hidden] (RMS ~ 20) and attention mask [L] (1 for the
    first ``valid`` tokens, 0 for padding; default all valid)."""
    L = config.seq_len if seq_len is None else int(seq_len)
    valid = L if valid is None else int(valid)
    if not 1 <= valid <= L:
        raise ValueError(f"valid tokens must be in 1..{L}, got {valid}")
    rng = np.random.default_rng([seed, 1])
    x = np.clip(np.rint(rng.normal(0, RMS8, (L, config.hidden))), -127, 127).astype(np.int8)
    mask = (np.arange(L) < valid).astype(np.int64)
    return x, mask


def _code_key() -> str:
    """Hash of the sources a random model's draws, formats and rings depend on."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent.parent
    for pkg in ("models", "protocols", "mpc"):
        for f in sorted((root / pkg).glob("*.py")):
            h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:12]


def cache_dir(shape: str, seed: int = 0, layers: int | None = None) -> Path:
    """Where ``random_model`` keeps a drawn model (a model folder: config.json +
    params.safetensors), keyed by preset, depth, seed and the code that draws it."""
    from models.data import cache_root

    depth = "all" if layers is None else int(layers)
    return cache_root() / "random" / f"{shape}-layers{depth}-seed{int(seed)}-{_code_key()}"


def _store(params: QBertParams, path: Path) -> None:
    """Write the folder atomically (a temporary folder renamed; the first writer wins). A
    cache that cannot be written (read-only home, full disk) only costs the next draw."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".draw-", dir=path.parent))
    except OSError:
        return
    try:
        params.save(tmp)
        tmp.rename(path)
    except OSError:
        pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@functools.lru_cache(maxsize=2)
def random_model(shape: str, seed: int = 0, layers: int | None = None) -> QBertParams:
    """``random_qbert`` of the named preset (``layers`` overrides its depth), shared within a
    process (treat it as read-only) and across processes through a disk cache
    (``cache_dir``): drawing BERT-base's ~100 M weights takes ~3 s, loading them 0.3 s."""
    path = cache_dir(shape, seed, layers)
    if (path / PARAMS_FILE).is_file():
        try:
            return QBertParams.load(path)
        except Exception:  # a damaged cache entry: draw again
            shutil.rmtree(path, ignore_errors=True)
    kw = {} if layers is None else {"layers": layers}
    params = random_qbert(preset(shape, **kw), seed=seed)
    _store(params, path)
    return params


def random_config(shape: str, seed: int = 0, layers: int | None = None) -> QBertConfig:
    """The public config of ``random_model(shape, seed, layers)``: read from the disk cache
    when it is there, so P0 and P1 never draw (or hold) the owner's weights."""
    path = cache_dir(shape, seed, layers)
    if (path / CONFIG_FILE).is_file():
        try:
            return load_config(path)
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return random_model(shape, seed, layers).config
