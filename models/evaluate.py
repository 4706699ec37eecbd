"""Accuracy of the float classifier and of its integer models (plaintext integer reference).

``evaluate(sentences, modes)`` quantizes the fine-tuned MiniLM (``models.checkpoint``) for
every integer mode (``W8A8``, ``W4A8``, ``W1A8``: weight bits / int8 activations) on
calibration sentences from the TRAINING set (``models.data.movie_sentences``, disjoint from
the UCI test sentences), runs the client side (``models.client``) and the integer reference
(``models.ops_plain.reference_logits``, exactly what the secure model reveals) per sentence,
and returns accuracy and agreement with the float model. The float model sees the same
tokens (padded / truncated to the public ``seq_len``).

CLI (``register`` adds them to ``qbert-mpc``; heavy imports happen only when they run):

    qbert-mpc quantize --out DIR [--bits 8] [--checkpoint HF_DIR] [--calib 256] [--seq-len 64]
    qbert-mpc eval [--limit N] [--bits 8 4 1] [--no-float] [--model DIR] [--data uci]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

MODES = {"float": None, "W8A8": 8, "W4A8": 4, "W1A8": 1}
DEFAULT_CALIB = 256


@dataclass
class Result:
    mode: str
    sentences: int
    accuracy: float
    agreement: float  # fraction of predictions equal to the float model's
    seconds: float


def mode_bits(mode: str) -> dict | None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {list(MODES)}")
    return None if MODES[mode] is None else {"weights": MODES[mode]}


def calibration_sentences(n: int = DEFAULT_CALIB) -> list[str]:
    """The first n training (movie) sentences: never the UCI test set."""
    from models.data import movie_sentences

    return [t for t, _ in movie_sentences()[:n]]


def float_predictions(model, tokenizer, texts: Sequence[str], seq_len: int, batch: int = 64):
    """(predictions, logits) of the float model on exactly the client's tokens."""
    import numpy as np
    import torch

    from models.client import encode

    out = []
    with torch.inference_mode():
        for s in range(0, len(texts), batch):
            ids, mask = encode(texts[s : s + batch], tokenizer, seq_len)
            ids, mask = torch.as_tensor(ids), torch.as_tensor(mask, dtype=torch.long)
            logits = model(input_ids=ids, attention_mask=mask, token_type_ids=0 * ids).logits
            out.append(logits.to(torch.float64).numpy())
    logits = np.concatenate(out) if out else np.zeros((0, model.config.num_labels))
    return logits.argmax(axis=1), logits


def integer_predictions(params, config, tokenizer, embeddings, texts, progress=True, desc=""):
    """(predictions, integer logits) of the integer reference, one sentence at a time."""
    import numpy as np
    from tqdm import tqdm

    from models.client import client_inputs
    from models.ops_plain import reference_logits

    logits = []
    bar = tqdm(total=len(texts), desc=desc, unit="sent", disable=not progress, leave=False)
    for s in range(0, len(texts), 64):
        x, mask = client_inputs(texts[s : s + 64], tokenizer, embeddings, config)
        for j in range(len(x)):
            logits.append(reference_logits(params, config, x[j], mask[j]))
            bar.update(1)
    bar.close()
    logits = np.asarray(logits, dtype=np.int64).reshape(len(texts), config.labels)
    return logits.argmax(axis=1), logits


def evaluate(
    sentences: Sequence[tuple[str, int]],
    modes: Sequence[str] = ("float", "W8A8", "W4A8", "W1A8"),
    limit: int | None = None,
    *,
    model=None,
    tokenizer=None,
    calib: Sequence[str] | None = None,
    options=None,
    params=None,
    progress: bool = True,
) -> list[Result]:
    """Accuracy per mode on labelled sentences (the first ``limit`` if given). ``params``:
    a ready integer model (``QBertParams``) evaluated as mode "int" instead of quantizing."""
    import numpy as np

    from models.quantize import Options, quantize

    if model is None:
        from models.checkpoint import load_classifier

        model, tokenizer = load_classifier()
    elif tokenizer is None:
        from models.checkpoint import load_tokenizer

        tokenizer = load_tokenizer()
    sentences = list(sentences)[: limit if limit is not None else None]
    if not sentences:
        raise ValueError("no sentences to evaluate")
    for m in modes:
        mode_bits(m)
    texts, ys = [t for t, _ in sentences], np.array([y for _, y in sentences])
    opts = options or Options()
    seq_len = params.config.seq_len if params is not None else opts.seq_len
    t0 = time.perf_counter()
    fpred, _ = float_predictions(model, tokenizer, texts, seq_len)
    t_float = time.perf_counter() - t0
    results = []
    if "float" in modes:
        results.append(Result("float", len(ys), float(np.mean(fpred == ys)), 1.0, t_float))
    todo = [("int", params)] if params is not None else []
    todo += [(m, None) for m in modes if m != "float"]
    stats = None
    for mode, p in todo:
        t0 = time.perf_counter()
        if p is None:
            if stats is None:
                from models.calibrate import collect

                calib = list(calib) if calib is not None else calibration_sentences()
                low = any(MODES[m] not in (None, 8) for m in modes)
                stats = collect(model, tokenizer, calib, opts.seq_len, opts.batch_size, grams=low)
            _, p = quantize(model, calib, mode_bits(mode), options=opts, stats=stats)
        pred, _ = integer_predictions(
            p, p.config, tokenizer, model.bert.embeddings, texts, progress, desc=mode
        )
        acc, agree = float(np.mean(pred == ys)), float(np.mean(pred == fpred))
        results.append(Result(mode, len(ys), acc, agree, time.perf_counter() - t0))
    return results


def format_table(results: Sequence[Result]) -> str:
    lines = [f"{'mode':6s} {'sentences':>9s} {'accuracy':>9s} {'agree':>7s} {'seconds':>8s}"]
    for r in results:
        lines.append(
            f"{r.mode:6s} {r.sentences:9d} {100 * r.accuracy:8.2f}% {100 * r.agreement:6.1f}% "
            f"{r.seconds:8.1f}"
        )
    return "\n".join(lines)


# -- command line -----------------------------------------------------------------------
def _add_checkpoint(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        metavar="DIR",
        help="a Hugging Face BertForSequenceClassification folder, read offline "
        "(default: the bundled MiniLM sentiment classifier)",
    )
    p.add_argument("--calib", type=int, default=DEFAULT_CALIB, help="calibration sentences")
    p.add_argument("--seq-len", type=int, default=64, help="public padded length (default 64)")


def add_quantize_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="DIR", help="output model folder")
    p.add_argument("--bits", type=int, choices=(8, 4, 1), default=8, help="weight bits")
    _add_checkpoint(p)


def add_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, default=None, help="first N test sentences only")
    p.add_argument(
        "--bits", type=int, nargs="*", choices=(8, 4, 1), default=[8, 4, 1], help="weight bits"
    )
    p.add_argument("--no-float", action="store_true", help="skip the float row")
    p.add_argument("--model", metavar="DIR", help="evaluate a saved integer model instead")
    p.add_argument("--data", choices=("uci", "movie"), default="uci", help="test sentences")
    _add_checkpoint(p)


def _classifier(args):
    if args.checkpoint:
        from models.saved import load_hf_classifier

        return load_hf_classifier(args.checkpoint)
    from models.checkpoint import load_classifier

    return load_classifier()


def quantize_command(args) -> int:
    """``qbert-mpc quantize``: quantize a classifier and write a model folder."""
    from models.quantize import Options, quantize
    from models.saved import save_model

    if args.calib < 1:
        raise ValueError("--calib must be at least 1")
    model, tok = _classifier(args)
    calib = calibration_sentences(args.calib)
    t0 = time.perf_counter()
    opts = Options(seq_len=min(args.seq_len, model.config.max_position_embeddings))
    cfg, params = quantize(
        model, calib, {"weights": args.bits}, tokenizer=tok, options=opts, progress=not args.json
    )
    source = {
        "checkpoint": str(args.checkpoint or "bundled minilm-sentiment"),
        "bits": args.bits,
        "calib": len(calib),
    }
    save_model(args.out, params, model, tok, source)
    out = {**source, "out": str(args.out), "config": cfg.digest()}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        print(json.dumps(out))
    else:
        print(
            f"wrote {args.out}: W{args.bits}A8, {len(calib)} calibration sentences, "
            f"{out['seconds']} s (config {out['config']})"
        )
    return 0


def eval_command(args) -> int:
    """``qbert-mpc eval``: accuracy table on the UCI (or movie) sentences."""
    from models import data
    from models.quantize import Options

    sents = data.uci_sentences() if args.data == "uci" else data.movie_sentences()
    modes = ([] if args.no_float else ["float"]) + [f"W{b}A8" for b in args.bits]
    params = None
    if args.model:
        from models.saved import load_params

        params = load_params(args.model)
        modes = [m for m in modes if m == "float"]
    model, tok = _classifier(args)
    results = evaluate(
        sents,
        modes,
        args.limit,
        model=model,
        tokenizer=tok,
        calib=calibration_sentences(args.calib),
        options=Options(seq_len=args.seq_len),
        params=params,
        progress=not args.json,
    )
    if args.json:
        print(json.dumps([asdict(r) for r in results]))
    else:
        print(format_table(results))
    return 0


def _no_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")


def register(sub, add_common=_no_common) -> None:
    """Add the ``quantize`` and ``eval`` subcommands to a subparsers object."""
    q = sub.add_parser(
        "quantize",
        help="quantize a BERT classifier into a model folder",
        description="Calibrate on training sentences, quantize weights (8/4/1 bit, "
        "per-channel) and activations (int8), and write a model folder: public config, "
        "the owner's private integers, the client's public tokenizer and embeddings.",
    )
    add_quantize_args(q)
    add_common(q)
    q.set_defaults(func=quantize_command)
    e = sub.add_parser(
        "eval",
        help="accuracy of the float and integer models on labelled sentences",
        description="Accuracy of the float classifier and of its W8A8 / W4A8 / W1A8 "
        "integer models (the plaintext integer reference: exactly what the secure run "
        "reveals) on the 3,000 UCI sentences.",
    )
    add_eval_args(e)
    add_common(e)
    e.set_defaults(func=eval_command)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.evaluate")
    register(ap.add_subparsers(dest="command", required=True))
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
