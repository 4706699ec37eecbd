"""A quantized model folder: everything the three parties need, split by who may read it.

    DIR/config.json          public QBertConfig (every party)
    DIR/params.safetensors   the owner's integers: weights, multipliers, biases, LayerNorm
                             (P2 only)
    DIR/client/              the client's public side: tokenizer files, ``bert_config.json``
                             and ``embeddings.safetensors`` (the pretrained word / position /
                             token-type tables and the embedding LayerNorm)
    DIR/model.json           labels and provenance (checkpoint, weight bits, calibration)

``qbert-mpc quantize`` writes one from a Hugging Face ``BertForSequenceClassification``
folder (read offline) or, by default, from the bundled sentiment classifier.
``default_model()`` is that bundled classifier quantized to W8A8, built once on first use
and cached (keyed by the sources that determine it).

Every loader raises ``ModelError`` with a one-line hint on a missing or corrupt folder.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent
CLIENT_DIR, META_FILE, EMB_FILE, BERT_CONFIG, TOKENIZER_FILE = (
    "client",
    "model.json",
    "embeddings.safetensors",
    "bert_config.json",
    "tokenizer.json",
)
DEFAULT_NAME = "sentiment"
DEFAULT_SEQ_LEN = 32  # padded length of a run with the bundled model (any length works)
CALIB_SEQ_LEN = 64
# Sources whose content decides the bundled model's integers: a change rebuilds the cache.
_DEFAULT_SOURCES = ("quantize.py", "calibrate.py", "qmodel.py", "client.py", "checkpoint.py")


class ModelError(ValueError):
    """A model folder or checkpoint is missing, incomplete or corrupt."""


# -- Hugging Face checkpoints -------------------------------------------------------------
def load_hf_classifier(path):
    """(BertForSequenceClassification in eval mode, tokenizer) from a local folder, offline."""
    from transformers import AutoTokenizer, BertForSequenceClassification

    p = Path(path)
    if not (p / "config.json").is_file():
        raise ModelError(
            f"{p} is not a Hugging Face checkpoint folder (no config.json); "
            "pass a folder saved with save_pretrained()"
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        model = BertForSequenceClassification.from_pretrained(str(p), local_files_only=True)
        tok = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot load the checkpoint in {p}: {str(e).splitlines()[0]}") from e
    if model.config.model_type != "bert":
        raise ModelError(f"{p} holds a {model.config.model_type!r} model; only BERT is supported")
    return model.eval(), tok


def labels_of(hf_model) -> list[str]:
    names = getattr(hf_model.config, "id2label", None) or {}
    return [str(names.get(i, f"label{i}")) for i in range(hf_model.config.num_labels)]


# -- writing ------------------------------------------------------------------------------
def save_model(path, params, hf_model, tokenizer, source: dict) -> Path:
    """Write a complete model folder (see module doc); returns its path."""
    from safetensors.torch import save_file

    out = Path(path)
    params.save(out)
    client = out / CLIENT_DIR
    client.mkdir(exist_ok=True)
    tokenizer.save_pretrained(str(client))
    hf_model.config.to_json_file(str(client / BERT_CONFIG))
    emb = {k: v.detach().contiguous() for k, v in hf_model.bert.embeddings.state_dict().items()}
    save_file(emb, str(client / EMB_FILE))
    meta = {"labels": labels_of(hf_model), "source": source, "config": params.config.digest()}
    (out / META_FILE).write_text(json.dumps(meta, indent=1))
    return out


# -- reading ------------------------------------------------------------------------------
def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise ModelError(
            f"{path} is missing: {what} (make the folder with `qbert-mpc quantize --out DIR`)"
        )
    return path


def check_folder(path) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise ModelError(
            f"model folder {p} not found: make one with `qbert-mpc quantize --out {p}`, "
            f"or use --model {DEFAULT_NAME} (the bundled classifier) or --model random"
        )
    return p


def load_public_config(path):
    """The public QBertConfig of a model folder (what P0 and P1 read)."""
    from models.qmodel import load_config

    p = _need(check_folder(path) / "config.json", "the public config")
    try:
        return load_config(p.parent)
    except (ValueError, KeyError, TypeError) as e:
        raise ModelError(f"{p} is corrupt or of another version: {e}") from e


def load_params(path):
    """The owner's QBertParams (P2), validated against the config."""
    from models.qmodel import QBertParams

    p = check_folder(path)
    load_public_config(p)
    _need(p / "params.safetensors", "the owner's parameters")
    try:
        return QBertParams.load(p)
    except Exception as e:  # safetensors raises its own types on a damaged file
        raise ModelError(f"{p / 'params.safetensors'} is corrupt: {e}") from e


def load_meta(path) -> dict:
    p = _need(check_folder(path) / META_FILE, "labels and provenance")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ModelError(f"{p} is not valid JSON: {e}") from e


class ClientSide:
    """The client's public tools for a model folder: tokenizer, embeddings, labels."""

    def __init__(self, path):
        from tokenizers import Tokenizer

        p = check_folder(path) / CLIENT_DIR
        self._dir = _need(p / EMB_FILE, "the client's embedding tables").parent
        _need(p / TOKENIZER_FILE, "the client's tokenizer")
        self.labels = load_meta(path)["labels"]
        try:
            self.tokenizer = Tokenizer.from_file(str(p / TOKENIZER_FILE))
            self.bert_config = json.loads((p / BERT_CONFIG).read_text())
        except Exception as e:
            raise ModelError(f"the client files in {p} are corrupt: {e}") from e

    @functools.cached_property
    def embeddings(self):
        """The embedding layer (torch, loaded on first use: checking a sentence's length
        needs only the tokenizer)."""
        from safetensors.torch import load_file

        from models.client import embedder

        try:
            tables = load_file(str(self._dir / EMB_FILE))
            return embedder(tables, float(self.bert_config.get("layer_norm_eps", 1e-12)))
        except Exception as e:
            raise ModelError(f"the client files in {self._dir} are corrupt: {e}") from e

    @property
    def max_tokens(self) -> int:
        return int(self.bert_config["max_position_embeddings"])

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` with [CLS] and [SEP]."""
        from models.client import count_tokens

        return count_tokens(text, self.tokenizer)

    def check_length(self, text: str, seq_len: int) -> int:
        """Raise ``ModelError`` unless ``text`` fits ``seq_len`` tokens; returns its tokens."""
        if seq_len > self.max_tokens:
            raise ModelError(f"--seq-len {seq_len} exceeds the model's {self.max_tokens} positions")
        if not text.strip():
            raise ModelError("the sentence is empty")
        n = self.count_tokens(text)
        if n > self.max_tokens:
            raise ModelError(
                f"the sentence has {n} tokens, more than the model allows ({self.max_tokens}); "
                "shorten it"
            )
        if n > seq_len:
            fit = min(1 << (n - 1).bit_length(), self.max_tokens)
            raise ModelError(
                f"the sentence has {n} tokens but the padded length is {seq_len}: pass "
                f"--seq-len {fit} (every party must use the same value)"
            )
        return n

    def input(self, text: str, config, seq_len: int):
        """(x_int8 [L, d], mask [L]) of one sentence padded to ``seq_len``."""
        from models.client import client_input

        self.check_length(text, seq_len)
        return client_input(text, self.tokenizer, self.embeddings, replace(config, seq_len=seq_len))


# -- the bundled default model --------------------------------------------------------------
def cache_root() -> Path:
    from models.data import cache_root as root

    return root() / "models"


def default_key() -> str:
    """Hash of everything that determines the bundled W8A8 model."""
    from models.checkpoint import DEFAULT_DELTA, meta_path

    h = hashlib.sha256()
    for f in [ROOT / s for s in _DEFAULT_SOURCES] + [DEFAULT_DELTA, meta_path()]:
        h.update(f.name.encode() + Path(f).read_bytes())
    return h.hexdigest()[:12]


def build_default(out, bits: int = 8, calib: int = 256, progress: bool = True) -> Path:
    """Quantize the bundled sentiment classifier and write the folder ``out``."""
    from models.checkpoint import load_classifier
    from models.evaluate import calibration_sentences
    from models.quantize import Options, quantize

    if progress:
        print(f"qbert-mpc: quantizing the bundled classifier to W{bits}A8 ...", file=sys.stderr)
    model, tok = load_classifier()
    sents = calibration_sentences(calib)
    opts = Options(seq_len=CALIB_SEQ_LEN)
    cfg, params = quantize(model, sents, {"weights": bits}, tokenizer=tok, options=opts)
    params = replace(params, config=replace(cfg, seq_len=DEFAULT_SEQ_LEN))
    source = {"checkpoint": "bundled minilm-sentiment", "bits": bits, "calib": len(sents)}
    return save_model(out, params, model, tok, source)


def default_model(progress: bool = True) -> Path:
    """Folder of the bundled classifier quantized to W8A8 (built once, ~1 min, then cached).

    Concurrent callers each build into a temporary folder; the first rename wins."""
    path = cache_root() / f"minilm-sentiment-w8a8-{default_key()}"
    if (path / META_FILE).is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=path.parent))
    try:
        build_default(tmp, progress=progress)
        try:
            tmp.rename(path)
        except OSError:
            if not (path / META_FILE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def resolve(name: str) -> Path | None:
    """``sentiment`` -> the bundled model's folder; ``random`` / "" -> None; else a folder."""
    if name == DEFAULT_NAME:
        return default_model()
    if name in ("", "random"):
        return None
    return check_folder(name)
