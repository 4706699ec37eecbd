"""The integer model: config/params save-load, validation, random valid models, and the
plaintext pipeline's invariants (masked keys ignored, [CLS]-only last layer)."""

import json
from dataclasses import replace

import numpy as np
import pytest

from models import pipeline
from models.ops_plain import PlainOps, exact_matmul, reference_logits, run_plain
from models.qmodel import (
    CONFIG_FILE,
    PARAMS_FILE,
    QBertConfig,
    QBertParams,
    bits_for,
    linear_bound,
    load_config,
    preset,
)
from models.qrandom import random_input, random_qbert

TINY = preset("tiny")


@pytest.fixture(scope="module")
def tiny():
    return random_qbert(TINY, seed=7)


def test_save_load_roundtrip(tiny, tmp_path):
    tiny.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [CONFIG_FILE, PARAMS_FILE]
    public = json.loads((tmp_path / "m" / CONFIG_FILE).read_text())
    assert "tensors" not in json.dumps(public) and public["config"]["hidden"] == TINY.hidden
    assert load_config(tmp_path / "m") == tiny.config
    back = QBertParams.load(tmp_path / "m")
    assert back.config == tiny.config and back.tensors.keys() == tiny.tensors.keys()
    for k, v in tiny.tensors.items():
        assert back.tensors[k].dtype == v.dtype and (back.tensors[k] == v).all()
    x, mask = random_input(tiny.config, 6, seed=1, valid=4)
    assert (
        reference_logits(back, back.config, x, mask) == reference_logits(tiny, tiny.config, x, mask)
    ).all()


def test_config_json_roundtrip(tiny):
    cfg = tiny.config
    assert QBertConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg
    with pytest.raises(ValueError):
        QBertConfig.from_json({"format": "other", "config": {}})


def _bigger(t, k, v):
    t[k] = v


@pytest.mark.parametrize(
    "change",
    [
        lambda t: _bigger(t, "layer0.q.w", t["layer0.q.w"].astype(np.int16) * 2),
        lambda t: _bigger(t, "layer0.f1.w", t["layer0.f1.w"][:, :-1]),
        lambda t: _bigger(t, "layer1.ln2.g", np.full_like(t["layer1.ln2.g"], 1 << 20)),
        lambda t: _bigger(t, "layer0.f2.b", t["layer0.f2.b"] + (1 << 40)),  # rings do not cover
        lambda t: t.pop("classifier.m"),
    ],
)
def test_validate_rejects(tiny, change):
    t = {k: v.copy() for k, v in tiny.tensors.items()}
    QBertParams(tiny.config, t).validate()
    change(t)
    with pytest.raises(ValueError):
        QBertParams(tiny.config, t).validate()


def test_weight_bit_widths():
    cfg = replace(
        TINY, w_bits={"qkv": 4, "attn_out": 1, "ffn1": 8, "ffn2": 1, "pooler": 4, "classifier": 8}
    )
    p = random_qbert(cfg, seed=3)
    assert set(np.unique(p.tensors["layer0.o.w"])) == {-1, 1}
    assert np.abs(p.tensors["layer1.q.w"]).max() <= 7
    bad = {k: v.copy() for k, v in p.tensors.items()}
    bad["layer0.k.w"][0, 0] = 8
    with pytest.raises(ValueError, match="4-bit"):
        QBertParams(p.config, bad).validate()
    bad = {k: v.copy() for k, v in p.tensors.items()}
    bad["layer1.f2.w"][0, 0] = 0
    with pytest.raises(ValueError, match="1-bit"):
        QBertParams(p.config, bad).validate()


def test_rings_cover_worst_case(tiny):
    cfg = tiny.config
    for name in cfg.linears():
        b = linear_bound(tiny.weight(name), tiny.bias(name))
        if name.split(".")[-1] in ("q", "k", "v", "f1", "pooler"):  # read by a requant only
            lf = cfg.layer_formats[int(name[5])] if name != "pooler" else None
            c, bits = (
                (cfg.head.c_pool, cfg.tanh_in.bits)
                if lf is None
                else (lf.c_ffn1, cfg.gelu_in.bits)
                if name.endswith("f1")
                else (lf.c_qkv, cfg.idx_bits)
            )
            assert cfg.ring_of(name) == c + bits  # exactly the bits its requant indexes
        else:
            assert bits_for(b) <= cfg.ring_of(name) <= 64
    # a worst-case input (signs aligned with the largest column) does not wrap
    w = tiny.weight("layer0.f2")
    j = int(np.abs(w).sum(axis=0).argmax())
    x = np.where(w[:, j] >= 0, 127, -128)[None, :]
    acc = exact_matmul(x, w)[0, j] + tiny.bias("layer0.f2")[j]
    assert abs(int(acc)) < 1 << (cfg.layer_formats[0].ring_ffn2 - 1)


def test_random_model_deterministic_and_public_config():
    a, b = random_qbert(TINY, seed=11), random_qbert(TINY, seed=11)
    assert a.config == b.config and all((a.tensors[k] == b.tensors[k]).all() for k in a.tensors)
    c = random_qbert(TINY, seed=12)
    assert not (a.tensors["layer0.q.w"] == c.tensors["layer0.q.w"]).all()


@pytest.mark.parametrize("shape,L", [("tiny", 8), ("minilm", 16)])
def test_random_model_has_realistic_ranges(shape, L):
    params = random_qbert(preset(shape), seed=1)
    x, mask = random_input(params.config, L, seed=2, valid=L - 3)
    ops = PlainOps(params, record=True)
    logits = run_plain(ops, x, mask)
    assert len(set(logits.tolist())) == len(logits)  # not degenerate
    for key, vals in ops.record.items():
        if key.endswith("requant_saturated") and "scores" not in key:
            assert max(vals) <= 0.01, key
        if key.endswith("ln_std_over_top"):
            assert 1 / 8 <= min(vals) and max(vals) <= 1, key


def test_masked_keys_do_not_matter(tiny):
    cfg = tiny.config
    x, mask = random_input(cfg, 8, seed=4, valid=5)
    y = x.copy()
    y[5:] = np.random.default_rng(0).integers(-128, 128, y[5:].shape)
    assert (reference_logits(tiny, cfg, x, mask) == reference_logits(tiny, cfg, y, mask)).all()
    # the same tokens without the padding give the same logits
    assert (
        reference_logits(tiny, cfg, x[:5], mask[:5]) == reference_logits(tiny, cfg, x, mask)
    ).all()
    y[:5] = 0
    assert not (reference_logits(tiny, cfg, x, mask) == reference_logits(tiny, cfg, y, mask)).all()


def test_score_table():
    t = pipeline.score_table(TINY)
    hb = TINY.score_idx_bits
    j = np.arange(2 << hb)
    signed = j - ((j >> hb) << (hb + 1))  # hb + 1 index bits: the top one marks padding
    floor = pipeline.score_floor(TINY)
    assert floor == -39  # exp(-89/8) * 2^15 < 1/2: masked keys (-128) get probability 0
    real = np.abs(signed + 0.5) < 1 << (hb - 1)
    assert (t[real] == np.clip(signed[real], floor, 127)).all() and (t[~real] == -128).all()
    coarse = pipeline.score_tables(TINY)[1]
    assert coarse[1] == 6 and (coarse[0] == t >> 3).all()


def test_cls_only_last_layer_is_exact(tiny):
    cfg = tiny.config
    x, mask = random_input(cfg, 8, seed=5, valid=6)
    ops = PlainOps(tiny)
    h = ops._wrap(cfg.input_ring, x.astype(np.int64))
    m = ops._wrap(cfg.mask_ring, mask)
    for i in range(cfg.layers - 1):
        h = pipeline.layer(ops, cfg, i, h, m, cls_only=False)
    full = pipeline.layer(ops, cfg, cfg.layers - 1, h, m, cls_only=False)
    cls = pipeline.layer(ops, cfg, cfg.layers - 1, h, m, cls_only=True)
    assert full.shape == (8, cfg.hidden) and cls.shape == (1, cfg.hidden)
    assert (full.data[:1] == cls.data).all()


def test_exact_matmul_paths():
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (3, 5))
    for hi in (1 << 20, 1 << 50, 1 << 60):
        b = rng.integers(-hi, hi, (5, 4))
        want = np.matmul(a.astype(object), b.astype(object))
        assert (exact_matmul(a, b).astype(object) == want).all()


def test_input_checks(tiny):
    x, mask = random_input(tiny.config, 4, seed=0)
    with pytest.raises(ValueError):
        random_input(tiny.config, 4, valid=0)
    with pytest.raises(ValueError):
        reference_logits(tiny, tiny.config, x[:, :-1], mask)
    with pytest.raises(ValueError):
        reference_logits(tiny, preset("tiny"), x, mask)  # a config without formats
    with pytest.raises(ValueError, match="real token"):
        reference_logits(tiny, tiny.config, x, 0 * mask)


def test_random_model_disk_cache(tmp_path, monkeypatch):
    """random_model is drawn once and kept as a model folder; random_config reads only its
    public config; a damaged entry is drawn again; depth and seed key the entry."""
    import models.qrandom as Q

    monkeypatch.setenv("QBERT_MPC_CACHE", str(tmp_path))
    Q.random_model.cache_clear()
    drawn = Q.random_model("tiny", 3)
    path = Q.cache_dir("tiny", 3)
    assert (path / "params.safetensors").is_file() and path.is_relative_to(tmp_path)
    assert Q.random_config("tiny", 3) == drawn.config
    Q.random_model.cache_clear()
    loaded = Q.random_model("tiny", 3)
    assert all((loaded.tensors[k] == drawn.tensors[k]).all() for k in drawn.tensors)
    (path / "params.safetensors").write_bytes(b"damaged")
    Q.random_model.cache_clear()
    again = Q.random_model("tiny", 3)
    assert all((again.tensors[k] == drawn.tensors[k]).all() for k in drawn.tensors)
    assert Q.cache_dir("tiny", 3, layers=1) != path != Q.cache_dir("tiny", 4)
    assert Q.random_config("tiny", 3, layers=1).layers == 1
    Q.random_model.cache_clear()
