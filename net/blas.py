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

_SETTERS = (
    "scipy_openblas_set_num_threads64_",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)


def set_blas_threads(n: int) -> bool:
    """Set numpy's OpenBLAS to ``n`` threads now; True if a library took it."""
    import numpy as np

    libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in glob.glob(os.path.join(libs, "*openblas*")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _SETTERS:
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.argtypes, fn.restype = (ctypes.c_int,), None
                fn(int(n))
                return True
    return False
