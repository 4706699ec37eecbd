"""Numba's on-disk cache made safe for processes that compile at the same time.

``@njit(cache=True)`` keeps, per function, an index (signature -> data file) and data files
numbered 1, 2, ... in the order one process saved them. Numba's ``save`` reads the index,
picks the first unused number, writes the index, then the data, with no lock: the parties
P0, P1 and P2 start together and, on a cold cache (a fresh clone, or vs_crypten's source
snapshot), compile the same kernels for different argument types at once. Two of them can
pick the same number; the index then maps one signature to the other's machine code and
every later process fails with "can't unbox array from PyObject into native value" (seen
in CI). ``lock_cache_saves`` wraps ``save`` in an exclusive ``flock`` on a lock file next
to the index, so numbering and writing are atomic across processes (loads need no lock:
data files are replaced atomically and a missing one is a cache miss).
"""

from __future__ import annotations

_done = False


def lock_cache_saves() -> bool:
    """Install the lock (idempotent). False where ``fcntl`` or the numba internals it
    wraps are missing: caching then works as numba ships it."""
    global _done
    if _done:
        return True
    try:
        import fcntl

        from numba.core.caching import IndexDataCacheFile
    except ImportError:  # pragma: no cover - non-POSIX hosts or another numba layout
        return False
    save = getattr(IndexDataCacheFile, "save", None)
    if save is None:  # pragma: no cover
        return False

    def locked_save(self, key, data):
        try:
            lock = open(self._index_path + ".lock", "a")
        except (AttributeError, OSError):  # pragma: no cover - odd cache dir: numba decides
            return save(self, key, data)
        with lock:  # the flock is released when the file closes
            fcntl.flock(lock, fcntl.LOCK_EX)
            return save(self, key, data)

    IndexDataCacheFile.save = locked_save
    _done = True
    return True


def preload(prefixes=("mpc.", "protocols.", "net.", "models.")) -> int:
    """Load into this process every kernel signature the on-disk cache holds for the
    ``@njit(cache=True)`` functions of the imported modules under ``prefixes``, so that the
    first call of each does not pay numba's cache load (~0.3 s per process for a BERT
    run, otherwise spent inside the first layer). Returns the number of signatures loaded;
    entries stale for this source or machine are skipped, never compiled."""
    import sys

    from numba.core.registry import CPUDispatcher

    n = 0
    for name, mod in list(sys.modules.items()):
        if mod is None or not name.startswith(prefixes):
            continue
        for fn in list(vars(mod).values()):
            cache = getattr(fn, "_cache", None) if isinstance(fn, CPUDispatcher) else None
            try:
                index = cache._cache_file._load_index() if cache is not None else {}
                codegen = fn.targetctx.codegen()
                for key in index:
                    sig = key[0]
                    if key == cache._index_key(sig, codegen) and sig not in fn.overloads:
                        fn.compile(sig)
                        n += 1
            except Exception:  # noqa: BLE001 - an optimisation only: the first call loads
                continue
    return n
