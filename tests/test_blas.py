"""numpy's OpenBLAS thread count can be set in-process (the helper runs single-threaded)."""

import ctypes
import glob
import os

import numpy as np

from net.blas import set_blas_threads


def _threads() -> int | None:
    libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in glob.glob(os.path.join(libs, "*openblas*")):
        fn = getattr(ctypes.CDLL(path), "scipy_openblas_get_num_threads64_", None)
        if fn is not None:
            fn.restype = ctypes.c_int
            return fn()
    return None


def test_set_blas_threads_takes_effect():
    before = _threads()
    if before is None:  # another BLAS: nothing to set, and set_blas_threads says so
        assert set_blas_threads(1) in (True, False)
        return
    try:
        assert set_blas_threads(1) and _threads() == 1
        a = np.arange(64.0).reshape(8, 8)
        assert (a @ np.eye(8) == a).all()
    finally:
        set_blas_threads(before)
    assert _threads() == before
