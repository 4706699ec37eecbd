"""The ``qbert-mpc`` command line.

    qbert-mpc run                        secure inference of the bundled sentiment model on
                                         a sample sentence: three local processes (P0 live)
    qbert-mpc run --text "..."           ... on your sentence
    qbert-mpc run --mode 2party          deal first, then only P1 and P2 online
    qbert-mpc deal --out DIR --runs N    helper material for N later 2-party runs
    qbert-mpc party --config hosts.toml --role P1 [--material DIR --run I]
                                         one party of a LAN run (start P0, P1, P2 on their hosts)
    qbert-mpc quantize --out DIR         quantize a BERT classifier into a model folder
    qbert-mpc eval                       accuracy: float vs W8A8 / W4A8 / W1A8 (UCI sentences)

Errors are one line on stderr and a non-zero exit; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from net import certs
from net.alloc import keep_freed_memory
from net.jobs import JOBS

EXIT_ERROR = 2


def _add_job_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--job",
        choices=sorted(JOBS),
        default="bert",
        help="what to compute: bert (a BERT classifier, the default) or demo (ReLU(X·W))",
    )
    for job in JOBS.values():
        job.add_options(p.add_argument_group(f"options of --job {job.name}", job.help))


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="qbert-mpc",
        description="Secure multi-party inference of quantized BERT models. Two computing "
        "parties (P1: the client, P2: the model owner) hold additive shares; a helper P0 "
        "deals correlated randomness and never sees inputs or outputs. Semi-honest, one "
        "corruption, P0 does not collude.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run",
        help="run all parties on this machine as separate processes",
        description="Start P0, P1 and P2 (or P1 and P2 on dealt material) as "
        "processes on localhost, print the result, time, bytes and rounds.",
    )
    run.add_argument(
        "--mode",
        choices=["3party", "2party"],
        default="3party",
        help="3party: helper streams material live; 2party: deal to disk first, "
        "then time only the online phase (default: 3party)",
    )
    run.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds a party waits for a peer before failing (default: 120)",
    )
    run.add_argument("--report", metavar="FILE", help="write the merged JSON report here")
    run.add_argument(
        "--all-scopes", action="store_true", help="print every sub-scope, not only the top level"
    )
    certs.add_run_options(run)
    _add_common(run)
    _add_job_options(run)

    party = sub.add_parser(
        "party",
        help="run one party (for runs across hosts)",
        description="Run one party of a job; the peers are found through "
        "the host config. Start every party with the same config and job "
        "options.",
    )
    party.add_argument(
        "--config",
        required=True,
        metavar="HOSTS.toml",
        help="host config: [session] and [parties.P0/P1/P2] host and port",
    )
    party.add_argument("--role", required=True, choices=["P0", "P1", "P2"])
    party.add_argument(
        "--material", metavar="DIR", help="dealt material folder (2-party mode: P0 is not started)"
    )
    party.add_argument("--run", type=int, default=0, help="which dealt run to use (default 0)")
    _add_common(party)
    _add_job_options(party)

    deal = sub.add_parser(
        "deal",
        help="write the helper's material for later 2-party runs",
        description="Run the helper P0 alone and write P1's and P2's "
        "correlated randomness for N runs of the job.",
    )
    deal.add_argument("--out", required=True, metavar="DIR", help="output folder")
    deal.add_argument("--runs", type=int, default=1, help="number of runs to deal (default 1)")
    _add_common(deal)
    _add_job_options(deal)
    certs.register(sub)
    from models.evaluate import register

    register(sub, _add_common)
    return ap


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.2f} {unit}"
        n /= 1000
    return str(n)


def _cmd_party(args, job) -> dict:
    from net.hosts import load_hosts
    from net.party import run_party

    hosts = load_hosts(args.config)  # a bad host file fails before any slow preparation
    rank = int(args.role[1])
    if job.prepare:
        job.prepare(args, rank)
    return run_party(rank, hosts, job, args, material=args.material, run=args.run)


def _cmd_deal(args, job) -> dict:
    from net.party import deal

    if args.runs < 1:
        raise ValueError("--runs must be at least 1")
    if job.prepare:
        job.prepare(args, 0)
    return deal(job, args, args.out, args.runs, progress=not args.json)


def _job_argv(args, job, rank: int) -> list[str]:
    """The job options for party ``rank`` (``client_only`` ones go to P1 only)."""
    argv = ["--job", job.name]
    probe = argparse.ArgumentParser(add_help=False)
    job.add_options(probe)
    for action in probe._actions:
        if action.dest in job.client_only and rank != 1:
            continue
        argv += [action.option_strings[0], str(getattr(args, action.dest))]
    return argv


def run_job(args, job, entry: str = "net.cli") -> dict:
    """Run ``job`` as 2 or 3 local processes (``args``: mode, timeout, tls, job options).

    Children run ``python -m <entry> party ...``; an entry module other than the CLI lets
    benchmarks and tests run jobs they register themselves (the entry calls ``main``)."""
    from net.accounting import merge_reports, per_query
    from net.hosts import local_hosts
    from net.launcher import launch
    from net.party import deal

    if job.prepare:
        job.prepare(args)
    hosts = local_hosts()
    with tempfile.TemporaryDirectory(prefix="qbert-mpc-") as tmp:
        cfg = Path(tmp) / "hosts.toml"
        if args.tls:
            hosts = certs.local_tls(hosts, Path(tmp) / "certs")
        cfg.write_text(hosts.to_toml(timeout=args.timeout))
        ranks = (0, 1, 2)
        extra: list[str] = []
        offline = None
        if args.mode == "2party":
            offline = deal(job, args, Path(tmp) / "material", 1, progress=False)
            ranks = (1, 2)
            extra = ["--material", str(Path(tmp) / "material")]
        base = [sys.executable, "-m", entry, "party", "--config", str(cfg), "--json"]
        commands = {r: base + ["--role", f"P{r}"] + _job_argv(args, job, r) + extra for r in ranks}
        t0 = time.perf_counter()
        # The parties share this machine's cores: one BLAS thread each avoids oversubscription.
        env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        top = importlib.util.find_spec(entry.split(".")[0])
        if top and top.submodule_search_locations:  # e.g. benchmarks/, not installed
            root = str(Path(list(top.submodule_search_locations)[0]).parent)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
        results = launch(commands, timeout=args.timeout * 4, env=env)
        wall = time.perf_counter() - t0
    outs = {r: json.loads(res.stdout.strip().splitlines()[-1]) for r, res in results.items()}
    reports = {r: o["report"] for r, o in outs.items()}
    merged = merge_reports(reports)
    result = outs[1]["result"]
    if job.plaintext:
        result.update(job.plaintext(args, result))
    return {
        "job": job.name,
        "mode": args.mode,
        "result": result,
        "wall_seconds": wall,
        "online_seconds": max(outs[r]["seconds"] for r in (1, 2)),
        "inference_seconds": per_query(merged["scopes"])["seconds"],
        "weights_seconds": merged["scopes"].get("weights", {}).get("seconds"),
        "precompute_seconds": merged["scopes"].get("precompute", {}).get("seconds"),
        "helper_seconds": outs[0]["seconds"] if 0 in outs else None,
        "cpu_seconds": {f"P{r}": o.get("cpu_seconds") for r, o in outs.items()},
        "max_rss_mb": {f"P{r}": o.get("max_rss_mb") for r, o in outs.items()},
        "offline": offline,
        "merged": merged,
        "reports": reports,
    }


def _print_run(out: dict, job, all_scopes: bool = False) -> None:
    for line in job.summary(out["result"]):
        print(line)
    m = out["merged"]
    t = m["total"]
    helper = (
        f"; helper P0 {out['helper_seconds']:.2f} s generating and streaming material "
        "(concurrently)"
        if out.get("helper_seconds") is not None
        else ""
    )
    weights = (
        f", weight preparation {out['weights_seconds']:.2f} s (once per model)"
        if out.get("weights_seconds") is not None
        else ""
    )
    pre = (
        f", pre-query products {out['precompute_seconds']:.2f} s (input-independent)"
        if out.get("precompute_seconds") is not None
        else ""
    )
    print(
        f"time ({out['mode']}): wall {out['wall_seconds']:.2f} s (processes incl. start-up); "
        f"online {out['online_seconds']:.2f} s (P1, P2 programs: loading, inputs, compute + "
        f"network); of it the secure inference {out['inference_seconds']:.2f} s{weights}{pre}"
        f"{helper}"
    )
    if out["offline"]:
        print(
            f"offline (dealt to disk first): {out['offline']['seconds']:.2f} s, "
            f"{_fmt_bytes(out['offline']['bytes'])}"
        )
    print(
        f"online bytes sent: P1 {_fmt_bytes(t['online_bytes'][0])}, "
        f"P2 {_fmt_bytes(t['online_bytes'][1])}; helper material: "
        f"P1 {_fmt_bytes(t['offline_bytes'][0])}, P2 {_fmt_bytes(t['offline_bytes'][1])}; "
        f"rounds: {t['rounds']}"
    )
    print(f"{'scope':<24}{'rounds':>8}{'P1 sent':>14}{'P2 sent':>14}{'helper→P2':>14}{'s':>8}")
    for name, s in m["scopes"].items():
        if "." in name and not all_scopes:
            continue
        print(
            f"{name:<24}{s['rounds']:>8}{_fmt_bytes(s['online_bytes'][0]):>14}"
            f"{_fmt_bytes(s['online_bytes'][1]):>14}{_fmt_bytes(s['offline_bytes'][1]):>14}"
            f"{s['seconds']:>8.3f}"
        )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()  # net/alloc.py: freed blocks reused without page faults
    if args.command == "certs":
        return certs.main(args)
    try:
        if args.command in ("quantize", "eval"):
            return args.func(args)
        job = JOBS[args.job]
        if args.command == "run":
            out = run_job(args, job)
            if args.report:
                Path(args.report).write_text(json.dumps(out, indent=1))
            if args.json:
                print(json.dumps({k: v for k, v in out.items() if k != "reports"}))
            else:
                _print_run(out, job, args.all_scopes)
            return 0 if out["result"].get("matches_plaintext", True) else 1
        if args.command == "party":
            out = _cmd_party(args, job)
        else:
            out = _cmd_deal(args, job)
        print(json.dumps(out) if args.json else json.dumps(out, indent=1))
        return 0
    except KeyboardInterrupt:
        print("qbert-mpc: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - one-line errors for users
        if args.debug or os.environ.get("QBERT_DEBUG"):
            raise
        print(f"qbert-mpc {args.command}: error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
