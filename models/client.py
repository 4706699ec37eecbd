"""The client's plaintext part of an inference: text -> int8 embeddings + padding mask.

Everything here uses PUBLIC data only: the tokenizer, the pretrained word / position /
token-type embedding tables and the embedding LayerNorm (frozen in fine-tuning), the public
sequence length L and the public input format of the quantized model. The client

1. tokenizes and pads / truncates to exactly L tokens ([CLS] ... [SEP] [PAD]...);
2. looks up word + position + token-type embeddings and applies the embedding LayerNorm
   in float (``BertEmbeddings`` in eval mode, or ``embedder``'s module: the same torch ops
   in the same order, without importing transformers);
3. quantizes to int8 in the input format: x = clamp(round(e * 2^in_frac), -128, 127)
   (round half to even);
4. returns (x_int8 [L, d], mask [L]) with mask[j] = 1 for a real token, 0 for padding.

No secret is involved; the cost is one float embedding pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

INT8_LO, INT8_HI = -128, 127
DEFAULT_INPUT_FRAC = 4  # the input format of configs without an ``input_frac`` field


def input_frac(config) -> int:
    """The public input format's fractional bits (int8 in units 2^-in_frac)."""
    return int(getattr(config, "input_frac", DEFAULT_INPUT_FRAC))


PAD = "[PAD]"


def _backend(tokenizer):
    """The ``tokenizers.Tokenizer`` behind a Hugging Face fast tokenizer (or the argument
    itself): one code path for the client folder's tokenizer.json and a checkpoint's."""
    return getattr(tokenizer, "backend_tokenizer", tokenizer)


def count_tokens(text: str, tokenizer) -> int:
    """Tokens of ``text`` with [CLS] and [SEP], untruncated."""
    tok = _backend(tokenizer)
    tok.no_truncation()
    tok.no_padding()
    return len(tok.encode(text).ids)


def encode(texts: Sequence[str], tokenizer, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids [n, L] and padding mask [n, L] (1 = token, 0 = padding), L = seq_len:
    [CLS] ... [SEP] truncated to L, right-padded with [PAD] (as Hugging Face's
    ``padding="max_length", truncation=True``)."""
    if seq_len < 2:
        raise ValueError(f"seq_len={seq_len} leaves no room for [CLS] and [SEP]")
    tok = _backend(tokenizer)
    pad_id = tok.token_to_id(PAD)
    if pad_id is None:
        raise ValueError(f"the tokenizer has no {PAD} token")
    tok.enable_truncation(max_length=seq_len)
    tok.enable_padding(length=seq_len, pad_id=pad_id, pad_token=PAD)
    encs = tok.encode_batch(list(texts))
    ids = np.array([e.ids for e in encs], dtype=np.int64).reshape(len(encs), -1)
    mask = np.array([e.attention_mask for e in encs], dtype=np.uint8).reshape(len(encs), -1)
    if ids.shape[1] != seq_len:
        raise ValueError(f"tokenizer returned {ids.shape[1]} tokens, expected {seq_len}")
    return ids, mask


def embedder(tables: dict, eps: float):
    """A torch module computing ``BertEmbeddings`` (eval mode) from its state dict
    ``tables`` with the same ops in the same order (word + token type, + position,
    LayerNorm): the same floats, without importing transformers (~2 s)."""
    import torch
    import torch.nn.functional as F

    class Embeddings(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for k in ("word", "position", "token_type"):
                w = torch.nn.Parameter(tables[f"{k}_embeddings.weight"], requires_grad=False)
                self.register_parameter(f"{k}_weight", w)
            self.ln_weight = torch.nn.Parameter(tables["LayerNorm.weight"], requires_grad=False)
            self.ln_bias = torch.nn.Parameter(tables["LayerNorm.bias"], requires_grad=False)

        def forward(self, input_ids, token_type_ids):
            e = F.embedding(input_ids, self.word_weight)
            e = e + F.embedding(token_type_ids, self.token_type_weight)
            pos = torch.arange(input_ids.shape[1], dtype=torch.long)[None, :]
            e = e + F.embedding(pos, self.position_weight)
            return F.layer_norm(e, (e.shape[-1],), self.ln_weight, self.ln_bias, eps)

    return Embeddings().eval()


def embed(embeddings_module, ids: np.ndarray) -> np.ndarray:
    """Float embeddings (after the embedding LayerNorm) [n, L, d] of token ids [n, L];
    token type 0 everywhere (single-sentence classification)."""
    import torch

    was_training = embeddings_module.training
    embeddings_module.eval()
    try:
        with torch.inference_mode():
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
