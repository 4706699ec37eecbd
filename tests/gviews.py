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

    def recv(self, specs, *a, **kw):
        got = old_recv(self, specs, *a, **kw)
        log[self.rank].extend(("msg", g.astype(np.uint64)) for g in got)
        return got

    def take(self, dom, shape, *a, **kw):
        got = old_take(self, dom, shape, *a, **kw)
        log[self.rank].append(("take", got.astype(np.uint64)))
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


# -- whole-pipeline views (tests/test_views_bert.py) ----------------------------------------
@contextmanager
def counted_seeds(tag: str):
    """Every ``fresh_seed`` (the runtime's, the helper's private ones in protocol modules)
    returns H(tag, rank, n) for the n-th call of the party ``rank``: deterministic whatever
    the thread interleaving, and distinct for every call (unlike ``fixed_seeds``)."""
    import threading

    from mpc import prg as prg_mod

    original = prg_mod.fresh_seed
    counts = threading.local()

    def rank_of_caller() -> int:
        f = sys._getframe(2)
        while f is not None:
            for name in ("rt", "self"):
                v = f.f_locals.get(name)
                v = v if isinstance(v, Runtime) else getattr(v, "rt", None)
                if isinstance(v, Runtime):
                    return v.rank
            f = f.f_back
        raise AssertionError("fresh_seed called outside a party")

    def seed():
        rank = rank_of_caller()
        n = getattr(counts, "n", 0)
        counts.n = n + 1
        key = f"{tag}/{rank}/{n}"
        return hashlib.blake2b(key.encode(), digest_size=16).digest()

    patched = [m for m in list(sys.modules.values()) if getattr(m, "fresh_seed", None) is original]
    for m in patched:
        m.fresh_seed = seed
    try:
        yield
    finally:
        for m in patched:
            m.fresh_seed = original


class View:
    """One thing a computing party received: an online message from its peer ("msg"), a
    correction from the helper ("take"), or what an exchange opened ("open": the array it
    sent plus the one it got, i.e. the value both parties learn), with its scope path."""

    __slots__ = ("kind", "scope", "dom", "values")

    def __init__(self, kind, scope, dom, values):
        self.kind, self.scope, self.dom, self.values = kind, scope, dom, values

    @property
    def key(self) -> tuple:
        return (self.kind, self.scope, repr(self.dom), self.values.shape)


@contextmanager
def party_views():
    """Log {rank: [View]} of everything P1 and P2 receive: each array of each online frame
    (``Runtime.recv``) and each helper correction, unpacked in its domain (``Runtime.take``
    and the lazily gathered LUT tables of ``protocols.lut``, which read ``take_raw``).
    Each ``Runtime.exchange`` also logs the opened sum. Also counts {rank: [online bytes,
    helper bytes]} logged, to check against the runtime's accounting that nothing received
    escaped the log; ``pending`` must end empty (no helper bytes read another way)."""
    from mpc.packing import rows_size, unpack
    from mpc.ring import ring
    from protocols import lut as lut_mod

    log: dict[int, list[View]] = {1: [], 2: []}
    nbytes = {1: [0, 0], 2: [0, 0]}
    pending: dict[int, list] = {1: [], 2: []}
    old_recv, old_take, old_raw = Runtime.recv, Runtime.take, Runtime.take_raw
    old_rows = Runtime.take_rows
    old_exchange = Runtime.exchange
    old_packed = lut_mod._PackedTable.__init__

    def recv(self, specs, *a, **kw):
        got = old_recv(self, specs, *a, **kw)
        for (dom, _), g in zip(specs, got, strict=True):
            log[self.rank].append(View("msg", self.acct.path, dom, g.astype(np.uint64)))
            nbytes[self.rank][0] += dom.nbytes(g.size)
        return got

    def exchange(self, items, *a, **kw):
        got = old_exchange(self, items, *a, **kw)
        for (dom, mine), g in zip(items, got, strict=True):
            opened = dom.add(dom.reduce(mine), g.astype(np.uint64))
            log[self.rank].append(View("open", self.acct.path, dom, opened))
        return got

    def take_raw(self, n):
        got = old_raw(self, n)
        pending[self.rank].append((self.acct.path, bytes(got)))
        return got

    def claim(rank, dom, count):
        scope, raw = pending[rank].pop()
        assert not pending[rank] and len(raw) == dom.nbytes(count), "unexpected raw read"
        vals = unpack(raw, dom.bits, count)
        log[rank].append(View("take", scope, dom, vals))
        nbytes[rank][1] += len(raw)
        return vals

    def take(self, dom, shape, *a, **kw):
        got = old_take(self, dom, shape, *a, **kw)
        claim(self.rank, dom, got.size)
        return got

    def take_rows(self, widths, n, *a, **kw):
        got = old_rows(self, widths, n, *a, **kw)
        scope, raw = pending[self.rank].pop()
        assert not pending[self.rank] and len(raw) == rows_size(n, widths), "unexpected raw read"
        for w in sorted(set(int(x) for x in widths)):  # each ring width a view of its own
            cols = np.flatnonzero(np.asarray(widths) == w)
            vals = got[:, cols].astype(np.uint64).reshape(-1)
            log[self.rank].append(View("take", scope, ring(w), vals))
        nbytes[self.rank][1] += len(raw)
        return got

    def packed(self, dom, n, width, raw):
        old_packed(self, dom, n, width, raw)
        claim(2, dom, n * width)  # only P2 holds packed tables

    Runtime.recv, Runtime.take, Runtime.take_raw = recv, take, take_raw
    Runtime.take_rows, Runtime.exchange = take_rows, exchange
    lut_mod._PackedTable.__init__ = packed
    try:
        yield log, nbytes, pending
    finally:
        Runtime.recv, Runtime.take, Runtime.take_raw = old_recv, old_take, old_raw
        Runtime.take_rows, Runtime.exchange = old_rows, old_exchange
        lut_mod._PackedTable.__init__ = old_packed


def chi2_sf(stat: float, df: int) -> float:
    """P(chi^2_df >= stat): the regularized upper incomplete gamma Q(df/2, stat/2), by its
    power series below the mean and its continued fraction (modified Lentz) above."""
    import math

    a, x = df / 2.0, stat / 2.0
    if x <= 0:
        return 1.0
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:  # P(a, x) = front / a * sum_n x^n / ((a+1)...(a+n))
        term = total = 1.0 / a
        n = 0
        while abs(term) > 1e-17 * abs(total):
            n += 1
            term *= x / (a + n)
            total += term
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return min(1.0, math.exp(log_front) * h)
