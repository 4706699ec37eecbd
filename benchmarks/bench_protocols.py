"""Protocol micro-benchmarks at BERT-base sizes over the real runtime: P1 and P2 as two
processes talking TCP on localhost, on material dealt beforehand (online_s: the online
phase; deal_s: the helper writing the material), then again as three processes with P0
streaming its material live (live_s: P0 competes for the same 2 cores). One BLAS thread
per party.

For each workload: online wall time (median over repeats of the protocol scope), each
party's CPU seconds per call (process time, network threads included: a figure that
depends less on the machine's load than wall time), online bytes sent per party, offline
bytes per party, rounds, and whether the measured cost equals the protocol's declared
cost. JSON + Markdown in --out.

    python -m benchmarks.bench_protocols            # all workloads
    python -m benchmarks.bench_protocols --quick    # smaller sizes, 1 repeat
    python -m benchmarks.bench_protocols --only lut8 relu
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mpc.ring import ring
from net.jobs import JOBS, Job


@dataclass(frozen=True)
class Workload:
    name: str
    what: str
    shape: Callable[[bool], tuple]  # quick -> input shape
    run: Callable  # (rt, shape, rng) -> None, the measured call inside scope "proto"
    declared: Callable  # shape -> Cost
    setup: Callable | None = None  # (rt, shape, rng) -> state, outside the scope
    unit: int = 1  # elements per call, for a throughput column


def _rand_input(rt, k, shape, seed=1):
    x = np.random.default_rng(seed).integers(0, 1 << min(k, 62), shape, dtype=np.uint64)
    return rt.input(1, ring(k), shape, x if rt.rank == 1 else None)


def _linear_setup(rt, shape, rng):
    from protocols.beaver import prepare_weight

    k, (n, d, m) = 24, shape
    w = np.random.default_rng(2).integers(-127, 128, (d, m)) if rt.rank == 2 else None
    with rt.scope("weights"):
        pw = prepare_weight(rt, w, ring(k), (d, m), owner=2)
    return _rand_input(rt, k, (n, d)), pw


def _linear_run(rt, shape, state):
    from protocols.beaver import linear

    linear(rt, *state)


def _linear_cost(shape):
    from protocols.beaver import cost_linear

    n, d, m = shape
    return cost_linear((n, d), (d, m), 24)


def _bmm_setup(rt, shape, rng):
    h, n, d = shape
    return _rand_input(rt, 24, (h, n, d)), _rand_input(rt, 24, (h, d, n), 3)


def _bmm_run(rt, shape, state):
    from protocols.beaver import bmm

    bmm(rt, *state)


def _bmm_cost(shape):
    from protocols.beaver import cost_bmm

    h, n, d = shape
    return cost_bmm((h, n, d), (h, d, n), 24)


_TABLE = np.random.default_rng(5).integers(0, 256, 256)


def _lut_run(rt, shape, state):
    from protocols.lut import lut

    lut(rt, state, [(_TABLE, ring(8))])


def _lut_cost(shape):
    from protocols.lut import cost_lut

    return cost_lut(shape, 8, [ring(8)])


def _cmp_run(fn_name):
    def run(rt, shape, state):
        import protocols.compare as C
        import protocols.relu as R

        getattr(C if fn_name == "drelu" else R, fn_name)(rt, state)

    return run


def _cmp_cost(fn_name):
    def cost(shape):
        import protocols.compare as C
        import protocols.relu as R

        return (C.cost_msb if fn_name == "drelu" else R.cost_relu)(shape, 32)

    return cost


def _softmax_setup(rt, shape, rng):
    x = np.random.default_rng(6).normal(0, 16, shape).clip(-128, 127).astype(np.int64)
    return rt.input(1, ring(9), shape, ring(9).reduce(x) if rt.rank == 1 else None)


def _softmax_run(rt, shape, state):
    from protocols.softmax import softmax

    softmax(rt, state)


def _softmax_cost(shape):
    from protocols.softmax import cost_softmax

    return cost_softmax(shape)


GELU_ACC_BITS, GELU_C = 24, 8


def _gelu_setup(rt, shape, rng):
    x = np.random.default_rng(7).normal(0, 2**10, shape).astype(np.int64)
    r = ring(GELU_ACC_BITS)
    return rt.input(1, r, shape, r.reduce(x) if rt.rank == 1 else None)


def _gelu_run(rt, shape, state):
    from protocols.activations import gelu_requant

    gelu_requant(rt, state, GELU_C)


def _gelu_cost(shape):
    from protocols.activations import cost_gelu_requant

    return cost_gelu_requant(shape, GELU_C)


LN_BITS = 52


def _ln_setup(rt, shape, rng):
    x = np.random.default_rng(8).normal(0, 300, shape).clip(-2047, 2047).astype(np.int64)
    r = ring(LN_BITS)
    xs = rt.input(1, r, shape, r.reduce(x) if rt.rank == 1 else None)
    d = shape[-1]
    g = np.random.default_rng(9).integers(200, 300, d) if rt.rank == 2 else None
    b = np.random.default_rng(10).integers(-50, 50, d) if rt.rank == 2 else None
    return xs, g, b


def _ln_run(rt, shape, state):
    from protocols.layernorm import layernorm

    layernorm(rt, *state)


def _ln_cost(shape):
    from protocols.layernorm import cost_layernorm

    return cost_layernorm(shape, LN_BITS)


WORKLOADS = {
    w.name: w
    for w in [
        Workload(
            "linear",
            "shared X · private W (mask reused), Z_2^24",
            lambda q: (32, 256, 256) if q else (128, 768, 768),
            _linear_run,
            _linear_cost,
            _linear_setup,
        ),
        Workload(
            "bmm",
            "shared × shared batched matmul over heads, Z_2^24",
            lambda q: (4, 32, 64) if q else (12, 128, 64),
            _bmm_run,
            _bmm_cost,
            _bmm_setup,
        ),
        Workload(
            "lut8",
            "one-input LUT, 8-bit index, 8-bit output",
            lambda q: (1 << 16,) if q else (1 << 20,),
            _lut_run,
            _lut_cost,
            lambda rt, s, g: _rand_input(rt, 8, s),
            1,
        ),
        Workload(
            "drelu",
            "G-module DReLU, Z_2^32",
            lambda q: (1 << 14,) if q else (1 << 20,),
            _cmp_run("drelu"),
            _cmp_cost("drelu"),
            lambda rt, s, g: _rand_input(rt, 32, s),
        ),
        Workload(
            "relu",
            "G-module ReLU, Z_2^32",
            lambda q: (1 << 14,) if q else (1 << 20,),
            _cmp_run("relu"),
            _cmp_cost("relu"),
            lambda rt, s, g: _rand_input(rt, 32, s),
        ),
        Workload(
            "softmax",
            "softmax over the last axis of int8 scores",
            lambda q: (2, 32, 32) if q else (12, 128, 128),
            _softmax_run,
            _softmax_cost,
            _softmax_setup,
        ),
        Workload(
            "gelu",
            f"GELU fused in the exact requant of a {GELU_ACC_BITS}-bit accumulator",
            lambda q: (32, 256) if q else (128, 3072),
            _gelu_run,
            _gelu_cost,
            _gelu_setup,
        ),
        Workload(
            "layernorm",
            "LayerNorm with private gamma/beta",
            lambda q: (16, 128) if q else (128, 768),
            _ln_run,
            _ln_cost,
            _ln_setup,
        ),
    ]
}


def _options(g) -> None:
    g.add_argument("--workload", default="lut8", choices=sorted(WORKLOADS))
    g.add_argument("--quick-size", type=int, default=0, help="1: the --quick shapes")
    g.add_argument("--repeats", type=int, default=3, help="measured calls")


def _program(rt, args) -> dict:
    w = WORKLOADS[args.workload]
    shape = w.shape(bool(args.quick_size))
    rng = np.random.default_rng(0)
    state = w.setup(rt, shape, rng) if w.setup else None
    with rt.scope("warmup"):  # JIT compilation and first-touch memory, not measured
        w.run(rt, shape, state)
    cpu = []
    for _ in range(args.repeats):
        rt.barrier()  # equal clocks: the scope's rounds are the protocol's own
        c0 = time.process_time()
        with rt.scope("proto"):
            w.run(rt, shape, state)
        cpu.append(time.process_time() - c0)
    out: dict = {"shape": list(shape)}
    if not rt.is_dealer:  # CPU seconds per call of both parties (outside the measured scope)
        mine = np.array([round(c * 1e6) for c in cpu], dtype=np.uint64)
        with rt.scope("cpu-report"):
            (other,) = rt.exchange([(ring(64), mine)])
        both = (mine, other) if rt.rank == 1 else (other, mine)
        out["cpu_seconds"] = [float(np.median(c)) / 1e6 for c in both]
    if rt.rank == 1 and w.name == "linear":  # float64 GEMM of the same shape, same process
        a = np.random.default_rng(0).normal(size=shape[:2])
        b = np.random.default_rng(1).normal(size=shape[1:])
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
        out["float64_gemm_seconds"] = float(np.median(times))
    return out


def _program_id(args) -> str:
    return f"bench:{args.workload}:{args.quick_size}:{args.repeats}"


BENCH_JOB = Job(
    "bench-protocol",
    "one protocol micro-benchmark (see benchmarks/bench_protocols.py)",
    _options,
    _program,
    _program_id,
    lambda r: [str(r)],
)
JOBS.setdefault(BENCH_JOB.name, BENCH_JOB)


def measure(
    name: str,
    quick: bool,
    repeats: int,
    timeout: float = 600.0,
    live: bool = False,
    entry: str = "benchmarks.bench_protocols",
) -> dict:
    """One workload on dealt material (P1, P2 processes); with ``live`` also once more with
    the helper P0 as a third process streaming its material (column live_s). ``entry``: the
    module the party processes run (one that registers extra WORKLOADS, then calls main)."""
    from net.cli import run_job

    w = WORKLOADS[name]
    args = argparse.Namespace(
        mode="2party",
        timeout=timeout,
        tls=False,
        workload=name,
        quick_size=int(quick),
        repeats=repeats,
    )
    out = run_job(args, BENCH_JOB, entry=entry)
    s = out["merged"]["scopes"]["proto"]
    declared = w.declared(w.shape(quick)).times(repeats)
    measured = (s["online_bytes"], s["offline_bytes"], s["rounds"])
    same = measured == (list(declared.online), list(declared.offline), declared.rounds)
    n = int(np.prod(w.shape(quick)))
    med = s["median_seconds"]
    row = {
        "workload": name,
        "what": w.what,
        "shape": "x".join(map(str, w.shape(quick))),
        "online_s": round(med, 4),
        "online_MB_P1": round(s["online_bytes"][0] / repeats / 1e6, 3),
        "online_MB_P2": round(s["online_bytes"][1] / repeats / 1e6, 3),
        "offline_MB": round(sum(s["offline_bytes"]) / repeats / 1e6, 3),
        "rounds": s["rounds"] // repeats,
        "declared==measured": same,
        "Melem_per_s": round(n / med / 1e6, 2),
    }
    if "cpu_seconds" in out["result"]:  # process CPU time per call: less load-dependent
        row["cpu_s_P1"], row["cpu_s_P2"] = (round(c, 4) for c in out["result"]["cpu_seconds"])
    row["deal_s"] = round(out["offline"]["seconds"], 3)
    if live:
        args.mode = "3party"
        out3 = run_job(args, BENCH_JOB, entry=entry)
        row["live_s"] = round(out3["merged"]["scopes"]["proto"]["median_seconds"], 4)
    if "float64_gemm_seconds" in out["result"]:
        g = out["result"]["float64_gemm_seconds"]
        row["vs_float64_gemm"] = round(med / g, 2)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="small shapes, 1 repeat")
    ap.add_argument("--only", nargs="*", choices=sorted(WORKLOADS), help="workloads to run")
    ap.add_argument("--repeats", type=int, default=3, help="measured calls per workload")
    ap.add_argument("--out", default="benchmarks/results", help="output folder")
    ap.add_argument(
        "--no-live", action="store_true", help="skip the 3-process run with P0 streaming live"
    )
    a = ap.parse_args(argv)
    from benchmarks._report import write_results

    rows = []
    for name in a.only or list(WORKLOADS):
        print(f"[bench_protocols] {name} ...", file=sys.stderr, flush=True)
        rows.append(measure(name, a.quick, 1 if a.quick else a.repeats, live=not a.no_live))
    cols = list(dict.fromkeys(k for r in rows for k in r))
    print(write_results("bench_protocols", rows, a.out, cols))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "party":  # a party process started by run_job
        from net.cli import main as cli_main

        sys.exit(cli_main(sys.argv[1:]))
    sys.exit(main())
