"""Float HF BERT -> integer model: weight quantization, calibration, client, end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import calibrate, client, quantize
from models.ops_plain import reference_logits
from models.qmodel import QBertParams, with_rings

WORDS = (
    "good great bad awful movie film plot actor boring fun love hate the a was is very not "
    "and it this but so really best worst story music ending"
).split()
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


# -- weights --------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [8, 4])
def test_quant_weight_multibit(bits):
    rng = np.random.default_rng(bits)
    w = rng.normal(0, 0.05, (6, 40))
    q, s = quantize.quant_weight(w, bits)
    top = 2 ** (bits - 1) - 1
    assert q.shape == (40, 6) and q.dtype == np.int8 and np.abs(q).max() <= top
    err = np.abs(q.T * s[:, None] - w)
    if bits == 8:  # absmax scale: error <= half a step, extremes hit +-top
        assert np.all(err <= s[:, None] / 2 + 1e-12)
        assert np.all(np.abs(q).max(axis=0) == top)
    # the 4-bit MSE clip is never worse than plain absmax
    sa = np.abs(w).max(axis=1) / top
    qa = np.clip(np.rint(w / sa[:, None]), -top, top) * sa[:, None]
    assert np.all(((q.T * s[:, None] - w) ** 2).sum(1) <= ((qa - w) ** 2).sum(1) + 1e-15)


def test_quant_weight_binary():
    w = np.array([[0.5, -0.25, 0.0, -1.0], [2.0, 2.0, -2.0, 2.0]])
    q, s = quantize.quant_weight(w, 1)
    assert q.T.tolist() == [[1, -1, 1, -1], [1, 1, -1, 1]]
    assert np.allclose(s, [0.4375, 2.0])


@pytest.mark.parametrize("bits", [4, 1])
def test_gptq_beats_rounding_on_the_layer_output(bits):
    rng = np.random.default_rng(bits)
    x = rng.normal(size=(300, 24)) @ rng.normal(size=(24, 24))  # correlated inputs
    w = rng.normal(0, 0.1, (8, 24))
    q0, s = quantize.quant_weight(w, bits)
    q1 = quantize.gptq(w, s, bits, x.T @ x)
    assert q1.shape == q0.shape and q1.dtype == np.int8
    assert set(np.unique(q1)) <= ({-1, 1} if bits == 1 else set(range(-7, 8)))
    err0 = np.linalg.norm(x @ (w.T - q0 * s))
    err1 = np.linalg.norm(x @ (w.T - q1 * s))
    assert err1 < 0.9 * err0


def test_shift_and_fold():
    ratio = np.array([0.01, 0.003, 0.0])
    c = quantize.shift_for(ratio, 10)
    assert round(0.01 * 2**c) < 2**10 <= round(0.01 * 2 ** (c + 1))
    m, b = quantize.fold(np.array([0.5, 0.25]), np.array([1.0, -2.0]), 0.1, 0.05, 3)
    assert m.tolist() == [8, 4] and b.tolist() == [160, -320]


def test_normalize_bits():
    assert quantize.normalize_bits(None)["qkv"] == 8
    b = quantize.normalize_bits({"weights": 1})
    assert b["ffn2"] == 1 and b["classifier"] == 8
    assert quantize.normalize_bits({"weights": 4, "classifier": 4})["classifier"] == 4
    for bad in ({"weights": 3}, {"activations": 4}, {"nope": 8}):
        with pytest.raises(ValueError):
            quantize.normalize_bits(bad)


# -- a tiny random HF model -----------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    vocab = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab.write_text("\n".join(SPECIALS + WORDS) + "\n")
    tok = BertTokenizer(str(vocab))
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(SPECIALS) + len(WORDS),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=2,
        initializer_range=0.2,
    )
    model = BertForSequenceClassification(cfg).eval()
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, rng.integers(3, 12))) for _ in range(48)]
    return model, tok, texts


def _int_logits(params, cfg, model, tok, texts):
    x, mask = client.client_inputs(texts, tok, model.bert.embeddings, cfg)
    return np.array([reference_logits(params, cfg, x[j], mask[j]) for j in range(len(x))])


def _float_logits(model, tok, texts, seq_len):
    ids, mask = client.encode(texts, tok, seq_len)
    with torch.inference_mode():
        out = model(input_ids=torch.as_tensor(ids), attention_mask=torch.as_tensor(mask)).logits
    return out.double().numpy()


def test_tiny_model_integer_logits_track_float(tiny):
    model, tok, texts = tiny
    opts = quantize.Options(seq_len=16)
    cfg, params = quantize.quantize(model, texts[:32], tokenizer=tok, options=opts)
    assert cfg.seq_len == 16 and cfg.layers == 2 and cfg.hidden == 32
    assert with_rings(cfg, params.tensors) == cfg  # rings = worst case of the weights
    for lf in cfg.layer_formats:
        assert lf.ring_attn <= 64 and lf.ring_ffn2 <= 64
    f = _float_logits(model, tok, texts, 16)
    q = _int_logits(params, cfg, model, tok, texts)
    df, dq = f[:, 1] - f[:, 0], (q[:, 1] - q[:, 0]).astype(np.float64)
    assert np.corrcoef(df, dq)[0, 1] > 0.95
    assert np.mean((df > 0) == (dq > 0)) >= 0.85


@pytest.mark.parametrize("bits", [4, 1])
def test_tiny_model_low_bit_paths(tiny, bits, tmp_path):
    model, tok, texts = tiny
    stats = calibrate.collect(model, tok, texts[:16], 16)
    cfg, params = quantize.quantize(
        model, None, {"weights": bits}, options=quantize.Options(seq_len=16), stats=stats
    )
    assert cfg.w_bits["ffn1"] == bits and cfg.w_bits["classifier"] == 8
    w = params.tensors["layer0.f1.w"]
    assert set(np.unique(w)) <= ({-1, 1} if bits == 1 else set(range(-7, 8)))
    params.save(tmp_path)
    loaded = QBertParams.load(tmp_path)
    assert loaded.config == cfg
    q = _int_logits(loaded, cfg, model, tok, texts[:4])
    assert q.shape == (4, 2) and q.dtype == np.int64
    if bits == 4:
        f = _float_logits(model, tok, texts, 16)
        q = _int_logits(params, cfg, model, tok, texts)
        assert np.corrcoef(f[:, 1] - f[:, 0], q[:, 1] - q[:, 0])[0, 1] > 0.8


def test_calibration_ignores_padding(tiny):
    model, tok, texts = tiny
    one = calibrate.collect(model, tok, texts[:6], 16, batch_size=1)
    six = calibrate.collect(model, tok, texts[:6], 16, batch_size=6)
    for name in ("emb", "l0.q", "l0.scores", "l1.ln2_in", "pool"):
        assert one[name].absmax == pytest.approx(six[name].absmax, rel=1e-5), name
    assert one["l1.ln2_in"].row_std_min == pytest.approx(six["l1.ln2_in"].row_std_min, 1e-5)
    assert six["l0.scores"].count == sum(
        2 * (len(tok(t)["input_ids"]) ** 2) for t in texts[:6]
    )  # 2 heads x valid query-key pairs


def test_client_input(tiny):
    model, tok, texts = tiny

    class Cfg:
        seq_len = 12

    x, mask = client.client_input(texts[0], tok, model.bert.embeddings, Cfg)
    n = len(tok(texts[0])["input_ids"])
    assert x.shape == (12, 32) and mask.tolist() == [1] * n + [0] * (12 - n)
    ids, _ = client.encode([texts[0]], tok, 12)
    e = client.embed(model.bert.embeddings, ids)[0]
    frac = quantize.input_frac_of(Cfg)
    assert np.array_equal(x, np.clip(np.rint(e * 2.0**frac), -128, 127))
    with pytest.raises(ValueError):
        client.encode(["x"], tok, 1)


# -- the real classifier --------------------------------------------------------------------
OBVIOUS = [
    ("This movie was wonderful, I loved every minute of it.", 1),
    ("A brilliant, moving and beautifully acted film.", 1),
    ("Terrible, boring and a complete waste of time.", 0),
    ("The worst film I have ever seen, awful acting.", 0),
]


def test_minilm_w8a8_agrees_with_float_on_obvious_sentences(minilm):
    model, tok = minilm
    calib = [
        "an entertaining, funny and heartfelt story",
        "dull characters and a plot that goes nowhere",
        "it is neither great nor bad, just a film",
        "the music is lovely but the ending is a mess",
        "one of the best performances of the year",
        "i wanted to leave after twenty minutes",
    ]
    opts = quantize.Options(seq_len=24)
    cfg, params = quantize.quantize(model, calib, tokenizer=tok, options=opts)
    texts, ys = [t for t, _ in OBVIOUS], [y for _, y in OBVIOUS]
    f = _float_logits(model, tok, texts, 24).argmax(1)
    q = _int_logits(params, cfg, model, tok, texts).argmax(1)
    assert f.tolist() == ys
    assert q.tolist() == ys


def test_tiny_quantized_model_runs_securely(tiny):
    """The formats the converter picks (softmax / GELU / LayerNorm / rings) work in the
    secure model and give the reference logits bit for bit."""
    from models.ops_secure import prepare, secure_logits, share_inputs
    from net.local import run_local

    model, tok, texts = tiny
    stats = calibrate.collect(model, tok, texts[:16], 8, grams=True)
    cfg, params = quantize.quantize(
        model, None, {"weights": 4}, options=quantize.Options(seq_len=8), stats=stats
    )
    x, mask = client.client_input(texts[20], tok, model.bert.embeddings, cfg)

    def program(rt):
        prep = prepare(rt, params if rt.rank == 2 else None, cfg)
        mine = (x, mask) if rt.rank == 1 else (None, None)
        xs, ms = share_inputs(rt, cfg, *mine, seq_len=cfg.seq_len)
        return secure_logits(rt, prep, cfg, xs, ms)

    run = run_local(program, mode="dealt", timeout=120)
    assert np.array_equal(run.results[1], reference_logits(params, cfg, x, mask))
