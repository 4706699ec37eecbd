"""CrypTen 0.4.1 side of ``benchmarks.vs_crypten``: the same workloads, two processes.

CrypTen runs as two processes (RANK 0/1, WORLD_SIZE=2, RENDEZVOUS=tcp://127.0.0.1:PORT,
gloo), its default trusted-first-party provider (triples made locally, no offline
traffic counted), 16 fractional bits, one torch thread per party. Bytes and rounds come
from CrypTen's own counter (``communicator.verbose=True``), which counts bytes sent PLUS
received by a party; we report ``bytes_sent_per_party`` = (counter_rank0 + counter_rank1)
/ 4, the mean sent per party (CrypTen's note: sum over parties / 2 = link total).

Import shim: crypten imports ``torch.onnx._internal.registration``, which moved in
torch >= 2.9; ``import_crypten`` aliases the new module under the old name before the
import (site-packages untouched). GELU (tanh form) and LayerNorm (mean, variance,
``inv_sqrt``) are built from CrypTen tensor ops, as is the BERT encoder.

    python -m benchmarks.crypten_side --workload softmax --quick   # both parties, JSON
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np

EPS = 1e-5
MASK_BIAS = -20.0  # padded keys: CrypTen's exp (limit approximation) diverges far below


def import_crypten():
    """Import crypten on torch >= 2.9 (module alias; nothing on disk is changed)."""
    import importlib

    old = "torch.onnx._internal.registration"
    if old not in sys.modules:
        try:
            importlib.import_module(old)
        except ImportError:
            new = "torch.onnx._internal.torchscript_exporter.registration"
            sys.modules[old] = importlib.import_module(new)
    import crypten

    return crypten


def available() -> str | None:
    """CrypTen's version if it imports, else None."""
    try:
        import_crypten()
        from importlib.metadata import version

        return version("crypten")
    except Exception:  # noqa: BLE001 - any failure: not available
        return None


# -- building blocks -------------------------------------------------------------------------
def gelu(x, form: str = "tanh"):
    """GELU, ``tanh``: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (CrypTen's erf
    diverges for |x| > 3; this form diverges for |x| > ~8, where the cubic drives CrypTen's
    exp out of range); ``sigmoid``: x sigmoid(1.702 x), stable to |x| ~ 150, |error| <= 0.02
    against the exact GELU (used for the real MiniLM, whose FFN inputs reach |x| ~ 25)."""
    if form == "sigmoid":
        return x * (x * 1.702).sigmoid()
    c = math.sqrt(2.0 / math.pi)
    return x * 0.5 * ((x + x * x * x * 0.044715) * c).tanh() + x * 0.5


def layernorm(x, g, b):
    mu = x.mean(-1, keepdim=True)
    d = x - mu
    var = (d * d).mean(-1, keepdim=True)
    return d * (var + EPS).inv_sqrt() * g + b


def encoder_layer(x, w: dict, heads: int, mask_bias=None, gelu_form: str = "tanh"):
    """One BERT encoder layer on [B, L, d] (weights: encrypted dict of q, k, v, o, f1, f2
    with .w/.b, ln1/ln2 with .g/.b)."""
    B, L, d = x.size()
    dh = d // heads

    def lin(h, n):
        return h.matmul(w[n + ".w"]) + w[n + ".b"]

    def split(t):
        return t.view(B, L, heads, dh).permute(0, 2, 1, 3)

    q, k, v = (split(lin(x, n)) for n in ("q", "k", "v"))
    s = q.matmul(k.transpose(2, 3)) * (1.0 / math.sqrt(dh))
    if mask_bias is not None:
        s = s + mask_bias
    p = s.softmax(-1)
    c = p.matmul(v).permute(0, 2, 1, 3).reshape(B, L, d)
    h1 = layernorm(x + lin(c, "o"), w["ln1.g"], w["ln1.b"])
    f = gelu(lin(h1, "f1"), gelu_form)
    return layernorm(h1 + lin(f, "f2"), w["ln2.g"], w["ln2.b"])


def plain_layer(x, w: dict, heads: int, mask_bias=None):
    """The same layer in float64 torch (the plaintext reference)."""
    import torch

    B, L, d = x.shape
    dh = d // heads

    def lin(h, n):
        return h @ w[n + ".w"] + w[n + ".b"]

    def split(t):
        return t.view(B, L, heads, dh).permute(0, 2, 1, 3)

    def ln(t, n):
        mu = t.mean(-1, keepdim=True)
        var = ((t - mu) ** 2).mean(-1, keepdim=True)
        return (t - mu) / torch.sqrt(var + EPS) * w[n + ".g"] + w[n + ".b"]

    q, k, v = (split(lin(x, n)) for n in ("q", "k", "v"))
    s = q @ k.transpose(2, 3) / math.sqrt(dh)
    if mask_bias is not None:
        s = s + mask_bias
    c = torch.softmax(s, -1) @ v
    h1 = ln(x + lin(c.permute(0, 2, 1, 3).reshape(B, L, d), "o"), "ln1")
    c3 = math.sqrt(2.0 / math.pi)
    f = lin(h1, "f1")
    f = 0.5 * f * (1 + torch.tanh(c3 * (f + 0.044715 * f**3)))
    return ln(h1 + lin(f, "f2"), "ln2")


def random_bert_weights(layers: int, d: int, ffn: int, seed: int = 0) -> list[dict]:
    """BERT-like random float weights (std 0.02 scaled so activations stay O(1))."""
    import torch

    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(layers):
        w = {}
        for n, (a, b) in {
            "q": (d, d),
            "k": (d, d),
            "v": (d, d),
            "o": (d, d),
            "f1": (d, ffn),
            "f2": (ffn, d),
        }.items():
            w[n + ".w"] = torch.randn(a, b, generator=g, dtype=torch.float64) / math.sqrt(a)
            w[n + ".b"] = torch.randn(b, generator=g, dtype=torch.float64) * 0.02
        for n in ("ln1", "ln2"):
            w[n + ".g"] = 1 + 0.05 * torch.randn(d, generator=g, dtype=torch.float64)
            w[n + ".b"] = 0.05 * torch.randn(d, generator=g, dtype=torch.float64)
        out.append(w)
    return out


def hf_layer_weights(model) -> tuple[list[dict], int]:
    """Float weights of a Hugging Face BertForSequenceClassification, [in, out] layout."""
    enc, out = model.bert.encoder.layer, []
    for lay in enc:
        a, f = lay.attention, lay
        mods = {
            "q": a.self.query,
            "k": a.self.key,
            "v": a.self.value,
            "o": a.output.dense,
            "f1": f.intermediate.dense,
            "f2": f.output.dense,
        }
        w = {}
        for n, m in mods.items():
            w[n + ".w"] = m.weight.detach().double().T.contiguous()
            w[n + ".b"] = m.bias.detach().double()
        for n, m in (("ln1", a.output.LayerNorm), ("ln2", f.output.LayerNorm)):
            w[n + ".g"], w[n + ".b"] = m.weight.detach().double(), m.bias.detach().double()
        out.append(w)
    return out, model.config.num_attention_heads


# -- workloads -------------------------------------------------------------------------------
def _micro(name: str, quick: bool):
    """(encrypted-input builder, op, float reference) for a ``vs_workloads`` spec."""
    import torch

    from benchmarks.vs_workloads import SPECS

    s = SPECS[name]
    real = {
        k: torch.tensor(np.asarray(v, dtype=np.float64))
        for k, v in s.real(s.ints(s.shape(quick))).items()
    }
    ref = s.plain({k: v.numpy() for k, v in real.items()})
    return real, ref


def _setup_and_op(crypten, name: str, quick: bool, args):
    """Returns (state, op(state) -> encrypted output, float reference or None)."""
    import torch

    enc = crypten.cryptensor
    if name in ("matmul_ss", "matmul_sp", "relu", "compare", "softmax", "gelu", "layernorm"):
        real, ref = _micro(name, quick)
        x = enc(real["x"], src=0)
        if name in ("matmul_ss", "matmul_sp"):
            return (x, enc(real["w"], src=1)), lambda st: st[0].matmul(st[1]), ref
        if name == "layernorm":
            g, b = enc(real["g"], src=1), enc(real["b"], src=1)

            def op(st):
                return layernorm(*st)

            return (x, g, b), op, ref
        ops = {
            "relu": lambda t: t.relu(),
            "compare": lambda t: t >= 0,
            "softmax": lambda t: t.softmax(-1),
            "gelu": gelu,
        }
        return x, ops[name], ref
    if name in ("bert_layer", "bert_base"):
        layers = 1 if name == "bert_layer" else args.layers
        d, ffn, heads, L = (64, 256, 4, 16) if quick else (768, 3072, 12, 128)
        ws = random_bert_weights(layers, d, ffn)
        x = torch.randn(1, L, d, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
        ref = x
        for w in ws:
            ref = plain_layer(ref, w, heads)
        ews = [{k: enc(v, src=1) for k, v in w.items()} for w in ws]

        def op(st):
            h = st[0]
            for w in st[1]:
                h = encoder_layer(h, w, heads)
            return h

        return (enc(x, src=0), ews), op, ref.numpy()
    if name == "minilm":
        return _minilm(crypten, quick, args)
    raise ValueError(f"unknown CrypTen workload {name!r}")


def _minilm(crypten, quick: bool, args):
    """The float MiniLM sentiment classifier: client-side embeddings (as in qbert-mpc), the
    encoder, pooler (tanh) and classifier under CrypTen; one batch of sentences."""
    import torch

    from models.checkpoint import load_classifier
    from models.client import embed, encode

    model, tok = load_classifier()
    texts = json.loads(args.texts)
    ids, mask = encode(texts, tok, args.seq_len)
    x = torch.tensor(embed(model.bert.embeddings, ids))
    bias = torch.tensor((1.0 - mask[:, None, None, :]) * MASK_BIAS)
    ws, heads = hf_layer_weights(model)
    pool, cls = model.bert.pooler.dense, model.classifier
    head = {
        "pool.w": pool.weight.detach().double().T,
        "pool.b": pool.bias.detach().double(),
        "cls.w": cls.weight.detach().double().T,
        "cls.b": cls.bias.detach().double(),
    }
    enc = crypten.cryptensor
    ews = [{k: enc(v, src=1) for k, v in w.items()} for w in ws]
    ehead = {k: enc(v, src=1) for k, v in head.items()}

    def op(st):
        h, b = st[0], st[1]
        for w in ews:
            h = encoder_layer(h, w, heads, b, "sigmoid")
        p = (h[:, 0, :].matmul(ehead["pool.w"]) + ehead["pool.b"]).tanh()
        return p.matmul(ehead["cls.w"]) + ehead["cls.b"]

    with torch.inference_mode():  # the float model itself (exact erf GELU) is the reference
        t = torch.as_tensor(ids)
        m = torch.as_tensor(mask, dtype=torch.long)
        ref = model(input_ids=t, attention_mask=m, token_type_ids=0 * t).logits.double().numpy()
    return (enc(x, src=0), enc(bias, src=0)), op, ref


# -- one party -------------------------------------------------------------------------------
def party(args) -> dict:
    import torch

    torch.set_num_threads(1)
    crypten = import_crypten()
    crypten.cfg.communicator.verbose = True
    crypten.init()
    comm = crypten.comm.get()
    state, op, ref = _setup_and_op(crypten, args.workload, args.quick, args)
    op(state)  # warm-up (first-touch, lazy imports): not measured
    times, stats = [], None
    for _ in range(args.repeats):
        comm.barrier()
        comm.reset_communication_stats()
        t0 = time.perf_counter()
        out = op(state)
        times.append(time.perf_counter() - t0)
        stats = comm.get_communication_stats()
    plain = out.get_plain_text().double().numpy()
    res = {
        "rank": comm.get_rank(),
        "seconds": times,
        "median_seconds": statistics.median(times),
        "counter_bytes": int(stats["bytes"]),
        "rounds": int(stats["rounds"]),
    }
    if comm.get_rank() == 0 and ref is not None:
        ref = np.asarray(ref, dtype=np.float64).reshape(plain.shape)
        res["max_err"] = float(np.max(np.abs(plain - ref)))
        if args.workload == "minilm":
            res["predictions"] = plain.argmax(-1).tolist()
            res["float_predictions"] = ref.argmax(-1).tolist()
    crypten.uninit()
    return res


def run(workload: str, quick: bool, repeats: int, timeout: float = 3600.0, **extra) -> dict:
    """Both CrypTen parties as processes; merged result (see the module docstring)."""
    from net.launcher import launch
    from net.tcp import free_ports

    port = free_ports(1)[0]
    base = [sys.executable, "-m", "benchmarks.crypten_side", "--workload", workload]
    base += ["--repeats", str(repeats)] + (["--quick"] if quick else [])
    for k, v in extra.items():
        base += [f"--{k.replace('_', '-')}", str(v)]
    env = {
        "WORLD_SIZE": "2",
        "RENDEZVOUS": f"tcp://127.0.0.1:{port}",
        "DISTRIBUTED_BACKEND": "gloo",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(
            filter(None, [os.path.dirname(os.path.dirname(__file__)), os.environ.get("PYTHONPATH")])
        ),
    }
    cmds = {r: base + ["--rank", str(r)] for r in (0, 1)}
    t0 = time.perf_counter()
    outs = launch(cmds, timeout=timeout, env=env)
    wall = time.perf_counter() - t0
    res = {r: json.loads(o.stdout.strip().splitlines()[-1]) for r, o in outs.items()}
    r0, r1 = res[0], res[1]
    merged = {
        "seconds": r0["median_seconds"],
        "all_seconds": [max(a, b) for a, b in zip(r0["seconds"], r1["seconds"], strict=True)],
        "counter_bytes": [r0["counter_bytes"], r1["counter_bytes"]],
        "bytes_sent_per_party": (r0["counter_bytes"] + r1["counter_bytes"]) / 4,
        "rounds": max(r0["rounds"], r1["rounds"]),
        "process_wall_s": wall,
    }
    merged["seconds"] = statistics.median(merged["all_seconds"])
    for k in ("max_err", "predictions", "float_predictions"):
        if k in r0:
            merged[k] = r0[k]
    return merged


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--workload", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rank", type=int, help="run one party (set by ``run``)")
    ap.add_argument("--layers", type=int, default=12, help="bert_base: encoder layers")
    ap.add_argument("--texts", default="[]", help="minilm: JSON list of sentences")
    ap.add_argument("--seq-len", type=int, default=32, help="minilm: padded length")
    a = ap.parse_args(argv)
    if a.rank is None:
        extra = {"layers": a.layers, "texts": a.texts, "seq_len": a.seq_len}
        print(json.dumps(run(a.workload, a.quick, a.repeats, **extra), indent=1))
        return 0
    os.environ["RANK"] = str(a.rank)
    print(json.dumps(party(a)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
