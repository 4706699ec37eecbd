"""CLI job "bert": secure inference of a quantized BERT classifier.

P2 (owner) holds the model: ``--model DIR`` (a folder saved by ``QBertParams.save``; P0 and
P1 read only its public ``config.json``), or by default a random valid model of the shape
``--random-config`` (tiny | minilm | bert-base) drawn from the public ``--seed``. P1
(client) inputs int8 embeddings of ``--seq-len`` tokens (the first ``--valid-len`` real, the
rest padding), generated from the same seed for now (text input comes later). P1 learns the
integer logits and the prediction; with a random model everything derives from public
seeds, so P1 also recomputes the plaintext reference logits and reports whether they match
(``matches_plaintext``, which the CLI turns into its exit status).
"""

from __future__ import annotations

import argparse
import hashlib

import numpy as np

RANDOM_CONFIGS = ("tiny", "minilm", "bert-base")


def _options(g) -> None:
    g.add_argument("--model", metavar="DIR", default="", help="saved quantized model folder")
    g.add_argument(
        "--random-config",
        choices=RANDOM_CONFIGS,
        default="minilm",
        help="shape of the random model when no --model is given (default: minilm)",
    )
    g.add_argument("--seq-len", type=int, default=0, help="padded length (0: the config's)")
    g.add_argument("--valid-len", type=int, default=0, help="real tokens, rest padding (0: all)")
    try:
        g.add_argument("--seed", type=int, default=0, help="public seed of the random data")
    except argparse.ArgumentError:
        pass  # another job (demo) already defines --seed: same meaning, shared


def _model(rt_rank: int, args):
    """(config, params or None): P2 always gets params; with a random model every party
    derives the public config (and the public-seed weights) from the seed."""
    from models.qmodel import QBertParams, load_config, preset
    from models.qrandom import random_qbert

    if args.model:
        if rt_rank == 2:
            p = QBertParams.load(args.model)
            return p.config, p
        return load_config(args.model), None
    p = random_qbert(preset(args.random_config), seed=args.seed)
    return p.config, p


def _seq_len(args, cfg) -> int:
    L = int(args.seq_len) or cfg.seq_len
    if L < 1:
        raise ValueError("--seq-len must be positive")
    return L


def _program(rt, args) -> dict:
    from models.ops_plain import reference_logits
    from models.ops_secure import prepare, secure_logits, share_inputs
    from models.qrandom import random_input

    cfg, params = _model(rt.rank, args)
    L = _seq_len(args, cfg)
    x = mask = None
    if rt.rank == 1:
        x, mask = random_input(cfg, L, seed=args.seed, valid=int(args.valid_len) or None)
    prep = prepare(rt, params if rt.rank == 2 else None, cfg)
    xs, ms = share_inputs(rt, cfg, x, mask, L)
    logits = secure_logits(rt, prep, cfg, xs, ms)
    if rt.rank != 1:
        return {}
    res = {
        "model": args.model or f"random {args.random_config} (seed {args.seed})",
        "seq_len": L,
        "valid_len": int(mask.sum()),
        "logits": [int(v) for v in logits],
        "prediction": int(np.argmax(logits)),
    }
    if not args.model:  # public-seed weights: the client can check the answer
        ref = reference_logits(params, cfg, x, mask)
        res["reference_logits"] = [int(v) for v in ref]
        res["matches_plaintext"] = bool((ref == logits).all())
    return res


def _program_id(args) -> str:
    if args.model:
        from models.qmodel import load_config

        key = load_config(args.model).digest()
    else:
        key = f"random:{args.random_config}:{args.seed}"
    return hashlib.sha256(f"bert:{key}:{args.seq_len}".encode()).hexdigest()[:16]


def _summary(res: dict) -> list[str]:
    lines = [
        f"model: {res['model']}; {res['seq_len']} tokens ({res['valid_len']} real)",
        f"logits: {res['logits']} -> prediction {res['prediction']}",
    ]
    if "reference_logits" in res:
        ok = "yes" if res["matches_plaintext"] else "NO"
        lines.append(f"plaintext reference: {res['reference_logits']}; secure == plaintext: {ok}")
    return lines


HELP = (
    "quantized BERT classifier: embeddings private to P1 (client), model private to P2 "
    "(owner), integer logits revealed to P1 only"
)


def bert_job():
    """The ``net.jobs.Job`` (built lazily: ``net.jobs`` imports this module to register it)."""
    from net.jobs import Job

    return Job("bert", HELP, _options, _program, _program_id, _summary)
