"""BLAS threads of this process (numpy's bundled OpenBLAS; elsewhere a no-op).

The helper alone (``qbert-mpc deal``, and the 2-party ``run`` that deals in the parent)
runs its limb GEMMs between long stretches of other work; OpenBLAS's idle threads spin
meanwhile and take the core its writer thread needs. Measured (`qbert-mpc deal` of
BERT-base, 3.63 GB, 2 cores): 19.6 s user CPU with the default 2 threads, 14.0 s with one;
dealing 13.5 s before, 12.9-13.5 s after (noise of this shared machine). The party
processes get ``OPENBLAS_NUM_THREADS=1`` from the launcher instead.
"""

from __future__ import annotations

import ctypes
import glob
import os
from contextlib import contextmanager
from functools import lru_cache

_NAMES = (  # (set, get) in numpy's scipy-openblas builds, then in plain OpenBLAS
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
    ("openblas_set_num_threads", "openblas_get_num_threads"),
)


@lru_cache(maxsize=1)
def _functions():
    """(set, get) of the OpenBLAS numpy loaded, or None."""
    import numpy as np

    libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in glob.glob(os.path.join(libs, "*openblas*")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in _NAMES:
            setter, getter = getattr(lib, set_name, None), getattr(lib, get_name, None)
            if setter is not None and getter is not None:
                setter.argtypes, setter.restype = (ctypes.c_int,), None
                getter.argtypes, getter.restype = (), ctypes.c_int
                return setter, getter
    return None


def blas_threads() -> int | None:
    """numpy's OpenBLAS thread count, or None if it cannot be read."""
    fns = _functions()
    return None if fns is None else int(fns[1]())


@contextmanager
def limit_blas_threads(n: int):
    """numpy's OpenBLAS runs ``n`` threads inside the block, as before it afterwards."""
    fns, before = _functions(), blas_threads()
    if fns is None or before is None:
        yield
        return
    fns[0](int(n))
    try:
        yield
    finally:
        fns[0](before)
