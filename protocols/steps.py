"""Run independent protocols side by side: one merged exchange per round.

A protocol in *step form* is a generator: it deals (or takes) all its material when first
advanced, then yields the list of (domain, array) items of each exchange and receives the
peer's arrays in the same order; its return value is its output. On P0 it returns at
once. ``run`` advances several such generators in lock-step, so protocols that do not
depend on each other cost max (not sum) of their rounds; material is dealt in argument
order on every party, as if they ran one after the other. A round of only 1-bit items
receives uint8 arrays, any other round uint64 (``Runtime.exchange``).
"""

from __future__ import annotations

import numpy as np


def run(rt, *gens) -> list:
    """Outputs of the step-form protocols ``gens`` (see module doc)."""
    results: list = [None] * len(gens)
    pending: dict[int, list] = {}
    for i, g in enumerate(gens):
        try:
            pending[i] = next(g)
        except StopIteration as stop:
            results[i] = stop.value
    while pending:
        order = list(pending)
        items = [item for i in order for item in pending[i]]
        # bit-only rounds (masked bits, carry states) come back as one byte per bit
        bits = all(d.bits == 1 for d, _ in items)
        got = rt.exchange(items, np.uint8) if bits else rt.exchange(items)
        pos, nxt = 0, {}
        for i in order:
            k = len(pending[i])
            try:
                nxt[i] = gens[i].send(got[pos : pos + k])
            except StopIteration as stop:
                results[i] = stop.value
            pos += k
        pending = nxt
    return results
