"""Soak: many sequential secure inferences in ONE set of party processes.

P0 (live), P1 and P2 start once as three TCP processes (``net.cli.run_job``); the model's
weights are prepared once, then the same query runs ``--iterations`` times. After every
query each party records its resident memory (RSS, after ``gc.collect()``), the time, and
(P1/P2) how many helper frames wait unread in its transport queue.

The live helper never waits for anyone, and the TCP receiver thread buffers whatever
arrives, so a helper faster than the online phase runs ahead and P1/P2 hold its lead in
memory (unbounded over many queries). ``--window W`` (default 1) bounds the lead: P1 and P2
acknowledge each query with a control frame, and P0 deals query i only after the
acknowledgements of query i - W (flushing its batched material first). ``--window 0``
lets P0 run free, to measure that effect. P1 checks that every query's logits are the
same and equal the plaintext reference. Each party writes its series to ``--rss-dir``
(and, after every query, its count of finished queries to ``progress_P<i>``);
the script merges them into ``<out>/<name>.json`` and ``.md`` (RSS every
``--every`` iterations and a growth summary: after the ``--warmup`` first queries, the
least-squares slope and the max - min of each party's RSS).

    python -m benchmarks.soak                         # tiny model, 300 queries
    python -m benchmarks.soak --window 0 --name soak_free     # P0 unthrottled
    python -m benchmarks.soak --iterations 500 --config minilm --seq-len 16
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from net.jobs import JOBS, Job

CONFIGS = ("tiny", "tiny1", "minilm", "bert-base")


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; else the peak from rusage)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


ACK = b"QBSOAKACK"


def _live(rt) -> bool:
    """A 3-party run with P0 streaming (not dealing to disk, not dealt material)."""
    from net.runtime import LiveSink, LiveSource

    return isinstance(rt.sink if rt.is_dealer else rt.source, (LiveSink, LiveSource))


def _wait_acks(rt) -> None:
    """P0: flush the batched material, then wait for one acknowledgement of P1 and P2. A
    failing P1/P2 sends an abort naming the party it lost (``net.party``): raised as such."""
    from net.errors import FrameError, PeerDisconnected
    from net.framing import KIND_CONTROL
    from net.party import ABORT

    rt.finish()  # LiveSink.finish flushes only; P1/P2 may be waiting on the batch
    for p in (1, 2):
        _, payload = rt._recv_frame(p, KIND_CONTROL)
        payload = bytes(payload)
        if payload.startswith(ABORT) and len(payload) > len(ABORT):
            lost, what = payload[len(ABORT)], payload[len(ABORT) + 1 :].decode("ascii", "replace")
            raise PeerDisconnected(lost, f"P{p} aborted the run ({what} from P{lost})")
        if payload != ACK:
            raise FrameError(p, "expected a soak acknowledgement")


def _ack(rt) -> None:
    from net.framing import KIND_CONTROL

    rt._send_frame(0, KIND_CONTROL, ACK, 0)


def queued_frames(rt) -> int | None:
    """Helper frames received but not read yet (TCP transport internals; None if unknown)."""
    try:
        return rt.transport._links[0].queue.qsize()
    except (AttributeError, KeyError, TypeError):
        return None


def model(name: str, seed: int):
    """A random valid quantized model (public seed) of a preset shape; "tiny1": 1 layer."""
    from dataclasses import replace

    from models.qmodel import preset
    from models.qrandom import random_qbert

    cfg = replace(preset("tiny"), layers=1) if name == "tiny1" else preset(name)
    return random_qbert(cfg, seed=seed)


# -- the job ----------------------------------------------------------------------------------
def _options(g) -> None:
    g.add_argument("--soak-config", choices=CONFIGS, default="tiny", help="model shape")
    g.add_argument("--soak-iterations", type=int, default=20, help="sequential queries")
    g.add_argument("--soak-seq-len", type=int, default=8, help="tokens per query")
    g.add_argument("--soak-seed", type=int, default=0, help="public seed of model and input")
    g.add_argument("--rss-dir", default="", help="folder for each party's rss_P<i>.json")
    g.add_argument("--soak-window", type=int, default=1, help="P0's lead in queries (0: unbounded)")
    g.add_argument(
        "--soak-leak-kb",
        type=int,
        default=0,
        help="testing aid: every party keeps this many KB per query (a planted leak)",
    )


def _program(rt, args) -> dict:

    from models.ops_plain import reference_logits
    from models.ops_secure import prepare, secure_logits, share_inputs
    from models.qrandom import random_input

    params = model(args.soak_config, args.soak_seed)
    cfg, L = params.config, int(args.soak_seq_len)
    x = mask = None
    if rt.rank == 1:
        x, mask = random_input(cfg, L, seed=args.soak_seed + 1, valid=max(1, L - 2))
    t0 = time.perf_counter()
    with rt.scope("weights_once"):
        prep = prepare(rt, params if rt.rank == 2 else None, cfg)
    gc.collect()
    series = {"rss": [rss_bytes()], "seconds": [time.perf_counter() - t0], "queued": []}
    first = None
    same = True
    kept = []  # the planted leak, if any
    n, window = int(args.soak_iterations), int(args.soak_window) if _live(rt) else 0
    for i in range(n):
        if rt.is_dealer and window and i >= window:
            _wait_acks(rt)  # for query i - window
        with rt.scope("query"):
            xs, ms = share_inputs(rt, cfg, x, mask, seq_len=L)
            out = secure_logits(rt, prep, cfg, xs, ms)
        if window and not rt.is_dealer:
            _ack(rt)
        if rt.rank == 1:
            first = out if first is None else first
            same = same and bool((out == first).all())
        del xs, ms, out
        if args.soak_leak_kb:
            kept.append(bytearray(b"\x01" * (1024 * int(args.soak_leak_kb))))
        gc.collect()
        series["rss"].append(rss_bytes())
        series["seconds"].append(time.perf_counter() - t0)
        series["queued"].append(queued_frames(rt) if rt.rank else None)
        if args.rss_dir:  # progress, for watchers (e.g. a test that kills a party)
            Path(args.rss_dir, f"progress_P{rt.rank}").write_text(str(i + 1))
    if rt.is_dealer:
        for _ in range(min(window, n)):  # the last acknowledgements, before the goodbye
            _wait_acks(rt)
    if args.rss_dir:
        Path(args.rss_dir, f"rss_P{rt.rank}.json").write_text(json.dumps(series))
    if rt.rank != 1:
        return {}
    want = reference_logits(params, cfg, x, mask)
    return {
        "iterations": int(args.soak_iterations),
        "logits": [int(v) for v in first],
        "identical": same,
        "matches_plaintext": bool((first == want).all()),
    }


def _program_id(args) -> str:
    key = f"soak:{args.soak_config}:{args.soak_iterations}:{args.soak_seq_len}:{args.soak_seed}"
    key += f":{args.soak_window}:{args.soak_leak_kb}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _summary(res: dict) -> list[str]:
    return [f"soak: {res['iterations']} queries, identical: {res['identical']}"]


SOAK_JOB = Job(
    name="soak",
    help="sequential secure inferences in one set of processes (benchmarks/soak.py)",
    add_options=_options,
    program=_program,
    program_id=_program_id,
    summary=_summary,
)
JOBS.setdefault(SOAK_JOB.name, SOAK_JOB)


# -- driver -----------------------------------------------------------------------------------
def growth(rss: list[int], warmup: int) -> dict:
    """RSS statistics after the first ``warmup`` queries (bytes): least-squares slope per
    query, max - min, and last - first."""
    import numpy as np

    tail = np.asarray(rss[warmup + 1 :], dtype=np.float64)  # rss[0]: after prepare
    if tail.size < 2:
        raise ValueError("need at least two queries after the warm-up")
    slope = float(np.polyfit(np.arange(tail.size), tail, 1)[0])
    return {
        "slope_per_query": slope,
        "spread": float(tail.max() - tail.min()),
        "net": float(tail[-1] - tail[0]),
        "peak": float(max(rss)),
    }


def soak(
    iterations: int,
    config: str = "tiny",
    seq_len: int = 8,
    seed: int = 0,
    warmup: int = 10,
    timeout: float = 600.0,
    window: int = 1,
    leak_kb: int = 0,
) -> dict:
    """Run the soak job (3 processes, P0 live); return P1's result, the per-party series
    and their growth after ``warmup`` queries."""
    from net.cli import run_job

    with tempfile.TemporaryDirectory(prefix="qbert-soak-") as tmp:
        args = argparse.Namespace(
            mode="3party",
            timeout=timeout,
            tls=False,
            soak_config=config,
            soak_iterations=iterations,
            soak_seq_len=seq_len,
            soak_seed=seed,
            rss_dir=tmp,
            soak_window=window,
            soak_leak_kb=leak_kb,
        )
        t0 = time.perf_counter()
        out = run_job(args, SOAK_JOB, entry="benchmarks.soak")
        wall = time.perf_counter() - t0
        series = {r: json.loads(Path(tmp, f"rss_P{r}.json").read_text()) for r in (0, 1, 2)}
    scopes = out["merged"]["scopes"]
    return {
        "config": config,
        "iterations": iterations,
        "seq_len": seq_len,
        "warmup": warmup,
        "window": window,
        "wall_seconds": wall,
        "result": out["result"],
        "series": series,
        "growth": {r: growth(s["rss"], warmup) for r, s in series.items()},
        "query_median_seconds": scopes["query"].get("median_seconds"),
        "query_calls": scopes["query"]["calls"],
    }


def _rows(res: dict, every: int) -> list[dict]:
    rows = []
    n = res["iterations"]
    for i in sorted({*range(0, n + 1, max(every, 1)), n}):
        row = {"section": "RSS over time (MB)", "query": i}
        for r in (0, 1, 2):
            s = res["series"][r]
            row[f"P{r}_MB"] = round(s["rss"][i] / 1e6, 2)
            if r and i and s["queued"][i - 1] is not None:
                row[f"P{r}_queued"] = s["queued"][i - 1]
        row["t_s"] = round(res["series"][1]["seconds"][i], 2)
        rows.append(row)
    for r in (0, 1, 2):
        g = res["growth"][r]
        rows.append(
            {
                "section": f"growth after {res['warmup']} warm-up queries",
                "party": f"P{r}",
                "slope_KB_per_query": round(g["slope_per_query"] / 1e3, 2),
                "spread_MB": round(g["spread"] / 1e6, 2),
                "net_MB": round(g["net"] / 1e6, 2),
                "peak_MB": round(g["peak"] / 1e6, 2),
            }
        )
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--iterations", type=int, default=300, help="sequential queries")
    ap.add_argument("--config", choices=CONFIGS, default="tiny", help="model shape")
    ap.add_argument("--seq-len", type=int, default=8, help="tokens per query")
    ap.add_argument("--seed", type=int, default=0, help="public seed of model and input")
    ap.add_argument("--warmup", type=int, default=10, help="queries left out of the growth")
    ap.add_argument("--window", type=int, default=1, help="P0's lead in queries (0: P0 runs free)")
    ap.add_argument("--every", type=int, default=0, help="table row every N queries")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per party")
    ap.add_argument("--out", default="benchmarks/results", help="output folder")
    ap.add_argument("--name", default="soak", help="output file stem (default: soak)")
    a = ap.parse_args(argv)
    if a.iterations < a.warmup + 2:
        ap.error("--iterations must exceed --warmup by at least 2")
    from benchmarks._report import write_results

    res = soak(a.iterations, a.config, a.seq_len, a.seed, a.warmup, a.timeout, a.window)
    cols = ["query", "P0_MB", "P1_MB", "P2_MB", "P1_queued", "P2_queued", "t_s", "party"]
    cols += ["slope_KB_per_query", "spread_MB", "net_MB", "peak_MB"]
    every = a.every or max(1, a.iterations // 20)
    ok = res["result"]["identical"] and res["result"]["matches_plaintext"]
    md = write_results(
        a.name,
        _rows(res, every),
        a.out,
        cols,
        title=f"Soak: {a.iterations} queries of a {a.config} model, seq {a.seq_len}, "
        f"3 TCP processes (P0 live, window {a.window or 'unbounded'}); identical results: {ok}",
        extra={k: v for k, v in res.items() if k != "result"} | {"result": res["result"]},
    )
    print(md)
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "party":  # a party process started by run_job
        from net.cli import main as cli_main

        sys.exit(cli_main(sys.argv[1:]))
    sys.exit(main())
