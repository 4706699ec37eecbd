"""Activation statistics of a float Hugging Face BERT classifier (calibration for ``quantize``).

Forward hooks on the encoder's modules record, over the NON-padding tokens of the
calibration sentences only, for every tensor the integer model quantizes:

* ``emb``: embedding LayerNorm output (the client's input to the secure model);
* per layer i: ``l{i}.q``, ``.k``, ``.v`` (projections), ``.scores`` (q kᵀ / sqrt(d_head)
  over valid query/key pairs), ``.ctx`` (attention context), ``.attn`` (attention output
  dense), ``.ln1_in`` / ``.ln1_out``, ``.ffn1`` (pre-GELU), ``.gelu``, ``.ffn2``,
  ``.ln2_in`` / ``.ln2_out``;
* ``pool`` (pooler dense, pre-tanh) and ``logits``.

Each ``Stat`` keeps the absolute maximum, a per-channel absolute maximum, a bounded
uniform sample of |values| (for percentiles), and for LayerNorm inputs the range of the
per-row standard deviation (sizes the public rsqrt window). With ``grams=True`` the input
of every linear layer ``name`` (the integer model's names: ``layer{i}.q`` ... ``pooler``)
also gets ``stats[name + ".x"].gram`` = X^T X over the valid tokens (for GPTQ).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

SAMPLE_PER_BATCH = 4096
SAMPLE_MAX = 1 << 17


@dataclass
class Stat:
    absmax: float = 0.0
    channel_absmax: np.ndarray | None = None
    row_std_min: float = math.inf
    row_std_max: float = 0.0
    sample: list[np.ndarray] = field(default_factory=list)
    count: int = 0
    gram: np.ndarray | None = None  # X^T X of a linear layer's input rows
    rows: int = 0

    def add_gram(self, x: torch.Tensor) -> None:
        x = x.detach().to(torch.float64).reshape(-1, x.shape[-1])
        g = (x.T @ x).numpy()
        self.gram = g if self.gram is None else self.gram + g
        self.rows += x.shape[0]

    def add(self, t: torch.Tensor, rng: np.random.Generator, rows: bool = False) -> None:
        """Fold a [n, ...] tensor of valid rows into the statistics."""
        t = t.detach().to(torch.float64)
        if t.numel() == 0:
            return
        a = t.abs()
        self.absmax = max(self.absmax, float(a.max()))
        ch = a.reshape(-1, a.shape[-1]).amax(0).numpy()
        prev = self.channel_absmax
        self.channel_absmax = ch if prev is None else np.maximum(prev, ch)
        if rows:
            sd = t.reshape(-1, t.shape[-1]).std(-1, unbiased=False)
            self.row_std_min = min(self.row_std_min, float(sd.min()))
            self.row_std_max = max(self.row_std_max, float(sd.max()))
        flat = a.reshape(-1).numpy()
        self.count += flat.size
        if sum(s.size for s in self.sample) < SAMPLE_MAX:
            k = min(flat.size, SAMPLE_PER_BATCH)
            self.sample.append(rng.choice(flat, k, replace=False) if k < flat.size else flat)

    def percentile(self, q: float) -> float:
        """q-th percentile of |x| over the sample (q = 100: the true absmax)."""
        if q >= 100 or not self.sample:
            return self.absmax
        return float(np.percentile(np.concatenate(self.sample), q))


class Calibrator:
    """Context manager installing the hooks on ``model`` (a BertForSequenceClassification);
    call ``run(input_ids, attention_mask, token_type_ids)`` per batch, read ``stats``."""

    def __init__(self, model, seed: int = 0, grams: bool = False):
        self.model, self.grams = model, grams
        self.stats: dict[str, Stat] = {}
        self.rng = np.random.default_rng(seed)
        self.mask: torch.Tensor | None = None
        self._qk: dict[str, torch.Tensor] = {}
        self._handles: list = []
        cfg = model.config
        self.heads = cfg.num_attention_heads
        self.d_head = cfg.hidden_size // cfg.num_attention_heads

    # -- recording ------------------------------------------------------------------------
    def _rec(self, name: str, t: torch.Tensor, rows: bool = False) -> None:
        valid = t[self.mask] if t.dim() == 3 else t
        self.stats.setdefault(name, Stat()).add(valid, self.rng, rows)

    def _scores(self, name: str) -> None:
        q, k = self._qk.pop(name + ".q"), self._qk.pop(name + ".k")
        n, L, _ = q.shape
        q = q.reshape(n, L, self.heads, self.d_head).transpose(1, 2)
        k = k.reshape(n, L, self.heads, self.d_head).transpose(1, 2)
        s = q @ k.transpose(-1, -2) / math.sqrt(self.d_head)
        m = self.mask
        valid = (m[:, None, :, None] & m[:, None, None, :]).expand_as(s)
        self.stats.setdefault(name + ".scores", Stat()).add(s[valid][:, None], self.rng)

    def _hook(self, module, name: str, what: str = "out", rows: bool = False):
        def fn(_mod, args, out):
            t = args[0] if what == "in" else out
            self._rec(name, t, rows)

        self._handles.append(module.register_forward_hook(fn))

    def _gram(self, module, name: str):
        def fn(_mod, args, _out):
            x = args[0]
            x = x[self.mask] if x.dim() == 3 else x
            self.stats.setdefault(name + ".x", Stat()).add_gram(x)

        self._handles.append(module.register_forward_hook(fn))

    def _keep(self, module, key: str, scores_of: str | None = None):
        def fn(_mod, _args, out):
            self._qk[key] = out.detach()
            if scores_of is not None:
                self._scores(scores_of)

        self._handles.append(module.register_forward_hook(fn))

    def __enter__(self) -> Calibrator:
        bert = self.model.bert
        self._hook(bert.embeddings, "emb")
        for i, layer in enumerate(bert.encoder.layer):
            p, att = f"l{i}", layer.attention
            self._hook(att.self.query, p + ".q")
            self._hook(att.self.key, p + ".k")
            self._hook(att.self.value, p + ".v")
            self._keep(att.self.query, p + ".q")
            self._keep(att.self.key, p + ".k", scores_of=p)
            self._hook(att.output.dense, p + ".ctx", "in")
            self._hook(att.output.dense, p + ".attn")
            self._hook(att.output.LayerNorm, p + ".ln1_in", "in", rows=True)
            self._hook(att.output.LayerNorm, p + ".ln1_out")
            self._hook(layer.intermediate.dense, p + ".ffn1")
            self._hook(layer.intermediate, p + ".gelu")
            self._hook(layer.output.dense, p + ".ffn2")
            self._hook(layer.output.LayerNorm, p + ".ln2_in", "in", rows=True)
            self._hook(layer.output.LayerNorm, p + ".ln2_out")
        self._hook(bert.pooler.dense, "pool")
        self._hook(self.model.classifier, "logits")
        if self.grams:
            for i, layer in enumerate(bert.encoder.layer):
                att, p = layer.attention, f"layer{i}."
                for n, mod in (
                    ("q", att.self.query),
                    ("k", att.self.key),
                    ("v", att.self.value),
                    ("o", att.output.dense),
                    ("f1", layer.intermediate.dense),
                    ("f2", layer.output.dense),
                ):
                    self._gram(mod, p + n)
            self._gram(bert.pooler.dense, "pooler")
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    @torch.inference_mode()
    def run(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        self.mask = attention_mask.bool()
        out = self.model(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        )
        return out.logits


def texts_of(sentences: Sequence) -> list[str]:
    """Plain strings from strings or (text, label) pairs."""
    return [s if isinstance(s, str) else s[0] for s in sentences]


def collect(
    model,
    tokenizer,
    sentences: Sequence,
    seq_len: int,
    batch_size: int = 32,
    seed: int = 0,
    grams: bool = False,
    progress: bool = False,
) -> dict[str, Stat]:
    """Statistics of every quantized tensor of ``model`` over ``sentences`` (strings or
    (text, label) pairs), truncated to ``seq_len`` tokens; ``grams``: also the input Gram
    matrices of the linear layers; ``progress``: a progress bar on stderr."""
    from tqdm import tqdm

    texts = texts_of(sentences)
    if not texts:
        raise ValueError("calibration needs at least one sentence")
    was_training = model.training
    model.eval()
    try:
        bar = tqdm(total=len(texts), desc="calibration", unit="sent", disable=not progress)
        with Calibrator(model, seed, grams) as cal, bar:
            for s in range(0, len(texts), batch_size):
                enc = tokenizer(
                    texts[s : s + batch_size],
                    padding=True,
                    truncation=True,
                    max_length=seq_len,
                    return_tensors="pt",
                )
                cal.run(enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids"))
                bar.update(len(enc["input_ids"]))
    finally:
        model.train(was_training)
    return cal.stats
