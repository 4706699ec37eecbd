"""Run one party of a job over TCP, or deal a job's material to disk.

A *job* (``net.jobs``) is a program ``program(rt, args) -> dict`` that every party runs;
P1's result is what the client learns. ``run_party`` connects the party to its peers,
runs the program and returns its result and accounting report; ``deal`` runs the helper
alone and writes each party's material for N runs (the 2-party mode).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from mpc.correlations import DealtSink, DealtSource, MaterialError, dealt_paths
from net.errors import ConfigError
from net.hosts import HostConfig
from net.runtime import Runtime


def _transport(rank: int, hosts: HostConfig, peers):
    from net.tcp import TcpTransport

    factory = None
    if hosts.tls:
        from net import tls  # filled in by the TLS work; refuse rather than run in clear

        factory = tls.context_factory(hosts, rank)
    return TcpTransport(
        rank,
        hosts.addresses,
        hosts.session,
        peers=peers,
        connect_timeout=hosts.timeout,
        ssl_context_factory=factory,
    )


def run_party(
    rank: int, hosts: HostConfig, job, args, material: str | None = None, run: int = 0
) -> dict:
    """Run ``job`` as party ``rank``; with ``material`` (2-party mode) P0 is not needed."""
    if material is not None and rank == 0:
        raise ConfigError("P0 does not run online with dealt material: use 'qbert-mpc deal'")
    source, stream = None, None
    if material is not None:
        path = dealt_paths(material, run)[rank]
        if not path.exists():
            raise MaterialError(f"no dealt material at {path}: run 'qbert-mpc deal' first")
        stream = open(path, "rb")  # noqa: SIM115 - closed below
        source = DealtSource(stream, job.program_id(args), rank, name=str(path))
    peers = [3 - rank] if material is not None else None
    t0 = time.perf_counter()
    transport = _transport(rank, hosts, peers)
    t_conn = time.perf_counter() - t0
    try:
        rt = Runtime(rank, transport, session=hosts.session, source=source, timeout=hosts.timeout)
        t1 = time.perf_counter()
        rt.setup()
        result = job.program(rt, args)
        rt.finish()
        seconds = time.perf_counter() - t1
    finally:
        transport.close()
        if stream is not None:
            stream.close()
    return {
        "party": rank,
        "result": result,
        "report": rt.report(),
        "seconds": seconds,
        "connect_seconds": t_conn,
    }


def deal(job, args, out_dir: str | os.PathLike, runs: int = 1, progress: bool = True) -> dict:
    """Run the helper alone and write P1's and P2's material for ``runs`` runs."""
    from tqdm import tqdm

    program = job.program_id(args)
    t0 = time.perf_counter()
    total = 0
    for i in tqdm(range(runs), desc="dealing", disable=not progress or runs == 1):
        paths = dealt_paths(out_dir, i)
        paths[1].parent.mkdir(parents=True, exist_ok=True)
        with open(paths[1], "wb") as f1, open(paths[2], "wb") as f2:
            sink = DealtSink({1: f1, 2: f2}, program, run=i)
            rt = Runtime(0, None, session=0, sink=sink)
            rt.setup()
            job.program(rt, args)
            rt.finish()
        total += sum(Path(p).stat().st_size for p in paths.values())
    return {"runs": runs, "bytes": total, "seconds": time.perf_counter() - t0, "dir": str(out_dir)}
