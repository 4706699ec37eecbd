"""qbert-mpc vs CrypTen 0.4.1, side by side in one invocation on one machine.

Workloads (same real-valued inputs in both systems; see benchmarks/vs_workloads.py):
matmul_ss, matmul_sp (128×768×768), relu and compare (1 M), softmax [12,128,128], gelu
[128,3072], layernorm [128,768], bert_layer (one BERT-base encoder layer, seq 128),
bert_base (12 layers), minilm (the MiniLM sentiment classifier, with accuracy on the same
UCI sentences). Each workload runs ours, then CrypTen, before the next workload starts
(interleaved, so both see the same background load).

Per system and workload: wall (median of --repeats runs of the operation, inputs already
shared, after one unmeasured warm-up: a run of the operation, for qbert-mpc's BERT rows
one encoder layer), bytes SENT per party, rounds, max error against the float function
of the same inputs. qbert-mpc: P1 and P2 as two TCP processes on material dealt
beforehand (online phase; "e2e" adds the helper's dealing time per call; for the BERT
rows "live" is one query as three processes with the helper dealing concurrently);
bytes: the larger party's frame bytes; rounds: the measured critical path (Lamport
clock). CrypTen: two processes, gloo, trusted first party (its triples are made inside
the timed run, so its time is end to end); bytes: CrypTen's counter (sent + received per
party) normalised to the mean sent per party, (c0 + c1) / 4; rounds: its count of
communication calls.

Networks: loopback is measured. LAN (1 Gbit/s, 0.5 ms RTT) and WAN (100 Mbit/s, 40 ms
RTT) are (a) EMULATED for qbert-mpc in its transport (net/shaping.py: each frame leaves
after size / bandwidth on a FIFO link, plus RTT/2), and (b) PROJECTED for both systems
with one formula: t = t_loopback + rounds × RTT + bytes_per_party / bandwidth.

BERT-base end to end needs more helper material than --max-material allows on this
machine today: then its row is a PROJECTION (12 × the measured layer for time; bytes and
rounds as declared by models.ops_cost), labelled so in the JSON and the tables.

    python -m benchmarks.vs_crypten                 # everything (~1 h on 2 loaded cores)
    python -m benchmarks.vs_crypten --quick         # small shapes, a few minutes
    python -m benchmarks.vs_crypten --only softmax gelu --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from benchmarks import vs_bert, vs_workloads  # noqa: F401 - registers workloads and jobs

SAMPLE_TEXT = "A gripping, beautifully acted film that stays with you long after it ends."

MICRO = list(vs_workloads.SPECS)
WORKLOADS = MICRO + ["bert_layer", "bert_base", "minilm"]
NETWORKS = {"lan": (1e9, 0.0005), "wan": (1e8, 0.04)}  # bit/s, RTT s
BERT_BASE = dict(layers=12, seq=128)
EMULATED = ["bert_layer", "matmul_sp", "softmax", "gelu", "layernorm"]  # (time budget)
BERT_REPEATS = 2  # at most, for bert_layer: ~1 GB of helper material and ~90 s to deal each
BERT_BASE_REPEATS = 3  # at most, for bert_base (3.3 GB of material and ~27 s of CrypTen each)


def log(msg: str) -> None:
    print(f"[vs_crypten {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- qbert-mpc ---------------------------------------------------------------------------------
SNAPSHOT_ENV = "QBERT_VS_SNAPSHOT"
PACKAGES = ("mpc", "protocols", "models", "net", "benchmarks")


def in_snapshot(argv: list[str]) -> int:
    """Run this command again from a copy of the source packages, so that every process of
    a long run (helper, parties, CrypTen) uses the same code while the tree is edited."""
    import shutil
    import subprocess
    import tempfile

    root = Path(__file__).resolve().parent.parent
    snap = Path(tempfile.mkdtemp(prefix="vs-crypten-src-"))
    try:
        for pkg in PACKAGES:
            shutil.copytree(
                root / pkg, snap / pkg, ignore=shutil.ignore_patterns("__pycache__", "results")
            )
        env = dict(os.environ, PYTHONPATH=str(snap), **{SNAPSHOT_ENV: str(root)})
        cmd = [sys.executable, "-m", "benchmarks.vs_crypten", *argv]
        return subprocess.run(cmd, cwd=snap, env=env).returncode
    finally:
        shutil.rmtree(snap, ignore_errors=True)


def fresh(fn: str, *args, tries: int = 2):
    """``fn(*args)`` of this module in a new Python process (JSON in and out), so that the
    helper's dealing (in-process in ``run_job``) and the parties run the same code even if
    the source tree changes during a long benchmark."""
    import subprocess

    cmd = [sys.executable, "-m", "benchmarks.vs_crypten", "--call", json.dumps([fn, *args])]
    root = str(Path(__file__).resolve().parent.parent)  # not crypten's own `benchmarks`
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    )
    for attempt in range(tries):
        p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env)
        if p.returncode == 0:
            return json.loads(p.stdout.strip().splitlines()[-1])
        log(f"{fn}{tuple(args)} failed (exit status {p.returncode}), attempt {attempt + 1}")
    raise RuntimeError(f"{fn}{tuple(args)} failed with exit status {p.returncode}")


def ours_micro(name: str, quick: bool, repeats: int) -> dict:
    from benchmarks.bench_protocols import measure

    r = measure("vs_" + name, quick, repeats, entry="benchmarks.vs_crypten")
    calls = repeats + 1  # the warm-up call has its own material
    return {
        "seconds": r["online_s"],
        "e2e_seconds": r["online_s"] + r["deal_s"] / calls,
        "bytes": max(r["online_MB_P1"], r["online_MB_P2"]) * 1e6,
        "rounds": r["rounds"],
        "offline_bytes": r["offline_MB"] * 1e6,
        "declared_equals_measured": r["declared==measured"],
        "max_err": vs_workloads.ours_error(name, quick),
        "status": "measured",
    }


def _bert_row(r: dict, err: float | None, note: str) -> dict:
    return {
        "seconds": r["seconds"],
        "e2e_seconds": r["seconds"] + (r["deal_s"] or 0.0) + r["pre_s"],
        "pre_seconds": r["pre_s"],
        "bytes": max(r["bytes_P1"], r["bytes_P2"]),
        "rounds": r["rounds"],
        "offline_bytes": r["offline_bytes"],
        "max_err": err,
        "err_note": note,
        "status": "measured",
        "scopes": r["scopes"],
    }


def ours_live(shape: str, layers: int, part: str, repeats: int = 1) -> dict:
    """A query as THREE processes, the helper P0 dealing its material live from the
    query's start (``barrier(helper=True)``: no head start) on the same 2 cores: the
    latency of a query end to end in the 3-party deployment (median of ``repeats``)."""
    r = vs_bert.measure_random(shape, layers, part, 0, repeats, mode="3party", warmup=1)
    if not r["result"].get("matches_plaintext"):
        raise RuntimeError(f"3-party {shape} {part}: output differs from the integer reference")
    return {"live_seconds": r["seconds"] + r["pre_s"], "live_rounds": r["rounds"]}


def bert_shape(quick: bool) -> str:
    return "tiny" if quick else "bert-base"


def ours_bert_layer(quick: bool, repeats: int, max_material: float) -> dict:
    shape = bert_shape(quick)
    need = vs_bert.material_bytes(shape, 1, "layer", 0 if quick else 128, repeats, 1)
    if need > max_material:
        repeats = 1
    r = vs_bert.measure_random(shape, 1, "layer", 0, repeats, warmup=1)
    ok = r["result"].get("matches_plaintext")
    err = 0.0 if ok else float(r["result"].get("max_err_int", "nan"))
    return {**_bert_row(r, err, "vs integer ref"), **ours_live(shape, 1, "layer")}


def ours_bert_base(quick: bool, max_material: float, layer: dict | None, repeats: int = 1) -> dict:
    """Measured (median of ``repeats`` queries, fewer if their material does not fit) when
    the material fits, else projected from the measured layer."""
    from models.ops_cost import declared_costs

    shape, layers = bert_shape(quick), 2 if quick else BERT_BASE["layers"]
    cfg = vs_bert.config(shape, layers).config
    c = declared_costs(cfg, cfg.seq_len)[""]

    def need(n: int) -> int:  # + the warm-up layer
        return vs_bert.material_bytes(shape, layers, "model", cfg.seq_len, n, 1)

    while repeats > 1 and need(repeats) > max_material:
        repeats -= 1
    if need(repeats) <= max_material:
        r = vs_bert.measure_random(shape, layers, "model", 0, repeats, warmup=1)
        ok = r["result"].get("matches_plaintext")
        row = _bert_row(r, 0.0 if ok else float("nan"), "logits vs integer ref")
        return {**row, **ours_live(shape, layers, "model", repeats), "repeats": repeats}
    row = {
        "status": f"skipped: needs {need(1) / 1e9:.1f} GB of helper material "
        f"(limit --max-material {max_material / 1e9:.1f} GB); PROJECTED",
        "bytes": float(max(c.online)),
        "rounds": int(c.rounds),
        "offline_bytes": float(sum(c.offline)),
        "projection": f"time = {layers} × measured one-layer time; bytes and rounds as "
        "declared by models.ops_cost (declared == measured in the tests)",
    }
    if layer:
        row["seconds"] = layers * layer["seconds"]
        row["e2e_seconds"] = layers * layer["e2e_seconds"]
    return row


def ours_minilm(n: int) -> tuple[dict, dict]:
    acc = vs_bert.sentiment_accuracy(n)
    r = vs_bert.measure_sentiment(SAMPLE_TEXT)
    row = _bert_row(r, None, "")
    row["result"] = r["result"]
    return row, acc


# -- CrypTen -----------------------------------------------------------------------------------
def crypten_row(name: str, quick: bool, repeats: int, **extra) -> dict:
    from benchmarks import crypten_side

    r = crypten_side.run(name, quick, repeats, **extra)
    return {
        "seconds": r["seconds"],
        "e2e_seconds": r["seconds"],
        "bytes": r["bytes_sent_per_party"],
        "counter_bytes": r["counter_bytes"],
        "rounds": r["rounds"],
        "max_err": r.get("max_err"),
        "status": "measured",
        **{k: r[k] for k in ("predictions", "float_predictions") if k in r},
    }


# -- projection and emulation ------------------------------------------------------------------
def project(row: dict, network: str) -> float | None:
    """t = t_loopback + rounds × RTT + bytes / bandwidth (bytes sent per party)."""
    if row.get("seconds") is None:
        return None
    bw, rtt = NETWORKS[network]
    return row["seconds"] + row["rounds"] * rtt + row["bytes"] * 8 / bw


def emulate(name: str, quick: bool, repeats: int, network: str) -> dict | None:
    """qbert-mpc under the emulated network (QBERT_NET_SHAPE in the parties' environment)."""
    from net.shaping import ENV

    bw, rtt = NETWORKS[network]
    old = os.environ.get(ENV)
    os.environ[ENV] = f"{bw},{rtt}"
    try:
        if name in MICRO:
            return ours_micro(name, quick, repeats)
        if name == "bert_layer":
            r = vs_bert.measure_random(bert_shape(quick), 1, "layer", 0, 1)
            return _bert_row(r, None, "")
        return None
    finally:
        if old is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = old


# -- driver ------------------------------------------------------------------------------------
def _ratio(a, b):
    return None if not a or b is None else b / a


def _accuracy(pred, labels) -> float:
    return sum(int(p == y) for p, y in zip(pred, labels, strict=True)) / len(labels)


RUN_ORDER = ["bert_layer", "bert_base", "minilm"] + MICRO  # the headline first


def _ordered(results: dict) -> dict:
    return {n: results[n] for n in WORKLOADS if n in results}


def run(a, checkpoint=None) -> dict:
    """Every workload in ``a``; ``checkpoint(partial)`` after each (partial results)."""
    names = [n for n in RUN_ORDER if n in (a.only or WORKLOADS)]
    max_material = a.max_material * 1e9
    results: dict[str, dict] = {}
    emulated: dict[str, dict] = {}
    for name in names:
        try:
            _one(a, name, results, emulated, max_material)
        except Exception as e:  # noqa: BLE001 - one failed workload must not lose the rest
            log(f"{name}: FAILED: {type(e).__name__}: {e}")
            results.setdefault(name, {}).setdefault("ours", {"status": f"failed: {e}"})
        if checkpoint:
            checkpoint({"results": _ordered(results), "emulated": emulated})
    return {"results": _ordered(results), "emulated": emulated}


def _one(a, name: str, results: dict, emulated: dict, max_material: float) -> None:
    """Measure workload ``name`` (both systems, then the emulated networks)."""
    log(f"{name}: qbert-mpc ...")
    res: dict = {}
    if name in MICRO:
        res["ours"] = fresh("ours_micro", name, a.quick, a.repeats)
        log(f"{name}: CrypTen ...")
        res["crypten"] = crypten_row(name, a.quick, a.repeats)
    elif name == "bert_layer":
        reps = min(a.repeats, BERT_REPEATS)
        res["ours"] = fresh("ours_bert_layer", a.quick, reps, max_material)
        log(f"{name}: CrypTen ...")
        res["crypten"] = crypten_row(name, a.quick, reps)
    elif name == "bert_base":
        layer = (results.get("bert_layer") or {}).get("ours")
        reps = min(a.repeats, BERT_BASE_REPEATS)
        res["ours"] = fresh("ours_bert_base", a.quick, max_material, layer, reps)
        if a.quick or a.no_crypten_full:
            c_layer = (results.get("bert_layer") or {}).get("crypten")
            c = dict(crypten_row("bert_base", a.quick, 1, layers=2) if a.quick else {})
            if not c and c_layer:
                c = {
                    k: v * BERT_BASE["layers"] if k in ("seconds", "bytes", "rounds") else v
                    for k, v in c_layer.items()
                    if k in ("seconds", "bytes", "rounds", "max_err")
                }
                c["e2e_seconds"] = c.get("seconds")
                c["status"] = "PROJECTED: 12 × measured CrypTen layer"
            res["crypten"] = c
        else:
            log(f"{name}: CrypTen (12 layers, {reps} run(s)) ...")
            res["crypten"] = crypten_row("bert_base", False, reps, layers=12)
    elif name == "minilm":
        n = a.sentences
        try:
            res["ours"], acc = fresh("ours_minilm", n)
        except Exception as e:  # noqa: BLE001 - the sentiment model is optional here
            log(f"{name}: qbert-mpc's sentiment model is unavailable: {e}")
            results[name] = {"ours": {"status": f"skipped: {type(e).__name__}: {e}"}}
            return
        log(f"{name}: CrypTen, 1 sentence × {a.repeats} and {n} sentences batched ...")
        texts = json.dumps([SAMPLE_TEXT])  # the sentence of ours' timed run
        res["crypten"] = crypten_row(
            "minilm", a.quick, a.repeats, texts=texts, seq_len=acc["seq_len"]
        )
        batch = crypten_row(
            "minilm", a.quick, 1, texts=json.dumps(acc["texts"]), seq_len=acc["seq_len"]
        )
        labels = acc["labels"]
        res["accuracy"] = {
            "sentences": n,
            "seq_len": acc["seq_len"],
            "float": _accuracy(acc["float_predictions"], labels),
            "ours": _accuracy(acc["ours_predictions"], labels),
            "crypten": _accuracy(batch["predictions"], labels),
            "ours_agree_float": _accuracy(acc["ours_predictions"], acc["float_predictions"]),
            "crypten_agree_float": _accuracy(batch["predictions"], acc["float_predictions"]),
            "crypten_batch_seconds": batch["seconds"],
            "crypten_max_logit_err": batch["max_err"],
        }
        res["crypten"]["max_err"] = batch["max_err"]
        res["crypten"]["err_note"] = "logits vs float model"
    results[name] = res
    for net in a.emulate:
        if name in EMULATED:
            log(f"{name}: qbert-mpc emulated {net} ...")
            try:
                em = fresh("emulate", name, a.quick, a.repeats, net)
            except RuntimeError as e:
                em = {"status": f"failed: {e}"}
            emulated.setdefault(name, {})[net] = em


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="small shapes, 1 repeat, no emulation")
    ap.add_argument("--only", nargs="*", choices=WORKLOADS, help="workloads to run")
    ap.add_argument("--repeats", type=int, default=3, help="measured runs per workload")
    ap.add_argument("--out", default="benchmarks/results", help="output folder")
    ap.add_argument(
        "--emulate",
        nargs="*",
        choices=sorted(NETWORKS),
        help="networks to emulate for qbert-mpc (default: lan wan; --quick: none)",
    )
    ap.add_argument(
        "--sentences", type=int, default=0, help="UCI sentences for accuracy (default 100)"
    )
    ap.add_argument(
        "--max-material",
        type=float,
        default=12.0,
        help="GB of dealt helper material a run may use (default 12)",
    )
    ap.add_argument(
        "--no-crypten-full",
        action="store_true",
        help="project CrypTen's 12-layer BERT-base from its layer instead of running it",
    )
    ap.add_argument(
        "--no-snapshot",
        action="store_true",
        help="run from the source tree itself (default: from a copy, see in_snapshot)",
    )
    ap.add_argument("--call", help=argparse.SUPPRESS)  # internal: see fresh()
    ap.add_argument(
        "--from-json",
        nargs="+",
        metavar="FILE",
        help="only re-render tables, plots, RESULTS.md from FILE(s) (later files add workloads)",
    )
    a = ap.parse_args(argv)
    if a.call:
        fn, *args = json.loads(a.call)
        print(json.dumps(globals()[fn](*args)))
        return 0
    if a.from_json:
        from benchmarks.vs_report import write

        docs = [json.loads(Path(f).read_text()) for f in a.from_json]
        data = docs[0]
        for d in docs[1:]:
            data["results"].update(d["results"])
            data["emulated"].update(d.get("emulated", {}))
            data["seconds"] = data.get("seconds", 0) + d.get("seconds", 0)
            data.setdefault("merged_from", []).append(d["settings"])
        data["results"] = _ordered(data["results"])
        if len(docs) > 1:  # complete when the merged runs cover every workload
            data["complete"] = list(data["results"]) == WORKLOADS
        print(write(data, Path(a.out)))
        return 0
    if not os.environ.get(SNAPSHOT_ENV) and not a.no_snapshot:
        argv = list(sys.argv[1:] if argv is None else argv)
        if "--out" not in argv:
            argv += ["--out", a.out]
        argv[argv.index("--out") + 1] = str(Path(a.out).resolve())
        return in_snapshot(argv)
    if a.quick:
        a.repeats = 1
    if a.emulate is None:
        a.emulate = [] if a.quick else ["lan", "wan"]
    a.sentences = a.sentences or (4 if a.quick else 100)
    from benchmarks import crypten_side

    if crypten_side.available() is None:
        print(
            "vs_crypten: CrypTen is not installed: `make bench-crypten`, or pip install "
            "'.[crypten]' and then `pip install --no-deps crypten==0.4.1`",
            file=sys.stderr,
        )
        return 2
    from benchmarks.vs_report import write

    t0 = time.perf_counter()
    settings = {
        "quick": a.quick,
        "repeats": a.repeats,
        "networks": {k: {"bandwidth_bit_s": v[0], "rtt_s": v[1]} for k, v in NETWORKS.items()},
        "emulated": a.emulate,
        "max_material_GB": a.max_material,
        "sentences": a.sentences,
        "command": " ".join(["python -m benchmarks.vs_crypten", *(argv or sys.argv[1:])]),
    }

    def checkpoint(partial: dict) -> None:
        partial.update(settings=settings, seconds=time.perf_counter() - t0, complete=False)
        write(partial, Path(a.out))

    data = run(a, checkpoint)
    data.update(settings=settings, seconds=time.perf_counter() - t0, complete=True)
    print(write(data, Path(a.out)))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "party":  # a party process started by run_job
        from net.cli import main as cli_main

        sys.exit(cli_main(sys.argv[1:]))
    sys.exit(main())
