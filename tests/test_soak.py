"""Soak, short form of ``benchmarks/soak.py``: sequential secure inferences of a small model
in one set of three TCP processes (P0 live), with every party's RSS flat after a warm-up
and the same logits every time; the growth check catches a planted leak; a party killed
in the middle of the queries stops the others with an error naming it."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.soak import model, soak
from net.hosts import local_hosts

QUERIES, WARMUP = 40, 10
MAX_SLOPE = 32e3  # bytes per query (least squares after the warm-up); ~4 KB measured
MAX_SPREAD = 2e6  # max - min RSS after the warm-up; ~0.1 MB measured


@pytest.fixture(scope="module", autouse=True)
def compiled():
    """One in-memory query first: Numba compiles (and caches) its kernels here, not inside
    the timed-out party processes (a cold cache on a loaded machine takes a minute)."""
    from models.ops_secure import prepare, secure_logits, share_inputs
    from models.qrandom import random_input
    from net.local import run_local

    params = model("tiny1", 0)
    cfg = params.config
    x, mask = random_input(cfg, 8, seed=1)

    def prog(rt):
        prep = prepare(rt, params if rt.rank == 2 else None, cfg)
        mine = (x, mask) if rt.rank == 1 else (None, None)
        return secure_logits(rt, prep, cfg, *share_inputs(rt, cfg, *mine, seq_len=8))

    run_local(prog, timeout=600)


def test_soak_memory_flat_and_results_identical():
    res = soak(QUERIES, config="tiny1", warmup=WARMUP, timeout=120)
    r = res["result"]
    assert r["iterations"] == QUERIES and res["query_calls"] == QUERIES
    assert r["identical"] is True and r["matches_plaintext"] is True
    for rank in (0, 1, 2):
        s = res["series"][rank]
        assert len(s["rss"]) == QUERIES + 1 and min(s["rss"]) > 0
        if rank:  # the window keeps P0's lead, and so the queued material, small
            assert max(s["queued"]) <= 4, s["queued"]
        g = res["growth"][rank]
        assert g["slope_per_query"] < MAX_SLOPE and g["spread"] < MAX_SPREAD, (rank, g)


def test_soak_growth_check_catches_a_leak():
    # 1 MB per query: freed heap memory (kept mapped, ``net.alloc``) absorbs a few MB of
    # a smaller leak before the RSS moves (P0: ~3 MB, so 256 KB showed from query 13 on)
    res = soak(20, config="tiny1", warmup=5, timeout=120, leak_kb=1024)
    assert res["result"]["identical"] is True
    for rank in (0, 1, 2):
        g = res["growth"][rank]
        assert g["slope_per_query"] > MAX_SLOPE and g["spread"] > MAX_SPREAD, (rank, g)


def test_party_killed_mid_inference_stops_the_others_naming_it(tmp_path):
    """P2 SIGKILLed after 3 secure BERT queries of a long soak: P0 and P1 exit 2 with a
    one-line error naming P2 within the configured peer timeout; no process remains."""
    timeout = 60.0  # also bounds start-up on a loaded machine
    hosts = local_hosts(timeout=timeout)
    cfg = tmp_path / "hosts.toml"
    cfg.write_text(hosts.to_toml())
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": root, "OPENBLAS_NUM_THREADS": "1"}
    job = ["--job", "soak", "--soak-config", "tiny1", "--soak-iterations", "100000"]
    procs = {
        r: subprocess.Popen(
            [sys.executable, "-m", "benchmarks.soak", "party", "--config", str(cfg)]
            + ["--role", f"P{r}", "--json", *job, "--rss-dir", str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        for r in range(3)
    }
    progress = tmp_path / "progress_P1"
    try:
        deadline = time.monotonic() + 120
        while not (progress.exists() and int(progress.read_text() or 0) >= 3):
            assert time.monotonic() < deadline, "no query finished"
            early = {r: p for r, p in procs.items() if p.poll() is not None}
            assert not early, {r: p.communicate()[1][-300:] for r, p in early.items()}
            time.sleep(0.05)
        os.kill(procs[2].pid, signal.SIGKILL)
        t_kill = time.monotonic()
        for r in (0, 1):
            _, err = procs[r].communicate(timeout=60)
            elapsed = time.monotonic() - t_kill
            line = err.strip().splitlines()[-1]
            assert procs[r].returncode == 2 and len(err.strip().splitlines()) == 1, err
            assert re.match(r"qbert-mpc party: error: Peer\w+: P2: ", line), line
            assert elapsed < timeout, elapsed
        assert procs[2].wait(10) == -signal.SIGKILL
    finally:
        for p in procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            p.stdout.close(), p.stderr.close()
    for p in procs.values():  # reaped, and nothing left in their process groups
        with pytest.raises(ProcessLookupError):
            os.killpg(p.pid, 0)
