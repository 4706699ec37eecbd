"""The plaintext integer reference model: ``models.pipeline`` over plaintext ops.

A plaintext value is a ``Shared`` held entirely by party 1 (the other share is 0), so the
pipeline's local operations act on it as on the integer itself. Nonlinear steps call the
protocols' ``reference_*`` functions (same rings, tables and rounding as the secure
protocols); products are exact integer matmuls reduced into the ring (float64 GEMM when every
partial sum is below 2^53, else int64 / Python ints), which is what the secure Beaver
products compute mod 2^k.

``PlainOps(params, record=True)`` also records, per scope, how often requant / LayerNorm
indices saturate (for calibration checks).
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager

import numpy as np

from models import pipeline
from models.qmodel import QBertConfig, QBertParams
from mpc.ring import ring
from mpc.shares import Shared
from protocols import activations as A
from protocols import convert as C
from protocols import layernorm as LN
from protocols import softmax as SM


def _value(x: Shared) -> np.ndarray:
    return x.dom.signed(x.data)


def exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.matmul of signed int64 arrays, exact (float64 GEMM when provably exact)."""
    n = a.shape[-1]
    amax = int(np.abs(a).max(initial=0))
    bmax = int(np.abs(b).max(initial=0))
    if n * amax * bmax < 1 << 53:
        return np.rint(np.matmul(a.astype(np.float64), b.astype(np.float64))).astype(np.int64)
    if n * amax * bmax < 1 << 62:
        return np.matmul(a, b)
    return np.matmul(a.astype(object), b.astype(object))


class PlainOps:
    def __init__(self, params: QBertParams, record: bool = False):
        self.params, self.cfg = params, params.config
        self.record = defaultdict(list) if record else None
        self._path: list[str] = []

    def _wrap(self, dom_bits: int, values) -> Shared:
        r = ring(dom_bits)
        return Shared(r, r.reduce(np.asarray(values)), 1)

    def _note(self, what: str, frac: float) -> None:
        if self.record is not None:
            self.record[".".join(self._path) + ":" + what].append(float(frac))

    @contextmanager
    def scope(self, name: str):
        self._path.append(name)
        try:
            yield
        finally:
            self._path.pop()

    def dense_many(self, x: Shared, names) -> list[Shared]:
        xs = _value(x)
        out = []
        for name in names:
            y = exact_matmul(xs, self.params.weight(name))
            y = y + self.params.bias(name).astype(y.dtype)
            out.append(self._wrap(x.dom.k, y))
        return out

    def requant(self, acc: Shared, c: int, tables) -> list[Shared]:
        B = acc.dom.k
        if self.record is not None:
            h = _value(acc) >> c
            self._note("requant_saturated", np.mean(np.abs(h) >= 128))
        tabs = [(t, ring(k)) for t, k in tables]
        outs = C.reference_requant(acc.data, B, c, tabs, exact=True)
        return [Shared(ring(k), o, 1) for o, (_, k) in zip(outs, tables, strict=True)]

    def bmm(self, x: Shared, y: Shared) -> Shared:
        return self._wrap(x.dom.k, exact_matmul(_value(x), _value(y)))

    def mul(self, x: Shared, y: Shared) -> Shared:
        return Shared(x.dom, x.dom.mul(x.data, y.data), 1)

    def extend(self, x: Shared, k: int) -> Shared:
        return Shared(ring(k), C.reference_extend_bounded(x.data, x.dom.k, k), 1)

    def softmax(self, x: Shared, fmt: SM.SoftmaxFormat, k: int, xc=None) -> Shared:
        return Shared(ring(k), SM.reference_softmax(x.data, x.dom.k, fmt, k), 1)

    def layernorm(self, x: Shared, name: str, fmt: LN.LayerNormFormat, k: int) -> Shared:
        g, b = self.params.ln(name)
        if self.record is not None:
            v = _value(x).astype(np.float64)
            p = LN.plan(x.shape[-1], x.dom.k, fmt)
            std_top = 2.0 ** (p.Vt / 2) / x.shape[-1]
            self._note("ln_std_over_top", float(np.median(v.std(axis=-1)) / std_top))
        return Shared(ring(k), LN.reference_layernorm(x.data, g, b, x.dom.k, fmt, k), 1)

    def gelu(self, acc: Shared, c: int, fin: A.Fixed, fout: A.Fixed, k: int) -> Shared:
        out = A.reference_gelu_requant(acc.data, acc.dom.k, c, fin, fout, out_bits=k)
        return Shared(ring(k), out, 1)

    def reveal(self, x: Shared) -> np.ndarray:
        return _value(x)


def reference_logits(params: QBertParams, config: QBertConfig, x_int8, mask) -> np.ndarray:
    """Integer logits [labels] (int64) of the int8 embeddings x [L, hidden] and the attention
    mask [L] (1 = real token, 0 = padding): exactly what ``secure_logits`` reveals."""
    if config != params.config:
        raise ValueError("params were built for another config")
    ops = PlainOps(params)
    return run_plain(ops, x_int8, mask)


def run_plain(ops: PlainOps, x_int8, mask) -> np.ndarray:
    cfg = ops.cfg
    mask = np.asarray(mask, dtype=np.int64)
    if not np.isin(mask, (0, 1)).all() or not mask.any():
        raise ValueError("the mask must be 0/1 with at least one real token")
    x = ops._wrap(cfg.input_ring, np.asarray(x_int8, dtype=np.int64))
    m = ops._wrap(cfg.mask_ring, mask)
    return pipeline.logits(ops, cfg, x, m)
