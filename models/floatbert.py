"""The float sentiment classifier in plain torch, for the main command's "float model" line.

``logits(state, texts, seq_len)`` runs ``BertForSequenceClassification`` (eval mode) from
its state dict (``models.checkpoint.classifier_state``) with torch ops only: embeddings as
the client computes them (``models.client.embedder``), then per layer self-attention with
the additive -inf-like mask, residual LayerNorms, the exact (erf) GELU, the tanh pooler and
the classifier. Same predictions as the transformers model (tests/test_floatbert.py), and no
transformers import (~2 s of the main command's time after the run).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np


def _config() -> dict:
    from models.checkpoint import base_model_path

    return json.loads((base_model_path() / "config.json").read_text())


def logits(state: dict, tokenizer, texts: Sequence[str], seq_len: int) -> np.ndarray:
    """Float logits [n, labels] of ``texts`` padded to ``seq_len`` tokens (float64)."""
    import torch
    import torch.nn.functional as F

    from models.client import embedder, encode

    cfg = _config()
    eps, heads = float(cfg["layer_norm_eps"]), int(cfg["num_attention_heads"])
    if cfg.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"hidden_act {cfg['hidden_act']!r}: only the erf GELU is implemented")
    ids, mask = encode(texts, tokenizer, seq_len)
    pre = "bert.embeddings."
    emb = embedder({k[len(pre) :]: v for k, v in state.items() if k.startswith(pre)}, eps)

    def dense(x, name):
        return F.linear(x, state[name + ".weight"], state[name + ".bias"])

    def norm(x, name):
        return F.layer_norm(x, (x.shape[-1],), state[name + ".weight"], state[name + ".bias"], eps)

    with torch.inference_mode():
        t = torch.as_tensor(ids, dtype=torch.long)
        h = emb(t, torch.zeros_like(t))
        n, L, d = h.shape
        dh = d // heads
        bias = (1.0 - torch.as_tensor(mask, dtype=h.dtype))[:, None, None, :]
        bias = bias * torch.finfo(h.dtype).min
        for i in range(int(cfg["num_hidden_layers"])):
            p = f"bert.encoder.layer.{i}."
            q, k, v = (
                dense(h, p + "attention.self." + w).view(n, L, heads, dh).transpose(1, 2)
                for w in ("query", "key", "value")
            )
            s = q @ k.transpose(-1, -2) / math.sqrt(dh) + bias
            a = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(n, L, d)
            h1 = norm(dense(a, p + "attention.output.dense") + h, p + "attention.output.LayerNorm")
            f = F.gelu(dense(h1, p + "intermediate.dense"))
            h = norm(dense(f, p + "output.dense") + h1, p + "output.LayerNorm")
        pooled = torch.tanh(dense(h[:, 0], "bert.pooler.dense"))
        return dense(pooled, "classifier").to(torch.float64).numpy()
