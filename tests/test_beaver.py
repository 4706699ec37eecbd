"""Bilinear Beaver triples, private weights reused across queries, the 1-bit layer."""

import hashlib
import math
import sys
from contextlib import contextmanager

import numpy as np
import pytest
from harness import measured, run_and_open
from hypothesis import given, settings
from hypothesis import strategies as st

import net.runtime as runtime_mod
from mpc.ring import DomainMismatch, ring
from mpc.shares import ShapeMismatch
from net.local import run_local
from net.runtime import Runtime
from protocols import beaver as bv
from protocols import binary_linear as bl

MODES = st.sampled_from(["live", "dealt"])
KS = st.one_of(st.sampled_from([1, 8, 16, 20, 32, 64]), st.integers(1, 64))
DIM = st.integers(1, 5)


def _rand(rng, shape, k):
    return ring(k).reduce(
        rng.integers(0, 2**63, shape, dtype=np.uint64) * np.uint64(2)
        + rng.integers(0, 2, shape, dtype=np.uint64)
    )


def _inputs(rt, R, x, y):
    xs = rt.input(1, R, x.shape, x if rt.rank == 1 else None)
    ys = rt.input(2, R, y.shape, y if rt.rank == 2 else None)
    return xs, ys


# -- shared x shared ----------------------------------------------------------------------


@st.composite
def mul_shapes(draw):
    sx = tuple(draw(st.lists(DIM, min_size=0, max_size=3)))
    sy = tuple(1 if draw(st.booleans()) else d for d in sx)  # broadcast some axes
    return sx, sy[draw(st.integers(0, len(sx))) :]


@st.composite
def matmul_shapes(draw):
    n, m, p = draw(DIM), draw(DIM), draw(DIM)
    batch = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    by = tuple(1 if draw(st.booleans()) else d for d in batch)
    by = by[draw(st.integers(0, len(by))) :]
    sx, sy = (*batch, n, m), (*by, m, p)
    if draw(st.integers(0, 5)) == 0:
        sx = (m,)
    elif draw(st.integers(0, 5)) == 0:
        sy = (m,)
    return sx, sy


@settings(max_examples=25, deadline=None)
@given(shapes=mul_shapes(), k=KS, mode=MODES, seed=st.integers(0, 2**32))
def test_mul_matches_reference_and_cost(shapes, k, mode, seed):
    (sx, sy), R, rng = shapes, ring(k), np.random.default_rng(seed)
    x, y = _rand(rng, sx, k), _rand(rng, sy, k)
    out, cost, _ = run_and_open(lambda rt: bv.mul(rt, *_inputs(rt, R, x, y)), mode)
    assert out.dtype == np.uint64 and (out == bv.reference_mul(x, y, k)).all()
    assert cost == bv.cost_mul(sx, k, sy)


@settings(max_examples=25, deadline=None)
@given(shapes=matmul_shapes(), k=KS, mode=MODES, seed=st.integers(0, 2**32))
def test_matmul_matches_reference_and_cost(shapes, k, mode, seed):
    (sx, sy), R, rng = shapes, ring(k), np.random.default_rng(seed)
    x, y = _rand(rng, sx, k), _rand(rng, sy, k)
    out, cost, _ = run_and_open(lambda rt: bv.matmul(rt, *_inputs(rt, R, x, y)), mode)
    assert (out == bv.reference_matmul(x, y, k)).all()
    assert cost == bv.cost_matmul(sx, sy, k)


@pytest.mark.parametrize("k,mode", [(16, "live"), (20, "dealt"), (64, "live")])
def test_bmm_attention_shapes(k, mode):
    R, rng = ring(k), np.random.default_rng(k)
    q, kt = _rand(rng, (12, 16, 8), k), _rand(rng, (12, 8, 16), k)
    out, cost, _ = run_and_open(lambda rt: bv.bmm(rt, *_inputs(rt, R, q, kt)), mode)
    assert (out == bv.reference_bmm(q, kt, k)).all()
    assert cost == bv.cost_bmm(q.shape, kt.shape, k) and cost.rounds == 1


@settings(max_examples=10, deadline=None)
@given(k=KS, mode=MODES, seed=st.integers(0, 2**32), count=st.integers(1, 3))
def test_matmul_many_one_opening(k, mode, seed, count):
    R, rng = ring(k), np.random.default_rng(seed)
    x = _rand(rng, (2, 3, 4), k)
    ys = [_rand(rng, (4, int(rng.integers(1, 5))), k) for _ in range(count)]

    def prog(rt):
        xs = rt.input(1, R, x.shape, x if rt.rank == 1 else None)
        return bv.matmul_many(
            rt, xs, [rt.input(2, R, y.shape, y if rt.rank == 2 else None) for y in ys]
        )

    out, cost, run = run_and_open(prog, mode)
    out = out if count > 1 else [out]
    assert all((o == r).all() for o, r in zip(out, bv.reference_matmul_many(x, ys, k), strict=True))
    assert cost == bv.cost_matmul_many(x.shape, [y.shape for y in ys], k)
    assert cost.rounds == 1
    assert all(run.reports[p]["scopes"]["proto"]["messages_sent"] == 1 for p in (1, 2))


# -- private weights ----------------------------------------------------------------------


def _weight_prog(R, x, ws, owner, many=False):
    def prog(rt):
        xs = rt.input(1, R, x.shape, x if rt.rank == 1 else None)
        with rt.scope("prepare"):
            pws = [
                bv.prepare_weight(rt, w if rt.rank == owner else None, R, w.shape, owner)
                for w in ws
            ]
        with rt.scope("query"):
            return bv.linear_many(rt, xs, pws) if many else bv.linear(rt, xs, pws[0])

    return prog


@settings(max_examples=20, deadline=None)
@given(
    k=KS,
    mode=MODES,
    seed=st.integers(0, 2**32),
    owner=st.sampled_from([1, 2]),
    batch=st.lists(st.integers(1, 3), max_size=2),
    n=DIM,
    din=DIM,
    dout=DIM,
)
def test_linear_matches_reference_and_cost(k, mode, seed, owner, batch, n, din, dout):
    R, rng = ring(k), np.random.default_rng(seed)
    x = _rand(rng, (*batch, n, din), k)
    w = rng.integers(-(2**62), 2**62, (din, dout)) if k > 8 else _rand(rng, (din, dout), k)
    out, _, run = run_and_open(_weight_prog(R, x, [w], owner), mode)
    assert (out == bv.reference_linear(x, R.reduce(w), k)).all()
    assert measured(run, "proto.query") == bv.cost_linear(x.shape, w.shape, k, owner)
    assert measured(run, "proto.prepare") == bv.cost_prepare_weight(w.shape, k, owner)


@pytest.mark.parametrize("mode,owner", [("live", 2), ("dealt", 2), ("live", 1)])
def test_weight_reused_across_queries(mode, owner):
    k, R, rng = 20, ring(20), np.random.default_rng(7)
    w = _rand(rng, (6, 5), k)
    xs_plain = [_rand(rng, (3, 6), k) for _ in range(3)]

    def prog(rt):
        with rt.scope("prepare"):
            pw = bv.prepare_weight(rt, w if rt.rank == owner else None, R, w.shape, owner)
        outs = []
        for q, x in enumerate(xs_plain):
            xs = rt.input(1, R, x.shape, x if rt.rank == 1 else None)
            with rt.scope(f"q{q}"):
                y = bv.linear(rt, xs, pw)
            outs.append(None if rt.is_dealer else rt.open(y))  # queries depend on each other
        return outs

    run = run_local(prog, mode=mode)
    for q, x in enumerate(xs_plain):
        assert (run.results[1][q] == bv.reference_linear(x, w, k)).all()
        c = measured(run, f"q{q}")
        assert c == bv.cost_linear(x.shape, w.shape, k, owner)
        assert sorted(c.online) == [0, R.nbytes(x.size)]  # only |X| elements, one way
    assert measured(run, "prepare") == bv.cost_prepare_weight(w.shape, k, owner)
    sent_w = run.reports[owner]["scopes"]["prepare"]["online_sent"]
    total = run.reports[owner]["total"]["online_sent"] - 3 * R.nbytes(15)  # minus the opens
    assert sent_w == total == R.nbytes(w.size)  # dW went exactly once


@pytest.mark.parametrize("k,mode", [(8, "live"), (27, "dealt"), (64, "live")])
def test_linear_many_one_round_one_message(k, mode):
    R, rng = ring(k), np.random.default_rng(k)
    x = _rand(rng, (2, 4, 6), k)
    ws = [_rand(rng, (6, d), k) for d in (5, 5, 3)]
    out, _, run = run_and_open(_weight_prog(R, x, ws, 2, many=True), mode)
    cost = measured(run, "proto.query")
    assert all((o == r).all() for o, r in zip(out, bv.reference_linear_many(x, ws, k), strict=True))
    assert cost == bv.cost_linear_many(x.shape, [w.shape for w in ws], k)
    assert cost.rounds == 1 and cost.online == (R.nbytes(x.size), 0)
    assert run.reports[1]["scopes"]["proto"]["messages_sent"] == 1  # prepare is P2's
    assert run.reports[2]["scopes"]["proto"]["messages_sent"] == 3  # the three dW, once


def test_private_weight_is_bound():
    R = ring(16)

    def prog(rt):
        pw = bv.prepare_weight(rt, np.ones((2, 2), np.int64) if rt.rank == 2 else None, R, (2, 2))
        with pytest.raises(AttributeError):
            pw.w = np.zeros((2, 2), np.uint64)
        if pw.w.size and not rt.is_dealer:
            with pytest.raises(ValueError):
                pw.w[0, 0] = 1
        other = bv.PrivateWeight("w", R, (2, 2), 2, rt.session + 1, rt.rank, pw.w)
        xs = rt.input(1, R, (1, 2), np.ones((1, 2), np.int64) if rt.rank == 1 else None)
        with pytest.raises(ValueError, match="another session"):
            bv.linear(rt, xs, other)
        with pytest.raises(ValueError, match="twice"):
            bv.linear_many(rt, xs, [pw, pw])
        return True

    assert run_local(prog).results == {0: True, 1: True, 2: True}


# -- 1-bit layer --------------------------------------------------------------------------


def test_accumulator_bits():
    assert bl.accumulator_bits(8, 768) == 19
    assert bl.accumulator_bits(4, 768) == 15
    assert bl.accumulator_bits(8, 3072) == 21


@settings(max_examples=15, deadline=None)
@given(
    kx=st.integers(1, 8),
    din=st.integers(1, 40),
    dout=DIM,
    n=DIM,
    mode=MODES,
    owner=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**32),
    extra=st.integers(0, 2),
)
def test_binary_linear(kx, din, dout, n, mode, owner, seed, extra):
    rng = np.random.default_rng(seed)
    k = bl.accumulator_bits(kx, din) + extra
    R = ring(k)
    xv = rng.integers(-(2 ** (kx - 1)), 2 ** (kx - 1), (2, n, din))
    s = rng.choice(np.array([-1, 1]), (din, dout))
    x = R.reduce(xv)

    def prog(rt):
        xs = rt.input(1, R, x.shape, x if rt.rank == 1 else None)
        with rt.scope("prepare"):
            bw = bl.prepare_binary_weight(rt, s if rt.rank == owner else None, k, s.shape, owner)
        with rt.scope("query"):
            return bl.binary_linear(rt, xs, bw)

    out, _, run = run_and_open(prog, mode)
    cost = measured(run, "proto.query")
    ref = bl.reference_binary_linear(x, s, k)
    assert (out == ref).all()
    assert (R.signed(out) == xv @ s).all()  # the accumulator ring never wraps
    assert cost == bl.cost_binary_linear(x.shape, s.shape, k, owner)
    assert measured(run, "proto.prepare") == bl.cost_prepare_binary_weight(s.shape, k, owner)


def test_binary_linear_many_qkv():
    k, rng = 19, np.random.default_rng(3)
    R = ring(k)
    x = R.reduce(rng.integers(-128, 128, (4, 32)))
    ss = [rng.choice(np.array([-1, 1]), (32, 8)) for _ in range(3)]

    def prog(rt):
        xs = rt.input(1, R, x.shape, x if rt.rank == 1 else None)
        with rt.scope("prepare"):
            bws = [
                bl.prepare_binary_weight(rt, s if rt.rank == 2 else None, k, s.shape) for s in ss
            ]
        with rt.scope("query"):
            return bl.binary_linear_many(rt, xs, bws)

    out, _, run = run_and_open(prog, "dealt")
    cost = measured(run, "proto.query")
    assert all(
        (o == bl.reference_binary_linear(x, s, k)).all() for o, s in zip(out, ss, strict=True)
    )
    assert cost == bl.cost_binary_linear_many(x.shape, [s.shape for s in ss], k)
    assert cost.online == (R.nbytes(x.size) * 18 // 19, 0) and cost.rounds == 1


# -- bad input: raised on every party before any message ----------------------------------


def _traffic(rt):
    tot = rt.acct.measure("")
    return tot.online_sent + tot.offline_sent + tot.offline_recv


def _no_traffic(program):
    """Run program(rt, mark) on all parties; bytes counted after the last mark()."""

    def prog(rt):
        base = [0]
        try:
            program(rt, lambda: base.__setitem__(0, _traffic(rt)))
        except (DomainMismatch, ShapeMismatch, ValueError) as e:
            return type(e).__name__, _traffic(rt) - base[0]
        return "no error", None

    return {r: v for r, v in run_local(prog).results.items()}


@pytest.mark.parametrize(
    "case,expected",
    [
        ("ring", "DomainMismatch"),
        ("mm_shape", "ShapeMismatch"),
        ("bmm_shape", "ShapeMismatch"),
        ("mul_shape", "ShapeMismatch"),
        ("lin_ring", "DomainMismatch"),
        ("lin_shape", "ShapeMismatch"),
        ("bin_ring", "DomainMismatch"),
    ],
)
def test_bad_input_raises_before_any_message(case, expected):
    R8, R16 = ring(8), ring(16)

    def program(rt, mark):
        a = rt.input(1, R8, (3, 4), np.zeros((3, 4), np.int64) if rt.rank == 1 else None)
        b16 = rt.input(1, R16, (4, 2), np.zeros((4, 2), np.int64) if rt.rank == 1 else None)
        b = rt.input(1, R8, (5, 2), np.zeros((5, 2), np.int64) if rt.rank == 1 else None)
        if case == "ring":
            bv.matmul(rt, a, b16)
        elif case == "mm_shape":
            bv.matmul(rt, a, b)
        elif case == "bmm_shape":
            bv.bmm(rt, a, b)
        elif case == "mul_shape":
            bv.mul(rt, a, b)
        elif case.startswith("lin"):
            w = np.zeros((4, 2) if case == "lin_ring" else (5, 2), np.int64)
            r = R16 if case == "lin_ring" else R8
            pw = bv.prepare_weight(rt, w if rt.rank == 2 else None, r, w.shape)
            mark()  # count only what follows
            bv.linear(rt, a, pw)
        else:
            bw = bl.prepare_binary_weight(
                rt, -np.ones((4, 2), np.int64) if rt.rank == 2 else None, 9, (4, 2)
            )
            mark()
            bl.binary_linear(rt, a, bw)

    assert _no_traffic(program) == {r: (expected, 0) for r in (0, 1, 2)}


def test_bad_weights_rejected_by_owner_first():
    R = ring(8)

    def prog(rt):
        try:
            if rt.rank == 1:  # owner of a weight that does not match its declared shape
                bv.prepare_weight(rt, np.zeros((3, 3), np.int64), R, (2, 3), owner=1)
            if rt.rank == 2:  # a "binary" weight with a 0 entry
                bl.prepare_binary_weight(rt, np.zeros((2, 2), np.int64), 8, (2, 2))
        except (ShapeMismatch, ValueError) as e:
            return type(e).__name__, rt.acct.measure("").online_sent
        return None

    res = run_local(prog).results
    assert res[1] == ("ShapeMismatch", 0) and res[2] == ("ValueError", 0)
    with pytest.raises(ValueError):
        bv.cost_matmul((2, 3), (4, 5), 8)


# -- statistical views ------------------------------------------------------------------


@contextmanager
def seeded_runs():
    """Deterministic runtime seeds, keyed by run and by which seed (thread-order free)."""
    state = {"run": 0}

    def seed():
        where = sys._getframe(1).f_locals.get("party", "p1p2")
        return hashlib.blake2b(f"beaver/{state['run']}/{where}".encode(), digest_size=16).digest()

    old = runtime_mod.fresh_seed
    runtime_mod.fresh_seed = seed
    try:
        yield state
    finally:
        runtime_mod.fresh_seed = old


@contextmanager
def recording():
    """Record every array a party receives online, per rank."""
    seen = {1: [], 2: []}
    old = Runtime.recv

    def recv(self, specs, *dtype):
        out = old(self, specs, *dtype)
        seen[self.rank].append([a.copy() for a in out])
        return out

    Runtime.recv = recv
    try:
        yield seen
    finally:
        Runtime.recv = old


def _chi2_crit(df, z=3.719):  # Wilson-Hilferty, upper 1e-4 quantile of chi2(df)
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def _same_distribution(a, b, cells):
    ca, cb = np.bincount(a, minlength=cells), np.bincount(b, minlength=cells)
    both = (ca + cb) > 0
    stat = (((ca - cb) ** 2)[both] / (ca + cb)[both]).sum()
    assert stat < _chi2_crit(cells - 1), stat
    expect = len(a) / cells  # and both are uniform
    for c in (ca, cb):
        assert ((c - expect) ** 2 / expect).sum() < _chi2_crit(cells - 1)


def test_view_of_bilinear_triple_is_independent_of_inputs():
    """P2 sees (its shares of x, y; P1's x1 - a1, y1 - b1): the same for x = 0 and x = 3."""
    R, runs, n = ring(2), 6, 512
    views = {}
    with seeded_runs() as state, recording() as seen:
        for secret in (0, 3):
            samples = []
            for r in range(runs):
                state["run"] = 100 * secret + r
                seen[1].clear(), seen[2].clear()
                x = np.full((n,), secret, np.int64)
                y = np.full((n,), 2 - secret, np.int64)

                def prog(rt, x=x, y=y):
                    xs = rt.input(1, R, x.shape, x if rt.rank == 1 else None)
                    ys = rt.input(1, R, y.shape, y if rt.rank == 1 else None)
                    bv.mul(rt, xs, ys)
                    return None if rt.is_dealer else (xs.data.copy(), ys.data.copy())

                res = run_local(prog).results
                ex, ey = seen[2][0]
                own_x, own_y = res[2]
                samples.append((own_x * 4 + ex) * 16 + own_y * 4 + ey)  # joint of 4 words
            views[secret] = np.concatenate(samples).astype(np.int64)
    _same_distribution(views[0], views[3], 4**4)


def test_view_of_private_weight_linear_is_independent_of_inputs():
    """P2 (owner) sees d = X1 - b per query; P1 sees dW = W - a once."""
    R, n = ring(4), 2048
    views = {}
    with seeded_runs() as state, recording() as seen:
        for secret in (0, 9):
            seen[1].clear(), seen[2].clear()
            state["run"] = 1000 + secret
            x = np.full((n // 32, 32), secret, np.int64)
            w = np.full((32, 64), secret, np.int64)

            def prog(rt, x=x, w=w):
                xs = rt.input(1, R, x.shape, x if rt.rank == 1 else None)
                pw = bv.prepare_weight(rt, w if rt.rank == 2 else None, R, w.shape)
                for _ in range(2):
                    bv.linear(rt, xs, pw)
                return None if rt.is_dealer else xs.data.copy()

            res = run_local(prog).results
            (dw,) = seen[1][0]
            d = np.concatenate([m[0].ravel() for m in seen[2]])
            own = np.tile(res[2].ravel(), 2)
            views[secret] = (dw.ravel().astype(np.int64), (own * 16 + d).astype(np.int64))
    _same_distribution(views[0][0], views[9][0], 16)
    _same_distribution(views[0][1], views[9][1], 256)


# -- factored owner weights and pre-query products -----------------------------------------
@settings(max_examples=15, deadline=None)
@given(
    k=st.sampled_from([8, 20, 33, 63, 64]),
    mode=MODES,
    seed=st.integers(0, 2**32),
    wbits=st.sampled_from([1, 4, 8]),
    pre=st.booleans(),
)
def test_factored_weight_and_precompute(k, mode, seed, wbits, pre):
    """W = W_int diag(m) held factored by the owner (narrow limb plan), with and without
    P1's products computed before the query: the same X W, the same bytes and rounds."""
    R, rng = ring(k), np.random.default_rng(seed)
    lim = 1 if wbits == 1 else (1 << (wbits - 1)) - 1
    ws = [rng.integers(-lim, lim + 1, (9, d)) for d in (4, 3)]
    ms = [rng.integers(1, 1 << 14, d) for d in (4, 3)]
    x = _rand(rng, (5, 9), k)

    def prog(rt):
        xs = rt.input(1, R, x.shape, x if rt.rank == 1 else None)
        with rt.scope("prepare"):
            pws = [
                bv.prepare_weight(
                    rt,
                    w if rt.rank == 2 else None,
                    R,
                    w.shape,
                    2,
                    f"w{i}",
                    m if rt.rank == 2 else None,
                )  # fmt: skip
                for i, (w, m) in enumerate(zip(ws, ms, strict=True))
            ]
        outs = []
        for q in range(2):
            if pre:
                bv.precompute_linear(rt, x.shape, pws)
            with rt.scope(f"q{q}"):
                ys = bv.linear_many(rt, xs, pws)
            outs.append([None if rt.is_dealer else rt.open(y) for y in ys])  # q1 after q0
        return outs

    run = run_local(prog, mode=mode)
    full = [w * m[None, :] for w, m in zip(ws, ms, strict=True)]
    for q in range(2):
        for got, want in zip(run.results[1][q], bv.reference_linear_many(x, full, k), strict=True):
            assert (got == want).all()
        got, want = measured(run, f"q{q}"), bv.cost_linear_many(x.shape, [w.shape for w in ws], k)
        assert (got.online, got.offline) == (want.online, want.offline)
        assert got.rounds <= want.rounds  # one way: may overlap the previous opening


def test_precompute_checks_and_fresh_masks():
    R = ring(16)
    w = np.arange(6).reshape(2, 3)

    def prog(rt):
        pw = bv.prepare_weight(rt, w if rt.rank == 2 else None, R, w.shape)
        xs = rt.input(1, R, (1, 2), np.ones((1, 2), np.int64) if rt.rank == 1 else None)
        bv.precompute_linear(rt, (4, 2), [pw])  # the wrong activation shape
        if rt.rank == 1:
            with pytest.raises(ShapeMismatch, match="precomputed"):
                bv.linear(rt, xs, pw)
        # the keyed masks: one stream per key, shared by P0 and P1 only
        return [rt.keyed_random(R, (64,), 1, f"t{i}") for i in range(2)]

    run = run_local(prog, timeout=5)
    b0, b1 = run.results[0]
    assert run.results[2] == [None, None]
    assert all((p == q).all() for p, q in zip(run.results[1], run.results[0], strict=True))
    assert not (b0 == b1).all()
