"""CLI job "bert": secure inference of a quantized BERT classifier (the main job).

``--model`` picks the model: ``sentiment`` (default: the bundled MiniLM sentiment classifier
quantized to W8A8, built and cached on first use), a folder written by ``qbert-mpc
quantize``, or ``random`` (random weights of the shape ``--random-config``, drawn from the
public ``--seed``). P2 (owner) reads the private ``params.safetensors``; P0 and P1 read only
the public config, and P1 (client) the public tokenizer and embedding tables.

With a text model P1 tokenizes ``--text`` (passed to P1 only), looks up its embeddings in
plaintext and shares them; with a random model P1 inputs random int8 embeddings of
``--seq-len`` tokens (``--valid-len`` real). P1 learns the integer logits only.

Checks against plaintext: the operator of a local run holds every party's data, so
``qbert-mpc run`` recomputes the reference after the run (``plaintext``, outside the
parties' timed programs); with a random model every party can derive the weights, so a P1
started on its own (``qbert-mpc party``) recomputes it itself.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os

import numpy as np

RANDOM_CONFIGS = ("tiny", "minilm", "bert-base")
SAMPLE_TEXT = "A gripping, beautifully acted film that stays with you long after it ends."


def _options(g) -> None:
    g.add_argument(
        "--model",
        metavar="NAME|DIR",
        default="sentiment",
        help="'sentiment' (bundled MiniLM classifier, W8A8), a folder from `qbert-mpc "
        "quantize`, or 'random' (random weights of --random-config) (default: sentiment)",
    )
    g.add_argument("--text", default=SAMPLE_TEXT, help="the client's sentence (P1 only)")
    g.add_argument(
        "--random-config",
        choices=RANDOM_CONFIGS,
        default="minilm",
        help="shape of the --model random weights (default: minilm)",
    )
    g.add_argument(
        "--seq-len", type=int, default=0, help="public padded length (0: the model's default)"
    )
    g.add_argument(
        "--valid-len", type=int, default=0, help="random model: real tokens, rest padding"
    )
    g.add_argument(
        "--party-check",
        type=int,
        choices=(0, 1),
        default=1,
        help="random model: P1 recomputes the plaintext reference after the run (default: "
        "1; `qbert-mpc run` passes 0 and checks in the launcher instead)",
    )
    try:
        g.add_argument("--seed", type=int, default=0, help="public seed of the random data")
    except argparse.ArgumentError:
        pass  # another job (demo) already defines --seed: same meaning, shared


def _folder(args):
    from models.saved import resolve

    return resolve(str(args.model))


def _config(args):
    """(public config, model folder or None) without the owner's parameters."""
    from models.qrandom import random_config
    from models.saved import load_public_config

    folder = _folder(args)
    if folder is None:
        return random_config(args.random_config, int(args.seed)), None
    return load_public_config(folder), folder


def _params(args):
    from models.qrandom import random_model
    from models.saved import load_params

    folder = _folder(args)
    if folder is None:
        return random_model(args.random_config, int(args.seed))
    return load_params(folder)


def _seq_len(args, cfg) -> int:
    L = int(args.seq_len) or cfg.seq_len
    if L < 2:
        raise ValueError("--seq-len must be at least 2 ([CLS] and [SEP])")
    return L


@functools.lru_cache(maxsize=4)
def _client(folder):
    """The client's tools for a model folder, loaded once per process."""
    from models.saved import ClientSide

    return ClientSide(folder)


def _client_input(args, cfg, folder, L):
    """P1's (x_int8, mask) and what it may report about its own input."""
    if folder is None:
        from models.qrandom import random_input

        x, mask = random_input(cfg, L, seed=args.seed, valid=int(args.valid_len) or None)
        return x, mask, {}
    client = _client(folder)
    x, mask = client.input(args.text, cfg, L)
    return x, mask, {"text": args.text, "labels": client.labels}


def _label(res: dict, i: int) -> str:
    labels = res.get("labels") or []
    return labels[i] if i < len(labels) else str(i)


def _program(rt, args) -> dict:
    from models.ops_cost import linear_calls
    from models.ops_plain import reference_logits
    from models.ops_secure import precompute, prepare, secure_logits, share_inputs

    cfg, folder = _config(args)
    check = rt.rank == 1 and folder is None and bool(args.party_check)
    params = _params(args) if rt.rank == 2 or check else None
    L = _seq_len(args, cfg)
    x = mask = None
    info = {}
    if rt.rank == 1:
        x, mask, info = _client_input(args, cfg, folder, L)
    prep = prepare(rt, params if rt.rank == 2 else None, cfg)
    precompute(rt, prep, linear_calls(cfg, L))
    xs, ms = share_inputs(rt, cfg, x, mask, L)
    logits = secure_logits(rt, prep, cfg, xs, ms)
    if rt.rank != 1:
        return {}
    res = {
        "model": str(folder) if folder else f"random {args.random_config} (seed {args.seed})",
        "seq_len": L,
        "valid_len": int(mask.sum()),
        "logits": [int(v) for v in logits],
        "prediction": int(np.argmax(logits)),
        **info,
    }
    if check:  # public-seed weights: the client can check the answer
        res.update(_compare(res, reference_logits(params, cfg, x, mask)))
    return res


def _compare(res: dict, ref) -> dict:
    return {
        "reference_logits": [int(v) for v in ref],
        "reference_prediction": int(np.argmax(ref)),
        "matches_plaintext": bool(list(ref) == res["logits"]),
    }


def _plaintext(args, res: dict) -> dict:
    """Local runs only (the operator holds all data): the integer reference on the same
    input, and the float classifier's prediction when the model is the bundled one."""
    from models.ops_plain import reference_logits
    from models.saved import DEFAULT_NAME

    cfg, folder = _config(args)
    L = res["seq_len"]
    x, mask, _ = _client_input(args, cfg, folder, L)
    out = _compare(res, reference_logits(_params(args), cfg, x, mask))
    if args.model == DEFAULT_NAME:  # torch only: no transformers import (~2 s)
        from models.checkpoint import classifier_state
        from models.floatbert import logits

        tok = _client(folder).tokenizer
        out["float_prediction"] = int(logits(classifier_state(), tok, [args.text], L)[0].argmax())
    return out


def _prepare(args, rank: int | None = None) -> None:
    """Before any party starts: build the bundled model if needed, validate the folder and
    the sentence's length (typed one-line errors instead of a failing party). ``rank``
    None (a local run, whose operator holds everything) checks all; a party checks only
    what it holds: P2 the owner's parameters, P1 the client files and its sentence, P0
    the public config."""
    from models.saved import load_params

    cfg, folder = _config(args)
    L = _seq_len(args, cfg)
    if rank is None:  # a local run: the launcher checks against plaintext, not P1
        args.party_check = 0
    if folder is not None:
        if rank in (None, 2):
            load_params(folder)
        if rank in (None, 1):
            _client(folder).check_length(args.text, L)
        if rank == 1:  # the client's embedding layer (torch) loads before P1 connects
            _ = _client(folder).embeddings


def _heap_bytes(args) -> int:
    """The heap a party pre-faults (``net.alloc.prefault_heap``): 5x the largest layer's
    dealt material (BERT-base: 1.5 GB; P1 peaks at 1.1 GB), at most a quarter of RAM."""
    from models.ops_cost import declared_costs

    cfg, _ = _config(args)
    costs = declared_costs(cfg, _seq_len(args, cfg))
    top = max(c.offline[1] for k, c in costs.items() if k.startswith("layer") and "." not in k)
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return min(5 * top, ram // 4)


def _program_id(args) -> str:
    cfg, folder = _config(args)
    key = cfg.digest() if folder else f"random:{args.random_config}:{args.seed}"
    return hashlib.sha256(f"bert:{key}:{_seq_len(args, cfg)}".encode()).hexdigest()[:16]


def _summary(res: dict) -> list[str]:
    pred = _label(res, res["prediction"])
    if "text" in res:
        lines = [
            f'sentence (P1\'s private input): "{res["text"]}"',
            f"  {res['valid_len']} tokens, padded to {res['seq_len']}; model {res['model']}",
        ]
    else:
        lines = [f"model: {res['model']}; {res['seq_len']} tokens ({res['valid_len']} real)"]
    lines.append(f"secure prediction:    {pred}  (integer logits {res['logits']})")
    if "reference_logits" in res:
        ok = "yes" if res["matches_plaintext"] else "NO"
        ref = _label(res, res["reference_prediction"])
        lines.append(
            f"plaintext prediction: {ref}  (integer reference {res['reference_logits']}; "
            f"secure == plaintext: {ok})"
        )
    if "float_prediction" in res:
        lines.append(
            f"float model (unquantized) prediction: {_label(res, res['float_prediction'])}"
        )
    return lines


HELP = (
    "quantized BERT classifier: the sentence private to P1 (client), the model private to "
    "P2 (owner), integer logits revealed to P1 only"
)


def bert_job():
    """The ``net.jobs.Job`` (built lazily: ``net.jobs`` imports this module to register it)."""
    from net.jobs import Job

    return Job(
        "bert",
        HELP,
        _options,
        _program,
        _program_id,
        _summary,
        prepare=_prepare,
        plaintext=_plaintext,
        client_only=("text",),
        heap_bytes=_heap_bytes,
    )
