"""Run one party of a job over TCP, or deal a job's material to disk.

A *job* (``net.jobs``) is a program ``program(rt, args) -> dict`` that every party runs;
P1's result is what the client learns. ``run_party`` connects the party to its peers,
runs the program and returns its result and accounting report; ``deal`` runs the helper
alone and writes each party's material for N runs (the 2-party mode).

Dealt material is single-use (``DealtSource.claim``). A run ends with a bye frame on every
link, so a party whose peer died after the last message still fails, naming that peer.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

from mpc.correlations import DealtSink, DealtSource, dealt_paths
from mpc.jitcache import preload
from net.alloc import prefault_heap
from net.blas import limit_blas_threads
from net.errors import ConfigError, FrameError, MPCError, PeerDisconnected, PeerError
from net.framing import KIND_CONTROL
from net.hosts import HostConfig
from net.runtime import Runtime


def _transport(rank: int, hosts: HostConfig, peers):
    from net.tcp import TcpTransport

    factory = None
    if hosts.tls:
        from net import tls  # mutual TLS; the peer's certificate must name its role

        factory = tls.context_factory(hosts, rank)
    return TcpTransport(
        rank,
        hosts.addresses,
        hosts.session,
        peers=peers,
        connect_timeout=hosts.timeout,
        ssl_context_factory=factory,
    )


BYE = b"QBBYE\x00"
ABORT = b"QBABORT"  # + the rank blamed + the error's class name (never a value)


def _goodbye(rt: Runtime, peers) -> None:
    """End of run: one control frame to every peer, then wait for every peer's.

    A party whose peer died after its last message would otherwise exit 0; with the bye
    it fails naming that peer. P0 finishes first and waits without a timeout: P1/P2 time
    out on their own, and a failing P1/P2 sends P0 an abort frame naming the party it
    lost (``_abort``) before it disconnects. Cost: one 42-byte control frame per link
    and direction, no round (control frames do not move the clock).
    """
    for p in peers:
        rt._send_frame(p, KIND_CONTROL, BYE, 0)
    timeout = rt.timeout
    if rt.is_dealer:
        rt.timeout = None
    try:
        for p in peers:
            try:
                _, payload = rt._recv_frame(p, KIND_CONTROL)
            except PeerDisconnected:
                raise PeerDisconnected(p, "disconnected before the end of the run") from None
            payload = bytes(payload)
            if payload.startswith(ABORT) and len(payload) > len(ABORT):
                lost = payload[len(ABORT)]
                what = payload[len(ABORT) + 1 :].decode("ascii", "replace")
                if lost == p:
                    raise PeerDisconnected(p, f"aborted the run ({what})")
                raise PeerDisconnected(lost, f"P{p} aborted the run ({what} from P{lost})")
            if payload != BYE:
                raise FrameError(p, "expected the end-of-run frame")
    finally:
        rt.timeout = timeout


def _abort(rt: Runtime | None, error: BaseException) -> None:
    """P1/P2 failing in a 3-party run: tell P0 (only it waits passively) whom to blame."""
    if rt is None or rt.rank == 0:
        return
    lost = error.peer if isinstance(error, PeerError) and error.peer in (1, 2) else rt.rank
    what = type(error).__name__.encode("ascii", "replace")[:40]
    try:
        rt._send_frame(0, KIND_CONTROL, ABORT + bytes([lost]) + what, 0)
    except (MPCError, OSError):
        pass


def warm_heap(job, args, material) -> bool:
    """Pre-fault the job's working set (``net.alloc.prefault_heap``) for a 2-party run on
    dealt material only. Live (3-party) parties skip it: three processes faulting 1.5 GB
    each at once on two cores cost more than they saved (BERT-base 3-party wall, medians
    of 6 interleaved runs: 14.3 s with the pre-fault, 12.4 s without)."""
    if job.heap_bytes is None or material is None:
        return False
    return prefault_heap(job.heap_bytes(args))


def _cpu() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def run_party(
    rank: int, hosts: HostConfig, job, args, material: str | None = None, run: int = 0
) -> dict:
    """Run ``job`` as party ``rank``; with ``material`` (2-party mode) P0 is not needed."""
    if material is not None and rank == 0:
        raise ConfigError("P0 does not run online with dealt material: use 'qbert-mpc deal'")
    source = None
    if material is not None:
        # Header, program and party are checked before connecting; the file is claimed
        # (renamed to .used, single-use) once the peer is there, before any of it is read.
        path = dealt_paths(material, run)[rank]
        source = DealtSource.open(path, job.program_id(args), rank, claim=False)
    peers = [3 - rank] if material is not None else None
    t0 = time.perf_counter()
    # input-independent set-up before the peers connect, outside the timed program
    warm_heap(job, args, material)
    preload()
    t_load = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        transport = _transport(rank, hosts, peers)
        t_conn = time.perf_counter() - t0
        rt = None
        try:
            if source is not None:
                source.claim()
            rt = Runtime(
                rank, transport, session=hosts.session, source=source, timeout=hosts.timeout
            )
            t1, c1 = time.perf_counter(), _cpu()
            rt.setup()
            result = job.program(rt, args)
            rt.finish()
            seconds = time.perf_counter() - t1
            cpu = [round(b - a, 3) for a, b in zip(c1, _cpu(), strict=True)]
            _goodbye(rt, transport.peers)
        except BaseException as e:
            if material is None:
                _abort(rt, e)
            raise
        finally:
            transport.close()
    finally:
        if source is not None:
            source.close()
    return {
        "party": rank,
        "result": result,
        "report": rt.report(),
        "seconds": seconds,
        "cpu_seconds": cpu,  # [user, system] of the timed program, all threads
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "connect_seconds": t_conn,
        "warmup_seconds": t_load,
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
            with limit_blas_threads(1):  # net/blas.py: no BLAS threads spinning by the writer
                job.program(rt, args)
            rt.finish()
        total += sum(Path(p).stat().st_size for p in paths.values())
    return {"runs": runs, "bytes": total, "seconds": time.perf_counter() - t0, "dir": str(out_dir)}
