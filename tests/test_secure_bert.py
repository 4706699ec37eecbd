"""The secure quantized BERT equals the plaintext integer reference bit for bit."""

import argparse

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.job import bert_job
from models.ops_cost import declared_costs, linear_calls
from models.ops_plain import reference_logits
from models.ops_secure import precompute, prepare, secure_logits, share_inputs
from models.qmodel import KINDS, QBertConfig, preset
from models.qrandom import random_input, random_qbert
from net.accounting import merge_reports
from net.local import run_local

SUBSTEPS = ("qkv", "scores", "softmax", "context", "attn_out", "ln1", "ffn1_gelu", "ffn2", "ln2")


def run_queries(params, queries, mode):
    """Prepare the weights once, then one secure query per (x, mask) in scope q{j}."""
    cfg = params.config

    def program(rt):
        prep = prepare(rt, params if rt.rank == 2 else None, cfg)
        outs = []
        for j, (x, mask) in enumerate(queries):
            if j == 0:  # q0 takes P1's pre-query products, q1 computes them in the query
                precompute(rt, prep, linear_calls(cfg, len(mask)))
            with rt.scope(f"q{j}"):
                mine = (x, mask) if rt.rank == 1 else (None, None)
                xs, ms = share_inputs(rt, cfg, *mine, seq_len=len(mask))
                outs.append(secure_logits(rt, prep, cfg, xs, ms))
        return outs

    return run_local(program, mode=mode, timeout=120)


@st.composite
def tiny_models(draw):
    heads = draw(st.integers(1, 4))
    hidden = heads * draw(st.integers(-(-8 // heads), 32 // heads))
    cfg = QBertConfig(
        layers=draw(st.integers(1, 2)),
        hidden=hidden,
        heads=heads,
        ffn=draw(st.integers(8, 48)),
        labels=draw(st.integers(2, 3)),
        seq_len=8,
        w_bits={k: draw(st.sampled_from([8, 4, 1])) for k in KINDS},
    )
    L = draw(st.integers(2, 8))
    valid = [draw(st.integers(1, L)) for _ in range(2)]
    return cfg, L, valid, draw(st.integers(0, 2**16))


def _check(case, mode):
    cfg, L, valid, seed = case
    params = random_qbert(cfg, seed=seed)
    queries = [random_input(params.config, L, seed=seed + j, valid=v) for j, v in enumerate(valid)]
    run = run_queries(params, queries, mode)
    assert run.results[0] is None or all(r is None for r in run.results[0])
    assert all(r is None for r in run.results[2])  # the owner learns nothing
    for (x, mask), got in zip(queries, run.results[1], strict=True):
        want = reference_logits(params, params.config, x, mask)
        assert got.dtype == np.int64 and (got == want).all()
    scopes = merge_reports(run.reports)["scopes"]
    assert "weights" in scopes and "q1.embed" in scopes
    for j in range(2):
        for i in range(cfg.layers):
            for s in SUBSTEPS:
                assert f"q{j}.layer{i}.{s}" in scopes
        for s in ("pooler", "classifier", "reveal"):
            assert f"q{j}.{s}" in scopes
    # measured bytes == the declared costs of every scope; rounds at most the declared sum
    for path, cost in declared_costs(params.config, L).items():
        got = scopes["q0" + (path and "." + path) if path != "weights" else path]
        assert (tuple(got["online_bytes"]), tuple(got["offline_bytes"])) == (
            cost.online,
            cost.offline,
        ), path
        assert got["rounds"] <= cost.rounds, path
    # the weights are opened once; both queries then cost the same
    assert scopes["weights"]["calls"] == 1 and scopes["weights"]["online_bytes"][1] > 0
    for key in ("online_bytes", "offline_bytes", "rounds"):
        assert scopes["q0"][key] == scopes["q1"][key]


SETTINGS = dict(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings(**SETTINGS)
@given(tiny_models())
def test_secure_equals_reference_live(case):
    _check(case, "live")


@settings(**SETTINGS)
@given(tiny_models())
def test_secure_equals_reference_dealt(case):
    _check(case, "dealt")


def test_minilm_shape_equals_reference():
    params = random_qbert(preset("minilm"), seed=3)
    x, mask = random_input(params.config, 16, seed=4, valid=13)
    run = run_queries(params, [(x, mask)], "dealt")
    want = reference_logits(params, params.config, x, mask)
    assert (run.results[1][0] == want).all()


def _args(**kw):
    p = argparse.ArgumentParser()
    bert_job().add_options(p)
    return p.parse_args([f"--{k.replace('_', '-')}={v}" for k, v in kw.items()])


def test_job_random_model():
    job = bert_job()
    args = _args(model="random", random_config="tiny", seed=5, seq_len=6, valid_len=4)
    run = run_local(lambda rt: job.program(rt, args), mode="dealt")
    res = run.results[1]
    assert res["matches_plaintext"] is True and res["valid_len"] == 4
    assert res["prediction"] == int(np.argmax(res["logits"])) and run.results[2] == {}
    assert any("secure == plaintext: yes" in line for line in job.summary(res))
    assert job.program_id(args) != job.program_id(_args(model="random", seq_len=6))
