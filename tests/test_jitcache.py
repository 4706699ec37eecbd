"""Numba's on-disk cache under processes that compile at once (mpc.jitcache)."""

import subprocess
import sys
import textwrap

import pytest

DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "float64"]

KERNELS = textwrap.dedent(
    """
    import numpy as np
    from numba import njit

    @njit(cache=True)
    def total(a):
        s = a[0] * 0
        for x in a:
            s += x * 3
        return s
    """
)

WORKER = textwrap.dedent(
    """
    import sys
    import numpy as np
    if sys.argv[2] == "locked":
        import mpc  # installs the lock
    sys.path.insert(0, sys.argv[1])
    import kernels
    for name in sys.argv[3:]:
        assert kernels.total(np.arange(1, 10, dtype=name)) == 135, name
    """
)


def _workers(tmp_path, how: str, n: int = 6) -> list[int]:
    procs = []
    for w in range(n):
        order = DTYPES[w % len(DTYPES) :] + DTYPES[: w % len(DTYPES)]
        cmd = [sys.executable, "-c", WORKER, str(tmp_path), how, *order]
        procs.append(subprocess.Popen(cmd, stderr=subprocess.PIPE))
    for p in procs:
        p.communicate(timeout=120)  # drains stderr: a long traceback cannot block a child
    return [p.returncode for p in procs]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("trial", range(3))
def test_processes_compiling_at_once_leave_a_consistent_cache(tmp_path, trial):
    """Without the lock about one cold start in four leaves signatures pointing at another
    signature's code (every worker, then every later process, fails)."""
    (tmp_path / "kernels.py").write_text(KERNELS)
    assert _workers(tmp_path, "locked") == [0] * 6  # all compile on a cold cache at once
    # every signature now loads from the cache; each must be its own machine code
    assert _workers(tmp_path, "locked", 2) == [0, 0]


PRELOADER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    import kernels
    from mpc.jitcache import preload
    n = preload(prefixes=("kernels",))
    print(n, len(kernels.total.signatures))
    """
)


def test_preload_loads_every_cached_signature_without_a_call(tmp_path):
    """mpc.jitcache.preload: a new process holds the cached kernels before their first call
    (the party does this before connecting, outside the timed program)."""
    (tmp_path / "kernels.py").write_text(KERNELS)
    assert _workers(tmp_path, "locked", 2) == [0, 0]  # caches all DTYPES
    cmd = [sys.executable, "-c", PRELOADER, str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(len(DTYPES))] * 2
