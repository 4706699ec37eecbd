"""Soak, short form of ``benchmarks/soak.py``: sequential secure inferences of a small model
in one set of three TCP processes (P0 live), with every party's RSS flat after a warm-up
and the same logits every time; and the growth check catches a planted leak."""

from benchmarks.soak import soak

QUERIES, WARMUP = 40, 10
MAX_SLOPE = 32e3  # bytes per query (least squares after the warm-up); ~4 KB measured
MAX_SPREAD = 2e6  # max - min RSS after the warm-up; ~0.1 MB measured


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
    res = soak(20, config="tiny1", warmup=5, timeout=120, leak_kb=256)
    assert res["result"]["identical"] is True
    for rank in (0, 1, 2):
        g = res["growth"][rank]
        assert g["slope_per_query"] > MAX_SLOPE and g["spread"] > MAX_SPREAD, (rank, g)
