"""Party views over the secure BERT: what P1 and P2 receive is uniform and the same in
distribution whatever the other party's secret.

A 2-layer tiny model (one full encoder layer, then the [CLS]-only last layer and the head)
runs in three scenarios: S0 = (weights A, input a), S1 = (A, input b), S2 = (weights B,
input a), each ``RUNS`` times with fresh, deterministic randomness (``counted_seeds``).
``gviews.party_views`` logs every array P1 and P2 receive — online messages, the helper's
corrections (incl. lazily gathered LUT tables) and every exchange's opened sum — and the
test checks against the runtime's byte counts that nothing received escaped the log.

What is legitimately not secret, and how it is handled:
* the message schedule (which scope sends which domain and shape, in which order) depends
  on the public config and sequence length only: asserted identical across all runs;
* seeds (control frames) are fresh random bytes, not logged;
* the weights are opened once, masked (``weights`` scope, W' - a to P1): tested like the
  rest — uniform, and the same for weight sets A and B;
* the output: P1 receives P2's share of the logits (uniform on its own; only P1's share
  plus it is the output, which no exchange logs).
Everything else must be uniform on its ring.

Statistics, per logged array pooled over runs (arrays too small for ``MIN_PER_BIN``
expected samples per bin are pooled per party, kind and domain): chi-square goodness of
fit to the uniform distribution, in every scenario, of the low and the high ``b``-bit
digit (b <= 4) and of the magnitude class of the centred value (bit length of |v|: catches
small or few-bit values); and between S0 and S1 (P2's view: two inputs) or S0 and S2 (P1's
view: two weight sets) a two-sample chi-square on each digit and a two-sample
Kolmogorov-Smirnov test on the centred values. Each test function fails when any
p-value is below ``ALPHA / number of tests``: by the union bound the false-failure
probability over fresh randomness is at most ``ALPHA``; with the fixed seeds the outcome
is deterministic. ``test_views_catch_a_planted_leak`` shows the same analysis flags one
unmasked opening.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import numpy as np
import pytest
from gviews import chi2_sf, counted_seeds, party_views

from models import pipeline
from models.ops_plain import reference_logits
from models.ops_secure import SecureOps, prepare, secure_logits, share_inputs
from models.qmodel import QBertParams, preset, with_rings
from models.qrandom import random_input, random_qbert
from net.local import run_local

CFG = replace(preset("tiny"), layers=2)
L = 8
RUNS = 12
ALPHA = 1e-6
MIN_PER_BIN = 20


# -- models, inputs, runs -------------------------------------------------------------------
def other_weights(p: QBertParams, seed: int = 7) -> QBertParams:
    """Another weight set under the SAME public config (shapes, shifts, rings), with
    different statistics so its activations differ in distribution too: every W_int
    row-permuted and negated, multipliers and biases halved (biases negated), LayerNorm
    gamma quartered and permuted, beta negated and permuted. Every worst-case bound only
    shrinks, so the config's rings still hold (checked: no accumulator can wrap)."""
    rng = np.random.default_rng(seed)
    t = {}
    for name, v in p.tensors.items():
        if name.endswith(".w"):
            t[name] = -v[rng.permutation(v.shape[0])]
        elif name.endswith(".m"):
            t[name] = np.maximum(v // 2, 1).astype(v.dtype)
        elif ".ln" in name and name.endswith(".g"):
            t[name] = (v // 4)[rng.permutation(v.size)]
        elif ".ln" in name:
            t[name] = -v[rng.permutation(v.size)]
        else:  # linear biases
            t[name] = -(v // 2)
    cfg = p.config
    tight = with_rings(cfg, t)
    rings = [
        (f.ring_qkv, f.ring_attn, f.ring_ffn1, f.ring_ffn2)
        for f in (*cfg.layer_formats, *tight.layer_formats)
    ]
    n = cfg.layers
    assert (
        all(np.less_equal(rings[n + i], rings[i]).all() for i in range(n))
        and tight.head.ring_pool <= cfg.head.ring_pool
        and tight.head.ring_cls <= cfg.head.ring_cls
    )
    return QBertParams(cfg, t)


def inputs():
    """Two secret inputs of P1: a random sentence, all tokens real; a constant one with
    one real token (the attention mask is secret too)."""
    xa, ma = random_input(CFG, L, seed=3)
    xb = np.full((L, CFG.hidden), 127, dtype=np.int8)
    mb = (np.arange(L) < 1).astype(np.int64)
    return (xa, ma), (xb, mb)


@pytest.fixture(scope="module")
def models():
    a = random_qbert(CFG, seed=21)
    return a, other_weights(a)


def program(params, x, mask, ops_cls=None):
    """The secure inference (``secure_logits``; or the pipeline over ``ops_cls``)."""
    cfg = params.config

    def prog(rt):
        prep = prepare(rt, params if rt.rank == 2 else None, cfg)
        mine = (x, mask) if rt.rank == 1 else (None, None)
        xs, ms = share_inputs(rt, cfg, *mine, seq_len=L)
        if ops_cls is None:
            return secure_logits(rt, prep, cfg, xs, ms)
        return pipeline.logits(ops_cls(rt, prep), cfg, xs, ms)

    return prog


def collect(tag: str, params, x, mask, runs: int, ops_cls=None):
    """{rank: [log of run r]} over ``runs`` runs; checks the logits and that every byte
    P1 and P2 received is in the log."""
    want = reference_logits(params, params.config, x, mask)
    views = {1: [], 2: []}
    for r in range(runs):
        with counted_seeds(f"{tag}/{r}"), party_views() as (log, nbytes, pending):
            run = run_local(program(params, x, mask, ops_cls), session=r, timeout=300)
        assert (run.results[1] == want).all()
        for rank in (1, 2):
            total = run.reports[rank]["total"]
            assert nbytes[rank] == [total["online_recv"], total["offline_recv"]], rank
            assert not pending[rank]
            views[rank].append(log[rank])
    return views


# -- statistics -----------------------------------------------------------------------------
def digit_tests(dom, n: int):
    """[(name, values -> bin indices, bin probabilities)] for n samples over ``dom``, with
    >= MIN_PER_BIN expected samples per bin: the low and the high b-bit digit (2^b bins,
    b <= 4), and for domains above 16 elements the magnitude class of the centred value
    (bit length of |v|, the short ones lumped): small or few-bit values stand out there."""
    M = dom.modulus
    b = min(4, (M - 1).bit_length(), int(np.log2(max(n // MIN_PER_BIN, 1))))
    if b < 1:
        return []
    B = 1 << b
    if M <= B:
        return [("all", lambda v: v, np.full(M, 1 / M))]
    k = (M - 1).bit_length()
    if M == 1 << k:
        p = np.full(B, 1 / B)
        out = [
            ("lo", lambda v: v & np.uint64(B - 1), p),
            ("hi", lambda v: v >> np.uint64(k - b), p),
        ]
    else:
        lo = np.array([(M - j + B - 1) // B for j in range(B)]) / M
        hi = np.diff([-(-i * M // B) for i in range(B + 1)]) / M
        out = [
            ("lo", lambda v: v % np.uint64(B), lo),
            ("hi", lambda v: v * np.uint64(B) // np.uint64(M), hi),
        ]
    top = (M // 2).bit_length()  # bit length of the largest |v|
    C = min(top, 1 + int(np.log2(max(n // MIN_PER_BIN, 1))), 12)
    if M > 16 and C >= 2:
        out.append(("mag", lambda v: magnitude_class(v, M, top, C), magnitude_probs(M, top, C)))
    return out


def magnitude(v: np.ndarray, M: int) -> np.ndarray:
    """|centred v| in [0, M/2] (uint64; also for M = 2^64)."""
    v = v.astype(np.uint64)
    return np.where(v > np.uint64(M // 2), np.uint64(M % (1 << 64)) - v, v)


def magnitude_class(v, M: int, top: int, C: int) -> np.ndarray:
    """0: bit length >= top - 1 (about half of a uniform sample), i: top - 1 - i, and
    C - 1: bit length <= top - C."""
    powers = np.array([1 << j for j in range(64)], dtype=np.uint64)
    bitlen = np.searchsorted(powers, magnitude(v, M), side="right")
    return np.clip(top - 1 - bitlen.astype(np.int64), 0, C - 1)


def magnitude_probs(M: int, top: int, C: int) -> np.ndarray:
    """Exact class probabilities under the uniform distribution on Z_M."""

    def upto(j: int) -> float:  # P(bit length of |v| <= j): |v| <= 2^j - 1
        return min((1 << (j + 1)) - 1, M) / M if j >= 0 else 0.0

    probs = [1 - upto(top - 2)] + [upto(top - 1 - i) - upto(top - 2 - i) for i in range(1, C - 1)]
    return np.array(probs + [upto(top - C)])


def centred(v: np.ndarray, M: int) -> np.ndarray:
    """The centred representative of v in Z_M as int64 (order-preserving for KS)."""
    if M == 1 << 64:
        return v.astype(np.uint64).view(np.int64)
    s = v.astype(np.int64)
    s[v >= np.uint64((M + 1) // 2)] -= M
    return s


def ks_same_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov p-value (asymptotic, Stephens' correction); ties make
    it conservative, which only lowers the false-failure probability."""
    a, b = np.sort(a), np.sort(b)
    grid = np.union1d(a, b)
    d = np.abs(
        np.searchsorted(a, grid, side="right") / a.size
        - np.searchsorted(b, grid, side="right") / b.size
    ).max()
    ne = a.size * b.size / (a.size + b.size)
    lam = (np.sqrt(ne) + 0.12 + 0.11 / np.sqrt(ne)) * d
    if lam < 0.2:  # Q_KS(0.2) = 1 - 1e-11; the series below needs lam bounded away from 0
        return 1.0
    j = np.arange(1, 101)
    return float(np.clip(2 * np.sum((-1.0) ** (j - 1) * np.exp(-2 * j * j * lam * lam)), 0, 1))


def uniform_p(counts, probs) -> float:
    e = probs * counts.sum()
    return chi2_sf(float(((counts - e) ** 2 / e).sum()), len(probs) - 1)


def same_p(ca, cb) -> float:
    keep = (ca + cb) > 0
    ca, cb = ca[keep].astype(float), cb[keep].astype(float)
    ka, kb = np.sqrt(cb.sum() / ca.sum()), np.sqrt(ca.sum() / cb.sum())
    stat = float((((ka * ca - kb * cb) ** 2) / (ca + cb)).sum())
    return chi2_sf(stat, max(int(keep.sum()) - 1, 1))


def samples(views: dict, rank: int):
    """{label: (dom, {scenario: pooled values})}: one label per logged array, arrays too
    small for their own test pooled per (kind, domain)."""
    first = next(iter(views.values()))[rank][0]
    keys = [v.key for v in first]
    for logs in views.values():
        for log in logs[rank]:
            assert [v.key for v in log] == keys, "the message schedule depends on a secret"
    out = {}
    small = defaultdict(lambda: defaultdict(list))
    for i, v in enumerate(first):
        per = {
            s: np.concatenate([log[i].values.ravel() for log in logs[rank]])
            for s, logs in views.items()
        }
        label = f"#{i} {v.kind} {v.scope} {v.dom!r}{tuple(v.values.shape)}"
        if digit_tests(v.dom, min(a.size for a in per.values())):
            out[label] = (v.dom, per)
        else:
            for s, a in per.items():
                small[(v.kind, repr(v.dom))][s].append(a)
                small[(v.kind, repr(v.dom))]["dom"] = v.dom
    for (kind, d), per in small.items():
        dom = per.pop("dom")
        out[f"pooled small {kind} {d}"] = (dom, {s: np.concatenate(a) for s, a in per.items()})
    return out


def analyse(views: dict, rank: int, pairs) -> tuple[list, int, int]:
    """All p-values [(p, what)] of uniformity (every scenario) and sameness (``pairs``),
    the number of tests and of elements too few for any test."""
    res, untested = [], 0
    for label, (dom, per) in samples(views, rank).items():
        tests = digit_tests(dom, min(a.size for a in per.values()))
        if not tests:
            untested += min(a.size for a in per.values())
        for name, digit, probs in tests:
            counts = {
                s: np.bincount(digit(a).astype(np.int64), minlength=len(probs))
                for s, a in per.items()
            }
            for s, c in counts.items():
                res.append((uniform_p(c, probs), f"P{rank} uniform {s} {label} {name}"))
            for s, t in pairs:
                if name != "mag":
                    p = same_p(counts[s], counts[t])
                    res.append((p, f"P{rank} {s}=={t} {label} {name}"))
        if tests:
            for s, t in pairs:
                p = ks_same_p(centred(per[s], dom.modulus), centred(per[t], dom.modulus))
                res.append((p, f"P{rank} {s}=={t} {label} ks"))
    return sorted(res), len(res), untested


# -- the tests ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bert_views(models):
    a, b = models
    (xa, ma), (xb, mb) = inputs()
    return {
        "S0": collect("views/S0", a, xa, ma, RUNS),
        "S1": collect("views/S1", a, xb, mb, RUNS),
        "S2": collect("views/S2", b, xa, ma, RUNS),
    }


def test_scenarios_really_differ(models):
    a, b = models
    (xa, ma), (xb, mb) = inputs()
    assert (a.tensors["layer0.q.w"] != b.tensors["layer0.q.w"]).mean() > 0.5
    la, lb = reference_logits(a, a.config, xa, ma), reference_logits(b, b.config, xa, ma)
    assert (la != lb).any()
    assert (la != reference_logits(a, a.config, xb, mb)).any()


@pytest.mark.parametrize(
    "rank, pairs",
    [
        (1, [("S0", "S2")]),  # P1 (client) knows its input; the owner's weights vary
        (2, [("S0", "S1")]),  # P2 (owner) knows its weights; the client's input varies
    ],
)
def test_party_view_is_uniform_and_secret_independent(bert_views, rank, pairs):
    views = {s: {rank: v[rank]} for s, v in bert_views.items()}
    res, n, untested = analyse(views, rank, pairs)
    total = sum(log_v.values.size for log_v in bert_views["S0"][rank][0]) * RUNS
    assert untested < 0.001 * total, (untested, total)
    assert n > 400  # every array: digits x (3 uniformity + 1 sameness)
    worst, what = res[0]
    assert worst >= ALPHA / n, (worst, what, res[:5])


class LeakyOps(SecureOps):
    """A planted bug: LayerNorm's int8 output opened unmasked to both parties."""

    def layernorm(self, *args, **kw):
        out = super().layernorm(*args, **kw)
        self.rt.open(out)
        return out


@pytest.mark.parametrize("rank, other", [(1, "S2"), (2, "S1")])
def test_views_catch_a_planted_leak(models, rank, other):
    """With LayerNorm outputs opened, P2's view depends on the input and P1's on the
    weights: the analysis flags exactly those openings (3 runs suffice)."""
    a, b = models
    (xa, ma), (xb, mb) = inputs()
    params, x, mask = {"S1": (a, xb, mb), "S2": (b, xa, ma)}[other]
    runs = 3
    views = {
        "S0": collect("leak/S0", a, xa, ma, runs, LeakyOps),
        other: collect(f"leak/{other}", params, x, mask, runs, LeakyOps),
    }
    res, n, _ = analyse({s: {rank: v[rank]} for s, v in views.items()}, rank, [("S0", other)])
    flagged = [what for p, what in res if p < ALPHA / n]
    assert flagged and all(" open " in w and ".ln" in w for w in flagged), flagged[:5]
    assert any(f"S0=={other}" in w for w in flagged)
