"""Per-scope accounting of one party: bytes, messages, rounds and wall time.

Bytes are recorded in the innermost open scope; rounds and seconds are measured at scope
exit and so include nested scopes. ``report()`` rolls bytes up to every enclosing scope,
so "layer3" includes "layer3.softmax". Payload bytes are what protocols declare; wire
bytes add the 36-byte frame headers.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import asdict, dataclass

BYTE_FIELDS = (
    "online_sent",
    "online_recv",
    "offline_sent",
    "offline_recv",
    "wire_sent",
    "wire_recv",
    "messages_sent",
)


@dataclass
class Stats:
    online_sent: int = 0  # payload bytes sent to the other computing party
    online_recv: int = 0
    offline_sent: int = 0  # correlation bytes the helper sent (P0 only)
    offline_recv: int = 0  # correlation bytes received from the helper (P1, P2)
    wire_sent: int = 0  # frame bytes incl. headers, online and offline
    wire_recv: int = 0
    messages_sent: int = 0
    rounds: int = 0
    seconds: float = 0.0
    calls: int = 0


class Accounting:
    def __init__(self, clock):
        self._clock = clock  # callable returning the party's Lamport round clock
        self._stack: list[str] = []
        self._own: dict[str, Stats] = defaultdict(Stats)  # exclusive bytes per path
        self._incl: dict[str, Stats] = defaultdict(Stats)  # inclusive rounds/seconds
        self._spans: dict[str, list[tuple[int, int]]] = defaultdict(list)  # clock per call
        self._durations: dict[str, list[float]] = defaultdict(list)  # seconds per call
        self._t0 = time.perf_counter()

    @property
    def path(self) -> str:
        return ".".join(self._stack)

    def add(self, **counts) -> None:
        st = self._own[self.path]
        for k, v in counts.items():
            setattr(st, k, getattr(st, k) + v)

    @contextmanager
    def scope(self, name: str):
        if not name or "." in name:
            raise ValueError(f"scope names are non-empty and dot-free, got {name!r}")
        self._stack.append(name)
        path = self.path
        c0, t0 = self._clock(), time.perf_counter()
        try:
            yield path
        finally:
            st = self._incl[path]
            c1 = self._clock()
            st.rounds += c1 - c0
            self._spans[path].append((c0, c1))
            dt = time.perf_counter() - t0
            st.seconds += dt
            self._durations[path].append(dt)
            st.calls += 1
            self._stack.pop()

    def measure(self, path: str) -> Stats:
        """Inclusive stats of ``path`` ('' = everything so far)."""
        out = Stats()
        for p, st in self._own.items():
            if path == "" or p == path or p.startswith(path + "."):
                for f in BYTE_FIELDS:
                    setattr(out, f, getattr(out, f) + getattr(st, f))
        if path == "":
            out.rounds = self._clock()
            out.seconds = time.perf_counter() - self._t0
            out.calls = 1
        else:
            inc = self._incl.get(path, Stats())
            out.rounds, out.seconds, out.calls = inc.rounds, inc.seconds, inc.calls
        return out

    def report(self) -> dict:
        paths = sorted(set(self._incl) | {p for p in self._own if p})
        return {
            "total": asdict(self.measure("")),
            "scopes": {p: asdict(self.measure(p)) for p in paths},
            "spans": {p: list(map(list, self._spans[p])) for p in paths},
            "durations": {p: self._durations[p] for p in paths},
        }


def merge_reports(reports: dict[int, dict]) -> dict:
    """Combine the reports of P0, P1, P2 into one view per scope.

    A party's own ``rounds`` is its clock delta, which under-counts when the parties enter
    a scope at different clocks; the merged rounds of a call are
    ``max_p(end_p) - max_p(start_p)`` over P1 and P2, summed over calls, and add up
    exactly to the total.
    """
    p1, p2 = reports[1], reports[2]
    dealer = reports.get(0, {"scopes": {}, "total": {}})

    def rounds(path):
        if path == "":
            return max(p1["total"]["rounds"], p2["total"]["rounds"])
        s1, s2 = p1["spans"].get(path, []), p2["spans"].get(path, [])
        if len(s1) != len(s2):
            return max(p1["scopes"][path]["rounds"], p2["scopes"][path]["rounds"])
        return sum(max(a[1], b[1]) - max(a[0], b[0]) for a, b in zip(s1, s2, strict=False))

    def _median_call(path):
        d1 = p1.get("durations", {}).get(path, [])
        d2 = p2.get("durations", {}).get(path, [])
        per_call = [max(a, b) for a, b in zip(d1, d2, strict=False)]
        return statistics.median(per_call) if per_call else None

    def view(path):
        a = p1["total"] if path == "" else p1["scopes"].get(path, asdict(Stats()))
        b = p2["total"] if path == "" else p2["scopes"].get(path, asdict(Stats()))
        d = dealer["total"] if path == "" else dealer["scopes"].get(path, asdict(Stats()))
        return {
            "online_bytes": [a["online_sent"], b["online_sent"]],
            "offline_bytes": [a["offline_recv"], b["offline_recv"]],
            "wire_bytes": [a["wire_sent"], b["wire_sent"], d.get("wire_sent", 0)],
            "rounds": rounds(path),
            "seconds": max(a["seconds"], b["seconds"]),
            "median_seconds": _median_call(path),
            "calls": a["calls"],
        }

    paths = sorted(set(p1["scopes"]) | set(p2["scopes"]))
    return {"total": view(""), "scopes": {p: view(p) for p in paths}}


BEFORE_QUERY = ("weights", "precompute")  # once per model; input-independent, pre-query


def per_query(scopes: dict) -> dict:
    """Sum of a merged report's top-level scopes except ``BEFORE_QUERY`` (the once-per-model
    weight preparation and the input-independent pre-query work): what one query
    (inference) cost online."""
    top = [v for k, v in scopes.items() if "." not in k and k not in BEFORE_QUERY]
    return {
        "seconds": sum(v["seconds"] for v in top),
        "online_bytes": [sum(v["online_bytes"][i] for v in top) for i in (0, 1)],
        "offline_bytes": [sum(v["offline_bytes"][i] for v in top) for i in (0, 1)],
        "rounds": sum(v["rounds"] for v in top),
    }
