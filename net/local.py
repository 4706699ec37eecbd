"""Run a program as three parties in one process (threads + in-memory transport).

``run_local(program)`` calls ``program(rt)`` on P0, P1 and P2 and returns each party's
result and accounting report. ``mode="dealt"`` first runs P0 alone into in-memory dealt
material, then P1 and P2 from it: the 2-party mode, same protocol code. Used by tests;
the CLI runs the same programs as separate processes over TCP.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

from mpc.correlations import DealtSink, DealtSource
from net.runtime import Runtime
from net.transport import InMemoryNetwork


@dataclass
class LocalRun:
    results: dict[int, object]
    reports: dict[int, dict]
    runtimes: dict[int, Runtime]


def _run_threads(targets: dict[int, Callable[[], object]], timeout: float) -> dict[int, object]:
    results: dict[int, object] = {}
    errors: dict[int, BaseException] = {}

    def wrap(rank, fn):
        try:
            results[rank] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors[rank] = e

    threads = {
        r: threading.Thread(target=wrap, args=(r, f), daemon=True) for r, f in targets.items()
    }
    for t in threads.values():
        t.start()
    for t in threads.values():
        t.join(timeout * 4)
    if errors:
        rank = min(errors)
        raise errors[rank]
    stuck = [r for r, t in threads.items() if t.is_alive()]
    if stuck:
        raise TimeoutError(f"parties {stuck} did not finish")
    return results


def run_local(
    program: Callable[[Runtime], object],
    *,
    mode: str = "live",
    timeout: float = 30.0,
    session: int | None = None,
    program_id: str = "test",
) -> LocalRun:
    session = session if session is not None else int.from_bytes(os.urandom(8), "little")
    net = InMemoryNetwork()
    runtimes: dict[int, Runtime] = {}

    def party(rank: int, **kw):
        def go():
            tr = net.endpoint(rank) if rank or mode == "live" else None
            rt = Runtime(rank, tr, session=session, timeout=timeout, **kw)
            runtimes[rank] = rt
            rt.setup()
            out = program(rt)
            rt.finish()
            return out

        return go

    if mode == "live":
        results = _run_threads({r: party(r) for r in (0, 1, 2)}, timeout)
    elif mode == "dealt":
        streams = {1: io.BytesIO(), 2: io.BytesIO()}
        sink = DealtSink(streams, program_id)
        results = _run_threads({0: party(0, sink=sink)}, timeout)
        for s in streams.values():
            s.seek(0)
        sources = {p: DealtSource(streams[p], program_id, p) for p in (1, 2)}
        results.update(_run_threads({p: party(p, source=sources[p]) for p in (1, 2)}, timeout))
    else:
        raise ValueError(f"mode must be 'live' or 'dealt', got {mode!r}")
    return LocalRun(results, {r: rt.report() for r, rt in runtimes.items()}, runtimes)
