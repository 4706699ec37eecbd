"""The secure quantized BERT: ``models.pipeline`` over the protocols.

Roles: P1 (client) inputs the int8 embeddings and the attention mask (``share_inputs``,
free: ``rt.input``) and learns the logits; P2 (owner) holds every private integer (weights,
multipliers, biases, LayerNorm gamma/beta); P0 deals. Per step (costs: the protocol modules):

* dense:   ``beaver.linear_many`` on weights prepared ONCE (``prepare``: P2 sends W' - a,
           k|W'| bits, in scope "weights"; P2 keeps W' = W_int diag(m) factored, so its
           per-query product is a narrow-weight one); P2 adds b' to its share (local).
           ``precompute`` (scope "precompute", before a query): P1's input-independent
           products b (W' - a) of every dense of the query.
* requant: ``onehot.requant`` (exact) with the public table, emitted over the consumer's
           ring; the carry plan is ``activations.carry_digits_for(c)`` (2 rounds for
           c <= 8, else 3).
* bmm:     ``beaver.bmm`` (one opening of both operands).
* extend:  ``convert.extend_bounded`` (1 round).
* softmax, layernorm (gamma/beta input by P2), GELU: ``protocols.softmax``,
  ``protocols.layernorm``, ``activations.gelu_requant``.
* reveal:  the logits go to P1 only (1 message P2 -> P1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models import pipeline
from models.qmodel import QBertConfig, QBertParams
from mpc.ring import ring
from mpc.shares import Shared
from protocols import activations as A
from protocols import beaver
from protocols import convert as C
from protocols import layernorm as LN
from protocols import onehot as O
from protocols import softmax as SM

OWNER, CLIENT = 2, 1


@dataclass(frozen=True)
class Prepared:
    """One party's prepared model: a ``PrivateWeight`` per linear layer (owner: W', P1:
    W' - a, P0: a) and, on the owner only, the biases and LayerNorm parameters."""

    config: QBertConfig
    weights: dict
    private: dict | None  # owner: name -> int64 array; None elsewhere


def prepare(rt, params: QBertParams | None, config: QBertConfig) -> Prepared:
    """Once per model (scope "weights"): every weight W' opened masked to P1. ``params`` on
    the owner P2 only (None elsewhere); ``config`` is public."""
    if not config.built:
        raise ValueError("the config has no formats: build or load a model")
    if rt.rank == OWNER:
        if params is None or params.config != config:
            raise ValueError("the owner needs the model's parameters for this config")
    weights, private = {}, None
    with rt.scope("weights"):
        for name, (shape, _) in config.linears().items():
            w, m = params.factors(name) if rt.rank == OWNER else (None, None)
            k = config.ring_of(name)
            weights[name] = beaver.prepare_weight(rt, w, ring(k), shape, OWNER, name, m)
    if rt.rank == OWNER:
        private = {n: params.bias(n) for n in config.linears()}
        for i in range(config.layers):
            for j in (1, 2):
                name = f"layer{i}.ln{j}"
                private[name + ".g"], private[name + ".b"] = params.ln(name)
    return Prepared(config, weights, private)


def precompute(rt, prepared: Prepared, calls) -> None:
    """Scope "precompute", before a query: P1 draws its masks and computes their products
    with its masked weights for every dense of ``calls`` (``ops_cost.linear_calls``;
    ``beaver.precompute_linear``: input-independent, no messages), then P1 and P2 meet at a
    barrier (1 round, so that the query is timed from a common start)."""
    with rt.scope("precompute"):
        for names, shape in calls:
            beaver.precompute_linear(rt, shape, [prepared.weights[n] for n in names])
        rt.barrier()


class SecureOps:
    def __init__(self, rt, prepared: Prepared):
        self.rt, self.prep = rt, prepared

    def scope(self, name: str):
        return self.rt.scope(name)

    def dense_many(self, x: Shared, names) -> list[Shared]:
        outs = beaver.linear_many(self.rt, x, [self.prep.weights[n] for n in names])
        if self.rt.rank != OWNER:
            return outs
        R = x.dom
        return [
            Shared(R, R.add(o.data, R.reduce(self.prep.private[n])), OWNER)
            for o, n in zip(outs, names, strict=True)
        ]

    def requant(self, acc: Shared, c: int, tables) -> list[Shared]:
        return O.requant(self.rt, acc, c, tables, carry_digits=A.carry_digits_for(c))

    def bmm(self, x: Shared, y: Shared) -> Shared:
        return beaver.bmm(self.rt, x, y)

    def extend(self, x: Shared, k: int) -> Shared:
        return C.extend_bounded(self.rt, x, k)

    def mul(self, x: Shared, y: Shared) -> Shared:
        return beaver.mul(self.rt, x, y)

    def softmax(self, x: Shared, fmt: SM.SoftmaxFormat, k: int, xc=None) -> Shared:
        return SM.softmax(self.rt, x, fmt, k, xc)

    def layernorm(self, x: Shared, name: str, fmt: LN.LayerNormFormat, k: int) -> Shared:
        g = b = None
        if self.rt.rank == OWNER:
            g, b = self.prep.private[name + ".g"], self.prep.private[name + ".b"]
        return LN.layernorm(self.rt, x, g, b, fmt, k)

    def gelu(self, acc: Shared, c: int, fin: A.Fixed, fout: A.Fixed, k: int) -> Shared:
        d = A.carry_digits_for(c)
        return A.gelu_requant(self.rt, acc, c, fin, fout, out_bits=k, carry_digits=d)

    def reveal(self, x: Shared):
        out = self.rt.reveal(x, to=CLIENT)
        return None if out is None else x.dom.signed(out)


def share_inputs(rt, config: QBertConfig, x_int8=None, mask=None, seq_len: int | None = None):
    """Scope "embed": P1's int8 embeddings [L, hidden] and attention mask [L] (1 real token,
    0 padding) as shares over ``config.input_ring`` / ``config.mask_ring`` (free). P1 passes
    the values; the others pass ``seq_len`` (public)."""
    if rt.rank == CLIENT:
        x_int8, mask = np.asarray(x_int8, dtype=np.int64), np.asarray(mask, dtype=np.int64)
        L = x_int8.shape[0]
        if x_int8.shape != (L, config.hidden) or mask.shape != (L,):
            raise ValueError(f"embeddings must be [L, {config.hidden}] and the mask [L]")
        if np.abs(x_int8).max(initial=0) > 128 or not np.isin(mask, (0, 1)).all():
            raise ValueError("embeddings must be int8 and the mask 0/1")
        if not mask.any():
            raise ValueError("the mask needs at least one real token")
    else:
        L = int(seq_len)
    with rt.scope("embed"):
        xs = rt.input(CLIENT, ring(config.input_ring), (L, config.hidden), x_int8)
        ms = rt.input(CLIENT, ring(config.mask_ring), (L,), mask)
    return xs, ms


def secure_logits(rt, prepared: Prepared, config: QBertConfig, x_shared, mask_shared):
    """Integer logits [labels] (int64) revealed to P1 (None on P0 and P2); equal to
    ``ops_plain.reference_logits`` on the same inputs."""
    if prepared.config != config:
        raise ValueError("the prepared weights belong to another config")
    return pipeline.logits(SecureOps(rt, prepared), config, x_shared, mask_shared)
