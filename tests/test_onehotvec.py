"""XOR-shared one-hot vectors: the prefix-parity / bit kernel behind the carry digits."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.onehotvec import step_bits


@given(w=st.integers(1, 12), n=st.integers(1, 20), seed=st.integers(0, 2**32))
@settings(max_examples=40, deadline=None)
def test_step_bits_of_shared_onehot(w, n, seed):
    """Shares of [x >= p] and [x == p] for one-hots at p split into random XOR shares."""
    rng = np.random.default_rng(seed)
    W = -(-(1 << w) // 64)
    p = rng.integers(0, 1 << w, n)
    x = rng.integers(0, 1 << w, n).astype(np.uint64)
    x[: n // 2] = p[: n // 2]  # the propagate position itself
    e = np.zeros((n, 1, W), dtype=np.uint64)
    e[np.arange(n), 0, p >> 6] = np.uint64(1) << (p & 63).astype(np.uint64)
    s1 = rng.integers(0, 2**63, (n, 1, W)).astype(np.uint64) * np.uint64(3)
    out1, out2 = np.zeros((n, 3), np.uint8), np.zeros((n, 3), np.uint8)
    step_bits(s1, x, out1, 1)
    step_bits(s1 ^ e, x, out2, 1)
    got = out1 ^ out2
    assert (got[:, 0] == 0).all()
    assert (got[:, 1] == (x.astype(np.int64) >= p)).all()
    assert (got[:, 2] == (x.astype(np.int64) == p)).all()
