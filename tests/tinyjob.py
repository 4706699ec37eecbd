"""A tiny job for the TLS, fault and log tests, independent of the protocol modules.

Importing this module adds the job ``tiny`` to ``net.jobs.JOBS``. Run as a script it is
the ``qbert-mpc`` CLI with that job available (``python tests/tinyjob.py party ...``).

The program: P1 inputs ``n`` copies of ``--marker`` (its secret), P2 inputs a public
pattern, P0 deals a random mask m; then ``--rounds`` times (sleeping ``--sleep`` s before
each, on P1 and P2) both open x + w + m, and finally x + w is revealed to P1, which reports only
whether it matches. ``--fail spec`` makes P2 send arrays of a wrong shape at the end.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

if __name__ == "__main__":  # as a script, make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from net.jobs import JOBS, Job  # noqa: E402


def _options(g) -> None:
    g.add_argument("--n", type=int, default=8, help="elements per message")
    g.add_argument("--rounds", type=int, default=2, help="number of opens")
    g.add_argument("--sleep", type=float, default=0.0, help="seconds before each open")
    g.add_argument("--marker", type=lambda s: int(s, 0), default=7, help="P1's secret value")
    g.add_argument("--fail", choices=["none", "spec"], default="none")


def _public_w(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.uint64) * np.uint64(0x01010101)


def _program(rt, args) -> dict:
    from mpc.ring import ring

    r = ring(32)
    n = args.n
    x = np.full(n, args.marker, dtype=np.uint64) if rt.rank == 1 else None
    w = _public_w(n) if rt.rank == 2 else None
    mask = None
    if rt.is_dealer:
        mask = r.reduce(np.frombuffer(os.urandom(8 * n), dtype=np.uint64))
    with rt.scope("input"):
        xs = rt.input(1, r, (n,), x)
        ws = rt.input(2, r, (n,), w)
        m = rt.dealer_shared(r, (n,), value=mask)
    for i in range(args.rounds):
        with rt.scope(f"round{i}"):
            if args.sleep and not rt.is_dealer:  # P0 deals at once, then waits
                time.sleep(args.sleep)
            rt.open(xs + ws + m)
    with rt.scope("output"):
        if args.fail == "spec" and rt.rank == 2:
            rt.send([(r, np.zeros(n + 1, dtype=np.uint64))])
            return {}
        z = rt.reveal(xs + ws, to=1)
    if rt.rank != 1:
        return {}
    want = r.add(r.reduce(x), _public_w(n))
    return {"n": n, "rounds": args.rounds, "matches_plaintext": bool((z == want).all())}


def _id(args) -> str:
    return f"tiny:{args.n}:{args.rounds}"


def _summary(res: dict) -> list[str]:
    return [f"tiny: {res.get('rounds')} rounds, matches: {res.get('matches_plaintext')}"]


TINY = Job(
    "tiny", "test job: open masked sums, reveal x + w to P1", _options, _program, _id, _summary
)
JOBS.setdefault(TINY.name, TINY)

SCRIPT = os.path.abspath(__file__)


def party_command(config, rank: int, *extra: str) -> list[str]:
    """argv of one ``party`` process of the tiny job (``extra``: more CLI options)."""
    return [
        sys.executable,
        SCRIPT,
        "party",
        "--config",
        str(config),
        "--role",
        f"P{rank}",
        "--json",
        "--job",
        "tiny",
        *extra,
    ]


def launch_tiny(
    config,
    *extra: str,
    ranks=(0, 1, 2),
    timeout: float = 60.0,
    check=False,
    per_rank: dict | None = None,
):
    """Run the tiny job's parties as processes (``net.launcher``); rank -> PartyResult."""
    from net.launcher import launch

    per_rank = per_rank or {}
    commands = {r: party_command(config, r, *extra, *per_rank.get(r, ())) for r in ranks}
    return launch(commands, timeout=timeout, check=check)


if __name__ == "__main__":
    from net.cli import main

    sys.exit(main())
