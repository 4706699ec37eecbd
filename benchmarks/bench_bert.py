"""Secure BERT end to end, exactly as `qbert-mpc run` runs it (``net.cli.run_job``).

Models: the bundled MiniLM sentiment classifier (W8A8) on a real sentence, and the
BERT-base shape (12 layers, 768, 12 heads, FFN 3072, seq 128, random weights: time and
bytes depend on shapes and rings only). Each model runs in both modes:

* ``3party``: P0, P1, P2 as three processes on localhost, P0 streaming its material live
  (end-to-end wall, P1/P2's online time with P0 competing for the 2 cores);
* ``2party``: P0 deals to disk first (offline time, material bytes), then P1 and P2 run
  the online phase alone.

Reported per model and mode: wall (end to end incl. process start-up), online seconds
(the parties' whole programs) and of them the secure inference (``inference_s``: the
per-query scopes), the once-per-model weight preparation (``weights_s``) and P1's
input-independent pre-query products (``precompute_s``, before each query), offline
seconds, online bytes sent per party, helper material, rounds, and the per-layer
breakdown (``layer{i}`` scopes), and each party's CPU seconds (user + system of its timed
program: on two cores, what bounds a 3-party wall). Every model and mode runs
``--repeats`` times (modes interleaved): times are medians with the range beside them,
the per-scope table is the run of median inference time. A model whose declared
material does not fit the free memory and disk is skipped with the reason. JSON +
Markdown in ``--out``.

    python -m benchmarks.bench_bert                      # MiniLM and BERT-base, both modes
    python -m benchmarks.bench_bert --only minilm --modes 3party
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile

from benchmarks._report import machine_info, write_results

MODELS = {
    "minilm": {"model": "sentiment", "seq_len": 32, "what": "MiniLM sentiment (W8A8), seq 32"},
    "bert-base": {
        "model": "random",
        "random_config": "bert-base",
        "seq_len": 128,
        "what": "BERT-base shape, random W8A8, seq 128",
    },
}
TARGETS = {"wall_s": 8.0, "online_s": 4.0, "online_MB": 100.0, "rounds": 400, "material_GB": 2.0}


def _job_args(spec: dict, mode: str, timeout: float) -> argparse.Namespace:
    """The Namespace `qbert-mpc run --job bert ...` would parse."""
    from net.cli import build_parser

    argv = ["run", "--job", "bert", "--mode", mode, "--timeout", str(timeout)]
    argv += ["--model", spec["model"], "--seq-len", str(spec["seq_len"])]
    if "random_config" in spec:
        argv += ["--random-config", spec["random_config"]]
    return build_parser().parse_args(argv)


def declared_material(spec: dict) -> int:
    """Helper material of one inference plus the weight preparation (bytes, P1 + P2)."""
    from models.job import _config
    from models.ops_cost import declared_costs

    args = _job_args(spec, "3party", 60)
    cfg, _ = _config(args)
    costs = declared_costs(cfg, spec["seq_len"])
    return int(sum(costs[""].offline) + sum(costs["weights"].offline))


def fits(material: int, mode: str) -> str | None:
    """None if the material fits this machine, else why not."""
    free_mem = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if mode == "2party":
        free_disk = shutil.disk_usage(tempfile.gettempdir()).free
        if material > 0.8 * free_disk:
            return f"needs {material / 1e9:.1f} GB of dealt material, {free_disk / 1e9:.0f} GB free"
    if material > 0.5 * free_mem:
        return f"needs {material / 1e9:.1f} GB of material, {free_mem / 1e9:.0f} GB RAM free"
    return None


def measure(name: str, mode: str, timeout: float) -> dict:
    from net.cli import run_job
    from net.jobs import JOBS

    spec = MODELS[name]
    out = run_job(_job_args(spec, mode, timeout), JOBS["bert"])
    total = out["merged"]["total"]
    row = {
        "section": "models",
        "model": name,
        "what": spec["what"],
        "mode": mode,
        "wall_s": round(out["wall_seconds"], 2),
        "online_s": round(out["online_seconds"], 2),
        "inference_s": round(out["inference_seconds"], 2),
        "weights_s": round(out["weights_seconds"] or 0, 2),
        "precompute_s": round(out["precompute_seconds"] or 0, 2),
        "helper_s": None if out["helper_seconds"] is None else round(out["helper_seconds"], 2),
        "offline_s": round(out["offline"]["seconds"], 2) if out["offline"] else None,
        "P1_MB": round(total["online_bytes"][0] / 1e6, 2),
        "P2_MB": round(total["online_bytes"][1] / 1e6, 2),
        "material_GB": round(sum(total["offline_bytes"]) / 1e9, 3),
        "rounds": total["rounds"],
        "exact": out["result"].get("matches_plaintext"),
        **{f"cpu_{p}": round(sum(c), 2) for p, c in out["cpu_seconds"].items() if c},
    }
    layers = [
        {
            "section": f"{name} {mode} per scope",
            "scope": scope,
            "seconds": round(s["seconds"], 3),
            "rounds": s["rounds"],
            "P1_MB": round(s["online_bytes"][0] / 1e6, 3),
            "P2_MB": round(s["online_bytes"][1] / 1e6, 3),
            "material_MB": round(sum(s["offline_bytes"]) / 1e6, 1),
        }
        for scope, s in out["merged"]["scopes"].items()
        if "." not in scope
    ]
    return {"row": row, "layers": layers}


TIMES = ("wall_s", "online_s", "inference_s", "weights_s", "precompute_s", "helper_s")
TIMES += ("offline_s", "cpu_P0", "cpu_P1", "cpu_P2")


def median_run(runs: list[dict]) -> dict:
    """One row for repeated runs: each time its median (wall and inference with their
    range), everything else (bytes, rounds: the same every run) and the per-scope table
    from the run of median inference time."""
    mid = sorted(runs, key=lambda m: m["row"]["inference_s"])[(len(runs) - 1) // 2]
    row = dict(mid["row"], runs=len(runs))
    for col in TIMES:
        vals = [m["row"][col] for m in runs if m["row"].get(col) is not None]
        if vals:
            row[col] = round(statistics.median(vals), 2)
    for col in ("wall_s", "inference_s"):
        vals = [m["row"][col] for m in runs]
        row[col.replace("_s", "_range")] = f"{min(vals):.2f}-{max(vals):.2f}"
    row["exact"] = all(m["row"]["exact"] for m in runs)
    return {"row": row, "layers": mid["layers"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_bert",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--only", nargs="*", choices=sorted(MODELS), default=list(MODELS))
    ap.add_argument(
        "--modes", nargs="*", choices=["3party", "2party"], default=["3party", "2party"]
    )
    ap.add_argument("--timeout", type=float, default=600.0, help="per-party peer timeout (s)")
    ap.add_argument("--out", default="benchmarks/results", help="output folder")
    ap.add_argument(
        "--repeats", type=int, default=3, help="runs per model and mode (medians; default 3)"
    )
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    rows, layers, skipped = [], [], {}
    for name in args.only:
        material = declared_material(MODELS[name])
        modes = []
        for mode in args.modes:
            why = fits(material, mode)
            if why:
                skipped[f"{name} {mode}"] = why
                rows.append({"section": "models", "model": name, "mode": mode, "skipped": why})
                print(f"{name} {mode}: skipped ({why})", file=sys.stderr)
            else:
                modes.append(mode)
        runs: dict[str, list] = {mode: [] for mode in modes}
        for i in range(args.repeats):
            for mode in modes:
                print(f"{name} {mode} run {i + 1}/{args.repeats} ...", file=sys.stderr)
                runs[mode].append(measure(name, mode, args.timeout))
        for mode in modes:
            m = median_run(runs[mode])
            rows.append(m["row"])
            layers += m["layers"]
    cols = ["model", "scope", "mode", "runs", "seconds", "wall_s", "wall_range", "online_s"]
    cols += ["inference_s", "inference_range", "weights_s", "precompute_s", "helper_s"]
    cols += ["offline_s", "cpu_P0", "cpu_P1", "cpu_P2"]
    cols += ["P1_MB", "P2_MB", "material_GB", "material_MB", "rounds", "exact", "skipped"]
    md = write_results(
        "bench_bert",
        rows + layers,
        args.out,
        cols,
        title="Secure BERT end to end (qbert-mpc run)",
        extra={"targets_bert_base": TARGETS, "skipped": skipped},
        machine=machine_info(),
    )
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
