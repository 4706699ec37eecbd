"""benchmarks.vs_crypten: network shaping and projection (always), and a --quick smoke run
of the smallest workloads against CrypTen (skipped when crypten is not installed)."""

import json
import time

import pytest

from net import shaping
from net.framing import KIND_ONLINE, Header
from net.tcp import _pair


def _frame(sender: int, n: int, session: int) -> bytes:
    return Header(KIND_ONLINE, sender, 1 - sender, session, 0, 0, 0, n).pack() + bytes(n)


def test_shaping_parse():
    assert shaping.parse("") is None
    assert shaping.parse("1e8,0.04") == (1e8, 0.04)
    with pytest.raises(ValueError, match="QBERT_NET_SHAPE"):
        shaping.parse("fast")
    with pytest.raises(ValueError, match="bandwidth"):
        shaping.parse("0,0.01")


def test_shaping_adds_latency_and_serialisation(monkeypatch):
    bw, rtt, n = 8e6, 0.1, 100_000  # 1 MB/s: 0.1 s to serialise n bytes, + 0.05 s one way
    monkeypatch.setenv(shaping.ENV, f"{bw},{rtt}")
    a, b = _pair(7, 10.0)
    try:
        f = _frame(0, n, 7)
        t0 = time.perf_counter()
        a.send(1, f)
        a.send(1, f)  # queued behind the first on the emulated link
        assert b.recv(0, timeout=10) == f
        t1 = time.perf_counter() - t0
        assert b.recv(0, timeout=10) == f
        t2 = time.perf_counter() - t0
        assert a.bytes_sent[1] == b.bytes_received[0]  # counting is unchanged
    finally:
        a.close()
        b.close()
    one = len(f) * 8 / bw
    assert one + rtt / 2 - 0.01 <= t1 < one + rtt / 2 + 0.5
    assert 2 * one + rtt / 2 - 0.01 <= t2 < 2 * one + rtt / 2 + 0.5


def test_unshaped_by_default(monkeypatch):
    monkeypatch.delenv(shaping.ENV, raising=False)
    conn = object()
    assert shaping.maybe_wrap(conn) is conn


def test_projection_formula():
    from benchmarks.vs_crypten import NETWORKS, project

    row = {"seconds": 1.0, "rounds": 10, "bytes": 12.5e6}
    bw, rtt = NETWORKS["wan"]
    assert project(row, "wan") == pytest.approx(1.0 + 10 * rtt + 12.5e6 * 8 / bw)


QUICK = ["matmul_sp", "softmax", "bert_layer", "bert_base"]


@pytest.mark.timeout(900)
def test_quick_smoke(tmp_path):
    pytest.importorskip("matplotlib")
    from benchmarks import crypten_side

    if crypten_side.available() is None:
        pytest.skip("crypten is not installed (pip install '.[crypten]', see Makefile)")
    from benchmarks.vs_crypten import main

    assert main(["--quick", "--only", *QUICK, "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "vs_crypten.json").read_text())
    assert [r["workload"] for r in doc["rows"]] == QUICK
    for name in QUICK:
        res = doc["results"][name]
        for system in ("ours", "crypten"):
            assert res[system]["seconds"] > 0, (name, system)
            assert res[system]["bytes"] > 0, (name, system)
            assert res[system]["rounds"] > 0, (name, system)
    assert doc["results"]["bert_layer"]["ours"]["max_err"] == 0  # secure == integer reference
    for name in ("bert_layer", "bert_base"):  # the 3-process query with the helper live
        assert doc["results"][name]["ours"]["live_seconds"] > 0, name
    assert doc["machine"]["versions"]["crypten"] == "0.4.1"
    assert {r["network"] for r in doc["network_rows"]} >= {"lan", "wan"}
    assert (tmp_path / "RESULTS.md").read_text().startswith("## Results")
    assert (tmp_path / "vs_crypten_time.png").stat().st_size > 0
