"""The quantized BERT as integers: public config (shapes, bit-widths, formats, shifts, rings)
and the owner's private parameters, saved as ``config.json`` (public) + ``params.safetensors``
(private, P2 only).

Folding (the owner's job, see the lead's design): a linear layer y = x W + b with int8 input
x is stored as an integer weight W_int (8, 4 or 1 bit: |W_int| <= 2^(bits-1) - 1, or +-1),
per-output-channel integer multipliers m_j and an integer bias b'_j; the layer's accumulator
is acc = x W' + b' with W'[:, j] = W_int[:, j] m_j. All scales live in m and b', so what
follows acc is public: a shift c and a table (requant), or a residual add in a common scale
(the residual input times a public 2^t). LayerNorm gamma/beta are integers in units of
2^-gamma_frac output LSBs (``protocols.layernorm``).

Rings: a linear layer's accumulator ring is sized from the worst case of its weights,
128 sum_i |W'_ij| + |b'_j| < 2^(ring - 1) (so x W' + b' never wraps), and at least what its
consumer reads: c + index bits for a requant. A residual branch's ring holds the residual
sum; the attention output's is at least LayerNorm 1's ring (``ln_ring``), while FFN2 and
its residual run in a ring one bit wider than their worst case and are extended to
LayerNorm 2's ring (``convert.extend_bounded``, 1 round) only then: the GELU outputs, the
FFN2 product and its input opening stay narrow (34 instead of 63 bits in BERT-base).
``with_rings`` derives them from the weights; they are public (the width leaks only a bound
on the largest column norm).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from protocols import layernorm as LN
from protocols.activations import GELU_IN, GELU_OUT, Fixed
from protocols.softmax import SoftmaxFormat

FORMAT = "qbert-mpc/qbert-int/v1"
CONFIG_FILE, PARAMS_FILE = "config.json", "params.safetensors"
KINDS = ("qkv", "attn_out", "ffn1", "ffn2", "pooler", "classifier")
LAYER_LINEARS = {"q": "qkv", "k": "qkv", "v": "qkv", "o": "attn_out", "f1": "ffn1", "f2": "ffn2"}
ACT_MAX = 128  # |int8 activation| <= 128: the worst-case input of every linear layer


@dataclass(frozen=True)
class LayerFormat:
    """Public shifts and rings of one encoder layer."""

    ring_qkv: int  # Q, K, V linear accumulator ring
    c_qkv: int  # requant shift of Q, K, V to int8
    c_scores: int  # requant shift of Q K^T (units of the softmax input 2^-in_frac)
    ring_attn: int  # attention-output linear and residual 1 (>= LayerNorm 1's ring)
    t_attn: int  # residual 1 = x 2^t_attn + acc
    ln1: LN.LayerNormFormat
    ring_ffn1: int
    c_ffn1: int  # requant shift of FFN1 into the GELU input format
    ring_ffn2: int  # FFN2 linear and residual 2 (LayerNorm 2 reads them extended)
    t_ffn2: int
    ln2: LN.LayerNormFormat


@dataclass(frozen=True)
class HeadFormat:
    ring_pool: int
    c_pool: int  # requant shift of the pooler into the tanh input format
    ring_cls: int  # classifier ring = ring of the revealed integer logits


@dataclass(frozen=True)
class QBertConfig:
    """Public description of a quantized BERT classifier (no vocabulary: the client embeds)."""

    layers: int
    hidden: int
    heads: int
    ffn: int
    labels: int = 2
    seq_len: int = 128  # default padded length (any length works with the same model)
    w_bits: dict = field(default_factory=lambda: dict.fromkeys(KINDS, 8))
    act_bits: int = 8
    input_frac: int = 4  # the client's int8 embeddings are in units 2^-input_frac
    idx_bits: int = 9  # requant index bits of int8 outputs (saturation up to 2x the range)
    score_idx_bits: int = 9  # score requant index (>= softmax in_bits)
    softmax: SoftmaxFormat = SoftmaxFormat()
    gelu_in: Fixed = GELU_IN
    gelu_out: Fixed = GELU_OUT
    tanh_in: Fixed = Fixed(5, 9)  # pooler tanh input; output round(127 tanh) in [-127, 127]
    layer_formats: tuple = ()  # LayerFormat per layer (empty until a model is built)
    head: HeadFormat | None = None

    def __post_init__(self):
        if min(self.layers, self.hidden, self.heads, self.ffn, self.labels, self.seq_len) < 1:
            raise ValueError("layers, hidden, heads, ffn, labels and seq_len must be positive")
        if self.hidden % self.heads:
            raise ValueError(f"hidden={self.hidden} is not a multiple of heads={self.heads}")
        if self.act_bits != 8:
            raise ValueError("activations are int8 (act_bits=8)")
        if set(self.w_bits) != set(KINDS) or any(b not in (1, 4, 8) for b in self.w_bits.values()):
            raise ValueError(f"w_bits must give 1, 4 or 8 bits for each of {KINDS}")
        if not self.softmax.in_bits <= self.score_idx_bits <= 11 or not 8 <= self.idx_bits <= 11:
            raise ValueError("idx_bits in 8..11 and score_idx_bits in softmax.in_bits..11")
        if self.softmax.out_bits != 8 or self.softmax.out_one >= 256:
            raise ValueError("the model reads softmax outputs as uint8 (out_bits=8)")
        if self.layer_formats and len(self.layer_formats) != self.layers:
            raise ValueError(f"{len(self.layer_formats)} layer formats for {self.layers} layers")

    # -- derived public quantities ------------------------------------------------------
    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def built(self) -> bool:
        return len(self.layer_formats) == self.layers and self.head is not None

    def score_ring(self, lf: LayerFormat) -> int:
        """Ring of Q K^T: the score requant reads exactly c_scores + score_idx_bits bits,
        plus the top bit that marks padded keys."""
        return lf.c_scores + self.score_idx_bits + 1

    @property
    def ctx_shift(self) -> int:
        """P V >> ctx_shift keeps V's scale (the owner folds out_one / 2^shift into W_o)."""
        return self.softmax.out_one.bit_length()

    @property
    def ctx_ring(self) -> int:
        return self.ctx_shift + self.idx_bits

    def qkv_out_ring(self, lf: LayerFormat) -> int:
        return max(self.score_ring(lf), self.ctx_ring)

    def layer_in_ring(self, i: int) -> int:
        """Ring of layer i's int8 input: its QKV linear's, and ring_attn - t_attn for the
        residual (x 2^t mod 2^R needs x mod 2^(R-t) only); i = layers: the pooler's."""
        if i == self.layers:
            return self.head.ring_pool
        lf = self.layer_formats[i]
        return max(lf.ring_qkv, lf.ring_attn - lf.t_attn)

    def ln_ring(self, fmt: LN.LayerNormFormat, x_ring: int) -> int:
        """Ring a LayerNorm of this format runs in on an input over Z_2^x_ring: its
        ``ln_need``, or the input's ring if wider (no extension then)."""
        return max(ln_need(self.hidden, fmt), x_ring)

    def ln1_out_ring(self, lf: LayerFormat) -> int:
        """Ring of LayerNorm 1's int8 output: FFN1's input and FFN2's residual."""
        return max(lf.ring_ffn1, lf.ring_ffn2 - lf.t_ffn2)

    @property
    def input_ring(self) -> int:
        return self.layer_in_ring(0)

    @property
    def mask_ring(self) -> int:
        """The client's mask input ring (the pipeline reads only its low bit)."""
        return self.softmax.in_bits + 1

    def linears(self) -> dict[str, tuple[tuple[int, int], str]]:
        """name -> ((d_in, d_out), kind) of every linear layer, in pipeline order."""
        d, f = self.hidden, self.ffn
        dims = {"q": (d, d), "k": (d, d), "v": (d, d), "o": (d, d), "f1": (d, f), "f2": (f, d)}
        out = {}
        for i in range(self.layers):
            for n, kind in LAYER_LINEARS.items():
                out[f"layer{i}.{n}"] = (dims[n], kind)
        out["pooler"] = ((d, d), "pooler")
        out["classifier"] = ((d, self.labels), "classifier")
        return out

    def ring_of(self, name: str) -> int:
        if name == "pooler":
            return self.head.ring_pool
        if name == "classifier":
            return self.head.ring_cls
        i, n = name.split(".")
        lf = self.layer_formats[int(i[5:])]
        rings = {"o": lf.ring_attn, "f1": lf.ring_ffn1, "f2": lf.ring_ffn2}
        return rings.get(n, lf.ring_qkv)

    # -- JSON -----------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {"format": FORMAT, "config": asdict(self)}

    @classmethod
    def from_json(cls, obj: dict) -> QBertConfig:
        if obj.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} config")
        c = dict(obj["config"])
        c["softmax"] = SoftmaxFormat(**c["softmax"])
        for k in ("gelu_in", "gelu_out", "tanh_in"):
            c[k] = Fixed(**c[k])
        c["layer_formats"] = tuple(
            LayerFormat(
                **{
                    **lf,
                    "ln1": LN.LayerNormFormat(**lf["ln1"]),
                    "ln2": LN.LayerNormFormat(**lf["ln2"]),
                }
            )
            for lf in c["layer_formats"]
        )
        c["head"] = HeadFormat(**c["head"]) if c["head"] is not None else None
        return cls(**c)

    def digest(self) -> str:
        import hashlib

        blob = json.dumps(self.to_json(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


PRESETS = {
    "tiny": dict(layers=2, hidden=32, heads=2, ffn=64, seq_len=8),
    "minilm": dict(layers=6, hidden=384, heads=12, ffn=1536, seq_len=32),
    "bert-base": dict(layers=12, hidden=768, heads=12, ffn=3072, seq_len=128),
}


def preset(name: str, **kw) -> QBertConfig:
    """Shape-only config of a named preset (formats come with a model)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return QBertConfig(**{**PRESETS[name], **kw})


# -- worst-case rings ---------------------------------------------------------------------
def bits_for(bound: int) -> int:
    """Ring width holding every signed integer of magnitude <= bound."""
    return int(bound).bit_length() + 1


def linear_bound(w_folded: np.ndarray, b: np.ndarray, extra: int = 0) -> int:
    """max_j ACT_MAX sum_i |W'_ij| + |b'_j| + extra: the largest |x W' + b'| (+ extra)."""
    col = np.abs(w_folded).sum(axis=0, dtype=np.int64)
    return int((ACT_MAX * col + np.abs(b)).max()) + int(extra)


def ln_need(d: int, fmt: LN.LayerNormFormat) -> int:
    """Smallest ring of a LayerNorm input of width d in this format (may exceed 64)."""
    p = LN.plan(d, 1 << 16, fmt)  # the ring only bounds the plan: ask without a limit
    return max(p.a + p.c + p.hb, p.Vt)


def with_rings(cfg: QBertConfig, tensors: dict[str, np.ndarray]) -> QBertConfig:
    """Fill every ring of ``cfg``'s formats (shifts must already be set). An accumulator
    that only a requant reads (Q/K/V, FFN1, pooler) lives in exactly the c + index bits the
    requant indexes: higher bits never reach its output (an index beyond the table wraps in
    the reference too). The others (attention output and FFN2 with their residuals, the
    classifier's logits) hold their worst case over every int8 input, from the weights."""

    def wf(name):
        return tensors[name + ".w"].astype(np.int64) * tensors[name + ".m"].astype(np.int64)

    def ring(name, floor, extra=0, spare=0):
        r = max(bits_for(linear_bound(wf(name), tensors[name + ".b"], extra)) + spare, floor)
        if r > 64:
            raise ValueError(f"{name}: accumulator needs a {r}-bit ring (> 64)")
        return r

    lfs = []
    for i, lf in enumerate(cfg.layer_formats):
        p, d = f"layer{i}.", cfg.hidden
        rq = lf.c_qkv + cfg.idx_bits
        ra = ring(p + "o", ln_need(d, lf.ln1), ACT_MAX << lf.t_attn)
        r1 = lf.c_ffn1 + cfg.gelu_in.bits
        # one spare bit: extend_bounded needs |x| < 2^(ring - 2)
        r2 = ring(p + "f2", 2, ACT_MAX << lf.t_ffn2, spare=1)
        lfs.append(replace(lf, ring_qkv=rq, ring_attn=ra, ring_ffn1=r1, ring_ffn2=r2))
    h = cfg.head
    head = replace(
        h,
        ring_pool=h.c_pool + cfg.tanh_in.bits,
        ring_cls=ring("classifier", 2),
    )
    return replace(cfg, layer_formats=tuple(lfs), head=head)


# -- private parameters ---------------------------------------------------------------------
def _w_range(bits: int) -> tuple[int, int]:
    return (-1, 1) if bits == 1 else (-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1)


@dataclass
class QBertParams:
    """The owner's integers: for each linear ``name`` (``layer{i}.{q,k,v,o,f1,f2}``,
    ``pooler``, ``classifier``) ``name.w`` (int8 W_int), ``name.m`` (int32 multipliers),
    ``name.b`` (int64 b'); ``layer{i}.ln{1,2}.g`` / ``.b`` (int64 gamma / beta)."""

    config: QBertConfig
    tensors: dict[str, np.ndarray]

    def weight(self, name: str) -> np.ndarray:
        """Folded W' = W_int diag(m) as int64."""
        w, m = self.factors(name)
        return w.astype(np.int64) * m[None, :]

    def factors(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(W_int as stored (int8), m as int64): W' = W_int diag(m)."""
        t = self.tensors
        return t[name + ".w"], t[name + ".m"].astype(np.int64)

    def bias(self, name: str) -> np.ndarray:
        return self.tensors[name + ".b"].astype(np.int64)

    def ln(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return self.tensors[name + ".g"].astype(np.int64), self.tensors[name + ".b"].astype(
            np.int64
        )

    def validate(self) -> None:
        """Shapes, bit-widths and rings consistent with the config (raises ValueError)."""
        cfg, t = self.config, self.tensors
        if not cfg.built:
            raise ValueError("the config has no formats: build the model first")
        for name, ((di, do), kind) in cfg.linears().items():
            w, m, b = (t.get(name + s) for s in (".w", ".m", ".b"))
            if w is None or m is None or b is None:
                raise ValueError(f"missing tensors of {name}")
            if w.shape != (di, do) or m.shape != (do,) or b.shape != (do,):
                raise ValueError(f"{name}: tensor shapes do not match the config")
            lo, hi = _w_range(cfg.w_bits[kind])
            if w.size and (int(w.min()) < lo or int(w.max()) > hi):
                raise ValueError(f"{name}: weights outside {cfg.w_bits[kind]}-bit range")
            if cfg.w_bits[kind] == 1 and not np.isin(w, (-1, 1)).all():
                raise ValueError(f"{name}: 1-bit weights must be +-1")
        for i, lf in enumerate(cfg.layer_formats):
            for j, fmt in ((1, lf.ln1), (2, lf.ln2)):
                lim = 1 << (fmt.gamma_bits - 1)
                for s in (".g", ".b"):
                    v = t.get(f"layer{i}.ln{j}{s}")
                    if v is None or v.shape != (cfg.hidden,):
                        raise ValueError(f"layer{i}.ln{j}{s} missing or of a wrong shape")
                    if int(v.min()) < -lim or int(v.max()) >= lim:
                        raise ValueError(f"layer{i}.ln{j}{s} outside {fmt.gamma_bits} bits")
        if with_rings(cfg, t) != cfg:
            raise ValueError("the config's rings do not match the weights' worst case")

    def save(self, path) -> None:
        from safetensors.numpy import save_file

        self.validate()
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG_FILE).write_text(json.dumps(self.config.to_json(), indent=1))
        save_file({k: np.ascontiguousarray(v) for k, v in self.tensors.items()}, out / PARAMS_FILE)

    @classmethod
    def load(cls, path) -> QBertParams:
        from safetensors.numpy import load_file

        p = cls(load_config(path), dict(load_file(Path(path) / PARAMS_FILE)))
        p.validate()
        return p


def load_config(path) -> QBertConfig:
    """The public half of a saved model (what P0 and P1 read)."""
    return QBertConfig.from_json(json.loads((Path(path) / CONFIG_FILE).read_text()))
