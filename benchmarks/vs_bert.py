"""qbert-mpc's BERT workloads for ``benchmarks.vs_crypten``.

* ``bert_layer``: ONE full encoder layer (every row, as in a middle layer) of a random
  quantized model of the given shape (``models.qrandom``; time and bytes depend on
  shapes and rings only), on int8 inputs of ``seq_len`` tokens; the revealed output is
  checked against the plaintext integer reference (``models.ops_plain``).
* ``bert_model``: the whole random model, logits checked against the reference.
* ``minilm``: the bundled MiniLM sentiment classifier (W8A8) on one sentence
  (``qbert-mpc run --job bert``'s program), accuracy from the integer reference, which the
  secure model reproduces exactly.

Both random workloads run as job ``vs-bert``, ``repeats`` inferences in scope "bert" after
the one-off weight preparation: by default as P1/P2 processes on dealt material (2-party:
the online phase), with ``mode="3party"`` with the helper P0 streaming live. Each query
starts at ``barrier(helper=True)``: in a live run P0 deals that query's material only from
there (no head start during the weight preparation), so the "bert" scope is the query's
latency with the helper generating its material concurrently on the same cores.
``warmup`` unmeasured layer-0 passes may come first (Numba cache loads, limb plans, heap
growth: once per process, as CrypTen's side gets one unmeasured warm-up run); a
query's dealing time is the dealing time times its share of the dealt bytes.
``material_bytes`` gives the declared helper material before dealing.
"""

from __future__ import annotations

import argparse
import hashlib

import numpy as np

from net.jobs import JOBS, Job


def config(shape: str, layers: int):
    """The random model (read-only, drawn once per process: the dealing then times only the
    dealing, as with a real model, whose public config P0 reads from config.json)."""
    from models.qrandom import random_model

    return random_model(shape, 0, layers)


def material_bytes(
    shape: str, layers: int, part: str, seq_len: int, repeats: int, warmup: int = 0
) -> int:
    """Declared helper material (bytes, P1 + P2) of ``repeats`` runs after ``warmup``
    layer-0 passes."""
    from models.ops_cost import declared_costs

    cfg = config(shape, layers).config
    L = seq_len or cfg.seq_len
    # a full layer (a 1-layer model's layer0 is the [CLS]-only one)
    layer = declared_costs(config(shape, max(layers, 2)).config, L)["layer0"]
    cost = layer if part == "layer" else declared_costs(cfg, L)[""]
    return int(sum(cost.offline)) * repeats + int(sum(layer.offline)) * warmup


def _options(g) -> None:
    g.add_argument("--vs-shape", default="tiny", choices=["tiny", "minilm", "bert-base"])
    g.add_argument("--vs-layers", type=int, default=1)
    g.add_argument("--vs-part", default="layer", choices=["layer", "model"])
    g.add_argument("--vs-seq", type=int, default=0, help="0: the preset's length")
    g.add_argument("--vs-repeats", type=int, default=1)
    g.add_argument("--vs-warmup", type=int, default=0, help="unmeasured layer-0 passes first")


def _program(rt, args) -> dict:
    from models import pipeline
    from models.ops_cost import linear_calls
    from models.ops_plain import PlainOps, reference_logits
    from models.ops_secure import SecureOps, precompute, prepare, secure_logits, share_inputs
    from models.qrandom import random_input

    params = config(args.vs_shape, args.vs_layers)
    cfg = params.config
    L = args.vs_seq or cfg.seq_len
    x, mask = random_input(cfg, L, seed=1)
    prep = prepare(rt, params if rt.rank == 2 else None, cfg)
    calls = linear_calls(cfg, L, None if args.vs_part == "model" else 0)
    out = None
    for _ in range(args.vs_warmup):  # Numba cache loads, limb plans, heap growth: not timed
        xs, ms = share_inputs(rt, cfg, x if rt.rank == 1 else None, mask, L)
        with rt.scope("warmup"):
            pipeline.layer(SecureOps(rt, prep), cfg, 0, xs, ms, cls_only=False)
    for _ in range(args.vs_repeats):
        precompute(rt, prep, calls)  # P1's input-independent products: "pre_s", not "bert"
        xs, ms = share_inputs(rt, cfg, x if rt.rank == 1 else None, mask, L)
        rt.barrier(helper=True)
        with rt.scope("bert"):
            if args.vs_part == "model":
                out = secure_logits(rt, prep, cfg, xs, ms)
            else:
                h = pipeline.layer(SecureOps(rt, prep), cfg, 0, xs, ms, cls_only=False)
        if args.vs_part == "layer":
            with rt.scope("reveal"):
                out = rt.reveal(h, to=1)
                out = None if out is None else h.dom.signed(out)
    if rt.rank != 1:
        return {}
    if args.vs_part == "model":
        ref = reference_logits(params, cfg, x, mask)
    else:
        ops = PlainOps(params)
        xp = ops._wrap(cfg.input_ring, x.astype(np.int64))
        mp = ops._wrap(cfg.mask_ring, mask)
        hp = pipeline.layer(ops, cfg, 0, xp, mp, cls_only=False)
        ref = hp.dom.signed(hp.data)
    diff = np.abs(np.asarray(out, np.int64) - np.asarray(ref, np.int64))
    return {"matches_plaintext": bool((diff == 0).all()), "max_err_int": int(diff.max())}


def _program_id(args) -> str:
    key = (
        f"vs-bert:{args.vs_shape}:{args.vs_layers}:{args.vs_part}:{args.vs_seq}:"
        f"{args.vs_repeats}:{args.vs_warmup}"
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]


VS_BERT = Job(
    "vs-bert",
    "random quantized BERT layer / model (benchmarks/vs_bert.py)",
    _options,
    _program,
    _program_id,
    lambda r: [str(r)],
)
JOBS.setdefault(VS_BERT.name, VS_BERT)


def _job_args(job, overrides: dict, timeout: float, mode: str = "2party") -> argparse.Namespace:
    """The job's option defaults (as its parser declares them) with ``overrides``."""
    p = argparse.ArgumentParser(add_help=False)
    job.add_options(p)
    a = p.parse_args([])
    for k, v in overrides.items():
        setattr(a, k, v)
    a.mode, a.timeout, a.tls = mode, timeout, False
    return a


def _inference(scopes: dict) -> dict:
    """One query's cost (job bert has no "bert" scope): ``net.accounting.per_query``."""
    from net.accounting import per_query

    q = per_query(scopes)
    return {**q, "median_seconds": q["seconds"]}


def _row(out: dict, repeats: int) -> dict:
    m = out["merged"]
    s = m["scopes"].get("bert") or _inference(m["scopes"])
    off = out.get("offline")
    deal_s = None  # one query's share of the dealing time (the warm-up's is not counted)
    if off:
        deal_s = off["seconds"] * sum(s["offline_bytes"]) / repeats / max(off["bytes"], 1)
    return {
        "seconds": s["median_seconds"] or s["seconds"] / repeats,
        "bytes_P1": s["online_bytes"][0] / repeats,
        "bytes_P2": s["online_bytes"][1] / repeats,
        "offline_bytes": sum(s["offline_bytes"]) / repeats,
        "rounds": s["rounds"] // repeats,
        "deal_s": deal_s,
        "pre_s": m["scopes"].get("precompute", {}).get("seconds", 0.0) / repeats,
        "scopes": {
            k: {
                "seconds": v["median_seconds"] or v["seconds"],
                "bytes": max(v["online_bytes"]) / repeats,
                "rounds": v["rounds"] // repeats,
            }
            for k, v in m["scopes"].items()
        },
        "result": out["result"],
    }


def measure_random(
    shape: str,
    layers: int,
    part: str,
    seq: int,
    repeats: int,
    timeout: float = 1800.0,
    mode: str = "2party",
    warmup: int = 0,
) -> dict:
    """Run job vs-bert (``mode`` "2party": on dealt material, "3party": helper live),
    after ``warmup`` unmeasured layer-0 passes; per-inference seconds, bytes, rounds."""
    from net.cli import run_job

    a = _job_args(
        VS_BERT,
        {
            "vs_shape": shape,
            "vs_layers": layers,
            "vs_part": part,
            "vs_seq": seq,
            "vs_repeats": repeats,
            "vs_warmup": warmup,
        },
        timeout,
        mode,
    )
    return _row(run_job(a, VS_BERT, entry="benchmarks.vs_crypten"), repeats)


def measure_sentiment(text: str, timeout: float = 1800.0) -> dict:
    """The bundled sentiment model (job bert) on one sentence, dealt material."""
    from net.cli import run_job

    job = JOBS["bert"]
    a = _job_args(job, {"text": text}, timeout)
    return _row(run_job(a, job, entry="benchmarks.vs_crypten"), 1)


def sentiment_accuracy(n: int, seq_len: int | None = None) -> dict:
    """Float and integer-reference (= secure) predictions on the first ``n`` UCI sentences
    taken evenly from the three sources."""
    from models.checkpoint import load_classifier
    from models.data import uci_sentences
    from models.evaluate import float_predictions, integer_predictions
    from models.saved import ClientSide, default_model, load_params

    sents = uci_sentences()
    idx = np.linspace(0, len(sents) - 1, n).astype(int)
    texts = [sents[i][0] for i in idx]
    labels = np.asarray([sents[i][1] for i in idx])
    folder = default_model(progress=False)
    params = load_params(folder)
    cfg = params.config
    L = seq_len or cfg.seq_len
    client = ClientSide(folder)
    ip, _ = integer_predictions(
        params, cfg, client.tokenizer, client.embeddings, texts, progress=False
    )
    model, tok = load_classifier()
    fp, _ = float_predictions(model, tok, texts, L)
    return {
        "texts": texts,
        "labels": labels.tolist(),
        "seq_len": L,
        "float_predictions": fp.tolist(),
        "ours_predictions": ip.tolist(),
    }
