"""Process-wide allocator setting for the party processes (glibc only; elsewhere a no-op).

The protocols allocate and free many large numpy temporaries (material, packed frames,
limb buffers). glibc serves blocks above its mmap threshold with fresh ``mmap``s and
unmaps them on free, so every such block is page-faulted and zeroed by the kernel again:
on the 2-core VM of BASELINES.md that costs ~1.2 s per GB touched (dd to tmpfs: 0.86 GB/s)
``keep_freed_memory`` makes glibc serve large blocks from the heap and never trim it, so
freed pages are reused without faults. Measured (`qbert-mpc deal` of BERT-base, 5.29 GB,
into /dev/shm): page faults 764 k -> 249 k, system time 20.0 -> 15.3 s, deal 24.9 ->
22.8 s; one BERT-base layer dealt in memory: faults 129 k -> 64 k, peak RSS unchanged.

``prefault_heap`` then grows the heap to a job's working set before the party connects,
so the first layer does not pay those faults either (they are input-independent):
BERT-base 2-party, 1.5 GB per party: layer 0 1.0 -> 0.58 s, P1's faults in the inference
31 k -> 1.4 k, weight preparation 2.5 -> 0.9 s.

The CLI keeps freed memory in every process; only 2-party parties pre-fault (live 3-party
parties would fault three heaps at once on two cores: ``net.party.warm_heap``).
``QBERT_MPC_MALLOC=default`` in the environment leaves the allocator alone everywhere.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
_done = False
_libc = None


def keep_freed_memory() -> bool:
    """Large allocations from the heap (no mmap), heap never trimmed. True if applied."""
    global _done, _libc
    if _done:
        return True
    if os.environ.get("QBERT_MPC_MALLOC") == "default":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc is not None else None
    except (OSError, AttributeError):
        return False
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _done = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    if _done:
        _libc = libc
        libc.malloc.argtypes, libc.malloc.restype = (ctypes.c_size_t,), ctypes.c_void_p
        libc.free.argtypes, libc.free.restype = (ctypes.c_void_p,), None
    return _done


def prefault_heap(nbytes: int) -> bool:
    """Touch ``nbytes`` of heap once and free them: with ``keep_freed_memory`` applied the
    pages stay mapped, and later numpy blocks reuse them without page faults. A no-op
    (False) without it, or if the block cannot be had."""
    nbytes = int(nbytes)
    if not _done or _libc is None or nbytes <= 0:
        return False
    p = _libc.malloc(nbytes)
    if not p:
        return False
    try:
        ctypes.memset(p, 0, nbytes)
    finally:
        _libc.free(p)
    return True
