"""Shared test helpers: run a protocol as three parties, compare costs, rebuild outputs."""

from __future__ import annotations

from mpc.cost import Cost
from mpc.shares import Shared
from net.accounting import merge_reports
from net.local import LocalRun, run_local


def measured(run: LocalRun, scope: str) -> Cost:
    """What the runtime measured inside ``scope``, in the shape of a declared ``Cost``."""
    r1, r2 = run.reports[1]["scopes"][scope], run.reports[2]["scopes"][scope]
    dealer = run.reports[0]["scopes"].get(scope, {"offline_sent": 0})
    assert dealer["offline_sent"] == r1["offline_recv"] + r2["offline_recv"], (
        "dealer/party mismatch"
    )
    assert r1["online_sent"] == r2["online_recv"] and r2["online_sent"] == r1["online_recv"]
    m = merge_reports(run.reports)["scopes"][scope]
    return Cost(tuple(m["online_bytes"]), tuple(m["offline_bytes"]), m["rounds"])


def run_and_open(program, mode: str = "live", scope: str = "proto", **kw):
    """Run ``program(rt) -> Shared`` inside ``scope`` on all parties; reconstruct the output.

    Returns (plaintext output, measured Cost, LocalRun). Opening happens outside the scope.
    """

    def wrapped(rt):
        with rt.scope(scope):
            out = program(rt)
        if rt.is_dealer:
            return None
        outs = out if isinstance(out, (list, tuple)) else [out]
        assert all(isinstance(o, Shared) for o in outs)
        return [rt.open(o) for o in outs]

    run = run_local(wrapped, mode=mode, **kw)
    assert all((a == b).all() for a, b in zip(run.results[1], run.results[2], strict=False))
    res = run.results[1]
    return (res if isinstance(res, list) and len(res) > 1 else res[0]), measured(run, scope), run
