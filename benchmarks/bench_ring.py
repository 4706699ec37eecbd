"""Ring-arithmetic micro-benchmarks: exact Z_2^k matmul, bit-packing, TCP throughput.

Run as ``python -m benchmarks.bench_ring [--quick] [--out DIR]``. For k in (20, 32, 64) it
times the limb GEMM (``mpc.limbmatmul.matmul``) against numpy's uint64 integer matmul and a
plain float64 GEMM of the same shape, for a 128x768 @ 768x768 product and a batched
12 x (128x64 @ 64x128) product; then bit-packing throughput for several widths; then, if
``net.tcp.measure_throughput`` exists, localhost TCP throughput. All times are medians over
the repeats. Results go to ``DIR/bench_ring.json`` and ``DIR/bench_ring.md`` and the
Markdown is printed.
"""

from __future__ import annotations

import argparse
import importlib
import sys

import numpy as np

from benchmarks._report import machine_info, time_call, time_calls, write_results
from mpc.limbmatmul import matmul, plan
from mpc.packing import pack, packed_size, unpack
from mpc.ring import ring

RING_WIDTHS = (20, 32, 64)
PACK_BITS = (1, 8, 13, 20, 32)
MATMUL_CASES = (
    ("128x768 @ 768x768", (128, 768), (768, 768)),
    ("12x(128x64 @ 64x128)", (12, 128, 64), (12, 64, 128)),
)
COLUMNS = [
    "section",
    "case",
    "k",
    "plan",
    "limb_ms",
    "f64_ms",
    "uint64_ms",
    "limb/f64",
    "uint64/limb",
    "bits",
    "n",
    "pack_ms",
    "unpack_ms",
    "pack_MB/s",
    "unpack_MB/s",
    "pack_Melem/s",
    "unpack_Melem/s",
]


def bench_matmul(repeats: int, rng: np.random.Generator) -> list[dict]:
    rows = []
    for case, sa, sb in MATMUL_CASES:
        fa, fb = rng.random(sa), rng.random(sb)
        for k in RING_WIDTHS:
            r = ring(k)
            a = rng.integers(0, 2**64, size=sa, dtype=np.uint64) & r.mask
            b = rng.integers(0, 2**64, size=sb, dtype=np.uint64) & r.mask
            want = np.matmul(a, b) & r.mask
            if not np.array_equal(matmul(a, b, r), want):
                raise AssertionError(f"limb matmul mismatch for k={k}, {case}")
            batch = int(np.prod(np.broadcast_shapes(sa[:-2], sb[:-2])))
            p = plan(k, sa[-1], a.size, b.size, want.size, batch)
            # limb and float64 interleaved so that both see the same background load
            t = time_calls(
                {
                    "limb": lambda a=a, b=b, r=r: matmul(a, b, r),
                    "f64": lambda fa=fa, fb=fb: np.matmul(fa, fb),
                },
                repeats,
                warmup=2,
            )
            limb, f64 = t["limb"], t["f64"]
            ints = time_call(lambda a=a, b=b, r=r: np.matmul(a, b) & r.mask, max(2, repeats // 3))
            if p.direct:
                how = "uint64 matmul"
            else:
                how = f"{len(p.rects)} products, {p.gemm_calls} GEMM calls"
                how += f", {p.chunks} chunks" if p.chunks > 1 else ""
            rows.append(
                {
                    "section": "matmul mod 2^k (ms, median)",
                    "case": case,
                    "k": k,
                    "plan": how,
                    "limb_ms": limb["median_ms"],
                    "f64_ms": f64["median_ms"],
                    "uint64_ms": ints["median_ms"],
                    "limb/f64": limb["median_ms"] / f64["median_ms"],
                    "uint64/limb": ints["median_ms"] / limb["median_ms"],
                    "limb_min_ms": limb["min_ms"],
                    "f64_min_ms": f64["min_ms"],
                    "limb/f64_min": limb["min_ms"] / f64["min_ms"],
                    "plan_detail": p.describe(),
                }
            )
    return rows


def bench_packing(repeats: int, n: int, rng: np.random.Generator) -> list[dict]:
    rows = []
    for bits in PACK_BITS:
        v = rng.integers(0, 2**bits, size=n, dtype=np.uint64)
        buf = pack(v, bits)
        if not np.array_equal(unpack(buf, bits, n), v):
            raise AssertionError(f"packing round trip failed for {bits} bits")
        tp = time_call(lambda v=v, bits=bits: pack(v, bits), repeats)["median_ms"]
        tu = time_call(lambda buf=buf, bits=bits: unpack(buf, bits, n), repeats)["median_ms"]
        mb = packed_size(n, bits) / 1e6
        rows.append(
            {
                "section": "bit-packing (MB = 10^6 packed bytes)",
                "bits": bits,
                "n": n,
                "pack_ms": tp,
                "unpack_ms": tu,
                "pack_MB/s": mb / (tp / 1e3),
                "unpack_MB/s": mb / (tu / 1e3),
                "pack_Melem/s": n / 1e6 / (tp / 1e3),
                "unpack_Melem/s": n / 1e6 / (tu / 1e3),
            }
        )
    return rows


def bench_tcp(quick: bool) -> tuple[list[dict], list[str]]:
    try:
        tcp = importlib.import_module("net.tcp")
        measure = tcp.measure_throughput
    except (ImportError, AttributeError):
        print("TCP: skipped (net.tcp not available)")
        return [], []
    rows, cols = [], []
    for nbytes in (1 << 20, 1 << 22) if quick else (1 << 20, 1 << 26):
        res = measure(nbytes, 2 if quick else 3)
        row = {"section": "TCP localhost (net.tcp.measure_throughput)", "nbytes": nbytes}
        for key, val in dict(res).items():
            row[key] = val
            if key not in cols and isinstance(val, int | float | str | bool):
                cols.append(key)
        rows.append(row)
    return rows, ["nbytes", *[c for c in cols if c != "nbytes"]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_ring",
        description="Benchmark exact Z_2^k matmul (limb GEMM vs numpy uint64 vs float64), "
        "bit-packing throughput and (if available) localhost TCP throughput.",
    )
    ap.add_argument("--quick", action="store_true", help="fewer repeats and smaller inputs")
    ap.add_argument("--out", default="benchmarks/results", help="output directory")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement")
    ap.add_argument("--no-tcp", action="store_true", help="skip the TCP section")
    args = ap.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 11)
    rng = np.random.default_rng(2024)

    rows = bench_matmul(repeats, rng)
    rows += bench_packing(repeats, 200_000 if args.quick else 1_000_000, rng)
    columns = list(COLUMNS)
    if args.no_tcp:
        print("TCP: skipped (--no-tcp)")
    else:
        tcp_rows, tcp_cols = bench_tcp(args.quick)
        rows += tcp_rows
        columns += [c for c in tcp_cols if c not in columns]
    md = write_results(
        "bench_ring",
        rows,
        args.out,
        columns,
        title="Ring arithmetic benchmarks",
        extra={"quick": args.quick, "repeats": repeats},
        machine=machine_info(),
    )
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
