"""numpy's OpenBLAS thread count can be limited for a block (the helper deals single-threaded)."""

import numpy as np

from net.blas import blas_threads, limit_blas_threads


def test_limit_blas_threads_takes_effect_and_restores():
    before = blas_threads()
    with limit_blas_threads(1):
        assert blas_threads() == (None if before is None else 1)
        a = np.arange(64.0).reshape(8, 8)
        assert (a @ np.eye(8) == a).all()
    assert blas_threads() == before
