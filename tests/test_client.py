"""The client's plaintext path without transformers: the tokenizer.json backend and the
torch embedder give exactly what Hugging Face's tokenizer call and BertEmbeddings give."""

import numpy as np
import torch

from models.client import count_tokens, embed, embedder, encode

TEXTS = [
    "A gripping, beautifully acted film that stays with you long after it ends.",
    "Dull.",
    "unbelievably OVERLONG and self-indulgent... 2/10 " * 6,
    "",
]


def test_encode_and_count_match_hugging_face():
    from models.checkpoint import load_tokenizer

    hf = load_tokenizer()
    for L in (2, 8, 32):
        want = hf(TEXTS, padding="max_length", truncation=True, max_length=L, return_tensors="np")
        ids, mask = encode(TEXTS, hf.backend_tokenizer, L)
        assert (ids == want["input_ids"]).all() and (mask == want["attention_mask"]).all()
        assert ids.dtype == np.int64 and mask.dtype == np.uint8
    for t in TEXTS:  # after encode's truncation/padding settings: counts are untruncated
        assert count_tokens(t, hf) == len(hf(t, truncation=False)["input_ids"])


def test_embedder_is_bit_exact_with_bert_embeddings():
    from transformers import BertConfig
    from transformers.models.bert.modeling_bert import BertEmbeddings

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=50, hidden_size=24, max_position_embeddings=16, layer_norm_eps=1e-7)
    ref = BertEmbeddings(cfg).eval()
    with torch.no_grad():
        ref.LayerNorm.weight.normal_()
        ref.LayerNorm.bias.normal_()
    ours = embedder(dict(ref.state_dict()), cfg.layer_norm_eps)
    ids = np.random.default_rng(1).integers(0, 50, (3, 16))
    assert (embed(ours, ids) == embed(ref, ids)).all()


def test_missing_tokenizer_is_a_one_line_model_error(tmp_path):
    import shutil

    import pytest

    from models.saved import ClientSide, ModelError, default_model

    folder = tmp_path / "m"
    shutil.copytree(default_model(progress=False), folder)
    (folder / "client" / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match="tokenizer.json is missing: the client's tokenizer"):
        ClientSide(folder)
