"""Jobs the CLI can run: each is one program that all parties execute.

A job declares its command-line options, a ``program(rt, args) -> dict`` (P1's dict is
what the client learns; it must hold no secret of P2), a ``program_id(args)`` naming the
exact computation (dealt material is bound to it) and ``summary(result) -> lines``.
Optional: ``prepare(args, rank)`` runs before any party starts (build caches, validate
input with one-line errors; ``rank`` is the party's, None for a local run that holds all
data); ``plaintext(args, result) -> dict`` adds the plaintext answer after a local run
(whose operator holds every party's data); ``client_only`` names options that
only P1 receives (the client's private input); ``heap_bytes(args)`` the heap a party
pre-faults before it connects (its working set, ``net.alloc.prefault_heap``).
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Job:
    name: str
    help: str
    add_options: Callable[[argparse._ArgumentGroup], None]
    program: Callable
    program_id: Callable[[argparse.Namespace], str]
    summary: Callable[[dict], list[str]]
    prepare: Callable[[argparse.Namespace, int | None], None] | None = None
    plaintext: Callable[[argparse.Namespace, dict], dict] | None = None
    client_only: tuple[str, ...] = ()
    heap_bytes: Callable[[argparse.Namespace], int] | None = None


# -- demo: a private linear layer followed by ReLU --------------------------------------------
def _demo_options(g) -> None:
    g.add_argument("--rows", type=int, default=128, help="rows of the client's input X")
    g.add_argument("--dim", type=int, default=768, help="input width of X and rows of W")
    g.add_argument("--out-dim", type=int, default=768, help="columns of the weight W")
    g.add_argument("--bits", type=int, default=32, help="ring width k of Z_2^k (8..64)")
    g.add_argument("--seed", type=int, default=0, help="seed of the demo's random X and W")


def _demo_data(args):
    rng = np.random.default_rng(args.seed)
    x = rng.integers(-64, 64, (args.rows, args.dim), dtype=np.int64)
    w = rng.integers(-64, 64, (args.dim, args.out_dim), dtype=np.int64)
    return x, w


def demo_reference(x: np.ndarray, w: np.ndarray, bits: int) -> np.ndarray:
    """ReLU(X·W) on two's-complement values of Z_2^bits."""
    from mpc.limbmatmul import matmul
    from mpc.ring import ring

    r = ring(bits)
    y = r.signed(matmul(r.reduce(x), r.reduce(w), r))
    return np.maximum(y, 0)


def _demo_program(rt, args) -> dict:
    from mpc.ring import ring
    from protocols.beaver import linear, prepare_weight
    from protocols.relu import relu

    r = ring(args.bits)
    x, w = _demo_data(args)  # each party uses only its own: P1 x, P2 w
    shape_x, shape_w = (args.rows, args.dim), (args.dim, args.out_dim)
    with rt.scope("input"):
        xs = rt.input(1, r, shape_x, x if rt.rank == 1 else None)
    with rt.scope("weights"):
        wp = prepare_weight(rt, w if rt.rank == 2 else None, r, shape_w, owner=2)
    with rt.scope("linear"):
        y = linear(rt, xs, wp)
    with rt.scope("relu"):
        z = relu(rt, y)
    with rt.scope("output"):
        out = rt.reveal(z, to=1)
    if rt.rank != 1:
        return {}
    got = np.asarray(r.signed(out))
    # The demo's W comes from a public seed so that the client can check the answer.
    want = demo_reference(x, w, args.bits)
    return {
        "shape": list(got.shape),
        "matches_plaintext": bool((got == want).all()),
        "checksum": int(got.sum()),
        "plaintext_checksum": int(want.sum()),
    }


def _demo_id(args) -> str:
    key = f"demo:{args.rows}:{args.dim}:{args.out_dim}:{args.bits}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _demo_summary(res: dict) -> list[str]:
    ok = "yes" if res.get("matches_plaintext") else "NO"
    return [
        f"result: ReLU(X·W) of shape {tuple(res['shape'])}, checksum {res['checksum']}",
        f"plaintext: checksum {res['plaintext_checksum']}; secure == plaintext: {ok}",
    ]


DEMO = Job(
    "demo",
    "ReLU(X·W): X private to P1 (client), W private to P2 (owner), secret-shared result "
    "revealed to P1 only",
    _demo_options,
    _demo_program,
    _demo_id,
    _demo_summary,
)

JOBS: dict[str, Job] = {DEMO.name: DEMO}

# The secure BERT job lives with the models; imported last (it imports this module).
from models.job import bert_job  # noqa: E402

JOBS["bert"] = bert_job()
