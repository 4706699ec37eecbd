"""Helpers for statistical view tests of the G-module protocols: deterministic seeds, a log
of everything P1 and P2 receive (online messages and the helper's material), and a
two-sample chi-square test on the received words."""

from __future__ import annotations

import hashlib
import sys
from contextlib import contextmanager

import numpy as np

import net.runtime as runtime_mod
from net.runtime import Runtime


@contextmanager
def fixed_seeds(tag: str):
    """Seeds derived from (tag, function asking, its party), so runs are reproducible."""

    def seed():
        loc = sys._getframe(1).f_locals
        rank = getattr(loc.get("self"), "rank", None)
        key = f"{tag}/{sys._getframe(1).f_code.co_name}/{rank}/{loc.get('party')}"
        return hashlib.blake2b(key.encode(), digest_size=16).digest()

    old = runtime_mod.fresh_seed
    runtime_mod.fresh_seed = seed
    try:
        yield
    finally:
        runtime_mod.fresh_seed = old


@contextmanager
def received():
    """Log {rank: [arrays]} of every online message received and material taken."""
    log = {1: [], 2: []}
    old_recv, old_take = Runtime.recv, Runtime.take

    def recv(self, specs):
        got = old_recv(self, specs)
        log[self.rank].extend(("msg", g.copy()) for g in got)
        return got

    def take(self, dom, shape):
        got = old_take(self, dom, shape)
        log[self.rank].append(("take", got.copy()))
        return got

    Runtime.recv, Runtime.take = recv, take
    try:
        yield log
    finally:
        Runtime.recv, Runtime.take = old_recv, old_take


def chi2_same(a: np.ndarray, b: np.ndarray, bins: int | None = None) -> tuple[float, float]:
    """Two-sample chi-square statistic of the value histograms of a and b, and a threshold
    it exceeds with probability ~1e-6 under equal distributions (Wilson-Hilferty)."""
    a, b = np.asarray(a).ravel().astype(np.int64), np.asarray(b).ravel().astype(np.int64)
    bins = bins or int(max(a.max(initial=0), b.max(initial=0))) + 1
    ca, cb = np.bincount(a, minlength=bins), np.bincount(b, minlength=bins)
    keep = (ca + cb) > 0
    ca, cb = ca[keep], cb[keep]
    ka, kb = np.sqrt(cb.sum() / ca.sum()), np.sqrt(ca.sum() / cb.sum())
    stat = float((((ka * ca - kb * cb) ** 2) / (ca + cb)).sum())
    df = max(int(keep.sum()) - 1, 1)
    z = 4.75
    return stat, df * (1 - 2 / (9 * df) + z * np.sqrt(2 / (9 * df))) ** 3 + 10
