"""The client's plaintext part of an inference: text -> int8 embeddings + padding mask.

Everything here uses PUBLIC data only: the tokenizer, the pretrained word / position /
token-type embedding tables and the embedding LayerNorm (frozen in fine-tuning), the public
sequence length L and the public input format of the quantized model. The client

1. tokenizes and pads / truncates to exactly L tokens ([CLS] ... [SEP] [PAD]...);
2. looks up word + position + token-type embeddings and applies the embedding LayerNorm
   in float (``BertEmbeddings`` in eval mode);
3. quantizes to int8 in the input format: x = clamp(round(e * 2^in_frac), -128, 127)
   (round half to even);
4. returns (x_int8 [L, d], mask [L]) with mask[j] = 1 for a real token, 0 for padding.

No secret is involved; the cost is one float embedding pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

INT8_LO, INT8_HI = -128, 127
DEFAULT_INPUT_FRAC = 4  # the input format of configs without an ``input_frac`` field


def input_frac(config) -> int:
    """The public input format's fractional bits (int8 in units 2^-in_frac)."""
    return int(getattr(config, "input_frac", DEFAULT_INPUT_FRAC))


def encode(texts: Sequence[str], tokenizer, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids [n, L] and padding mask [n, L] (1 = token, 0 = padding), L = seq_len."""
    if seq_len < 2:
        raise ValueError(f"seq_len={seq_len} leaves no room for [CLS] and [SEP]")
    enc = tokenizer(
        list(texts),
        padding="max_length",
        truncation=True,
        max_length=seq_len,
        return_tensors="np",
    )
    ids, mask = np.asarray(enc["input_ids"]), np.asarray(enc["attention_mask"])
    if ids.shape[1] != seq_len:
        raise ValueError(f"tokenizer returned {ids.shape[1]} tokens, expected {seq_len}")
    return ids.astype(np.int64), mask.astype(np.uint8)


@torch.inference_mode()
def embed(embeddings_module, ids: np.ndarray) -> np.ndarray:
    """Float embeddings (after the embedding LayerNorm) [n, L, d] of token ids [n, L];
    token type 0 everywhere (single-sentence classification)."""
    was_training = embeddings_module.training
    embeddings_module.eval()
    try:
        t = torch.as_tensor(ids, dtype=torch.long)
        out = embeddings_module(input_ids=t, token_type_ids=torch.zeros_like(t))
    finally:
        embeddings_module.train(was_training)
    return out.to(torch.float64).numpy()


def quantize_input(e: np.ndarray, frac: int) -> np.ndarray:
    """int8 x = clamp(round(e * 2^frac)) (half to even), as int64."""
    x = np.rint(np.asarray(e, dtype=np.float64) * 2.0**frac)
    return np.clip(x, INT8_LO, INT8_HI).astype(np.int64)


def client_inputs(
    texts: Sequence[str], tokenizer, embeddings_module, config
) -> tuple[np.ndarray, np.ndarray]:
    """Batched ``client_input``: (x_int8 [n, L, d], mask [n, L])."""
    ids, mask = encode(texts, tokenizer, int(config.seq_len))
    x = quantize_input(embed(embeddings_module, ids), input_frac(config))
    return x, mask


def client_input(text: str, tokenizer, embeddings_module, config) -> tuple[np.ndarray, np.ndarray]:
    """(x_int8 [L, d] as int64 in [-128, 127], mask [L] uint8: 1 token / 0 padding) for one
    sentence, with L = config.seq_len and the input format config.input_frac."""
    x, mask = client_inputs([text], tokenizer, embeddings_module, config)
    return x[0], mask[0]
