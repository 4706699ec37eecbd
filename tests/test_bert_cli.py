"""The product path: a Hugging Face checkpoint folder -> `qbert-mpc quantize` -> a model
folder -> `qbert-mpc run --text` (three processes), plus its one-line input errors."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

WORDS = "good great bad awful movie film plot fun boring the was very not and it".split()
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def cli(*argv, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "net.cli", *argv], capture_output=True, text=True, timeout=timeout
    )


def one_line(p) -> str:
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    return lines[0]


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """A tiny BertForSequenceClassification saved with save_pretrained (random weights)."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    d = tmp_path_factory.mktemp("hf")
    (d / "vocab.txt").write_text("\n".join(SPECIALS + WORDS) + "\n")
    tok = BertTokenizer(str(d / "vocab.txt"))
    torch.manual_seed(1)
    cfg = BertConfig(
        vocab_size=len(SPECIALS) + len(WORDS),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        num_labels=2,
        initializer_range=0.2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    BertForSequenceClassification(cfg).save_pretrained(str(d))
    tok.save_pretrained(str(d))
    return d


@pytest.fixture(scope="module")
def model_dir(hf_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("q") / "m"
    p = cli("quantize", "--checkpoint", str(hf_dir), "--out", str(out), "--calib", "24", "--json")
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert info["bits"] == 8 and info["calib"] == 24
    return out


def test_quantized_folder_has_every_part(model_dir):
    from models.saved import ClientSide, load_params, load_public_config

    cfg = load_public_config(model_dir)
    assert load_params(model_dir).config == cfg
    client = ClientSide(model_dir)
    assert client.labels == ["negative", "positive"] and client.max_tokens == 32
    assert not (model_dir / "client" / "params.safetensors").exists()


@pytest.mark.timeout(600)
def test_run_text_matches_plaintext_live_and_dealt(model_dir):
    from concurrent.futures import ThreadPoolExecutor

    text = "the plot was very boring and not fun"
    argv = ["run", "--model", str(model_dir), "--text", text, "--json"]
    with ThreadPoolExecutor(2) as pool:
        procs = list(pool.map(lambda m: cli(*argv, "--mode", m), ["3party", "2party"]))
    live, dealt = (json.loads(p.stdout)["result"] for p in procs)
    for res in (live, dealt):
        assert res["matches_plaintext"] is True and res["text"] == text
        assert res["valid_len"] == 10 and res["seq_len"] == 32  # capped at the positions
        assert res["prediction"] == res["reference_prediction"] == int(np.argmax(res["logits"]))
    assert live["logits"] == dealt["logits"]


def test_text_goes_to_the_client_only(model_dir):
    from models.job import bert_job
    from net.cli import _job_argv

    job = bert_job()
    p = argparse.ArgumentParser()
    job.add_options(p)
    args = p.parse_args(["--model", str(model_dir), "--text", "a secret sentence"])
    for rank in (0, 2):
        assert "a secret sentence" not in _job_argv(args, job, rank)
    assert "a secret sentence" in _job_argv(args, job, 1)


@pytest.mark.timeout(600)
def test_bad_model_and_sentence_are_one_line_errors(model_dir, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    text = " ".join(["good movie"] * 6)
    m = ["run", "--model", str(model_dir)]
    cases = {  # argv -> fragments of the one-line error
        ("run", "--model", str(tmp_path / "nope")): ["not found", "qbert-mpc quantize"],
        ("run", "--model", str(broken)): ["config.json"],
        (*m, "--text", text, "--seq-len", "8"): ["14 tokens", "--seq-len 16"],
        (*m, "--text", " ".join([text] * 3)): ["more than the model allows (32)"],
        (*m, "--seq-len", "40"): ["--seq-len 40", "32 positions"],
        ("quantize", "--checkpoint", str(tmp_path), "--out", str(tmp_path / "o")): [
            "not a Hugging Face checkpoint"
        ],
    }
    with ThreadPoolExecutor(3) as pool:
        done = dict(zip(cases, pool.map(lambda a: cli(*a), cases), strict=True))
    for argv, fragments in cases.items():
        line = one_line(done[argv])
        assert all(f in line for f in fragments), (argv, line)


@pytest.mark.timeout(900)
def test_real_minilm_secure_equals_reference_on_sentences():
    """The bundled sentiment classifier (W8A8, small calibration) on real UCI sentences:
    the secure logits equal the plaintext integer reference bit for bit."""
    from test_secure_bert import run_queries

    from models import checkpoint, data
    from models.client import client_inputs
    from models.ops_plain import reference_logits
    from models.quantize import Options, quantize

    try:
        model, tok = checkpoint.load_classifier()
    except checkpoint.CheckpointError as e:
        pytest.skip(f"classifier unavailable: {e}")
    sents = [t for t, _ in data.uci_sentences()]
    short = [t for t in sents if len(tok(t)["input_ids"]) <= 12][:2]
    calib = [t for t, _ in data.movie_sentences()[:16]]
    cfg, params = quantize(model, calib, tokenizer=tok, options=Options(seq_len=12))
    x, mask = client_inputs(short, tok, model.bert.embeddings, cfg)
    run = run_queries(params, list(zip(x, mask, strict=True)), "dealt")
    for j in range(len(short)):
        assert (run.results[1][j] == reference_logits(params, cfg, x[j], mask[j])).all()
