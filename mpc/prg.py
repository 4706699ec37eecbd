"""AES-128-CTR pseudo-random generator (``cryptography``), keyed by pairwise seeds.

Two parties holding the same seed and the same ``label`` draw identical streams, which is
how the helper P0 hands out every correlation share that does not need a correction.
Elements of Z_2^k are drawn from the narrowest unsigned word that holds k bits, so a
table of 8-bit masks costs one keystream byte per element.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

SEED_BYTES = 16


def fresh_seed() -> bytes:
    return os.urandom(SEED_BYTES)


def derive_seed(seed: bytes, label: str) -> bytes:
    """Independent sub-seed for a named purpose (domain separation)."""
    return hashlib.blake2b(label.encode(), key=seed, digest_size=SEED_BYTES).digest()


def _word_dtype(k: int):
    for bits, dt in ((8, np.uint8), (16, np.uint16), (32, np.uint32)):
        if k <= bits:
            return dt
    return np.uint64


class PRG:
    """Deterministic stream of random words from a 16-byte seed."""

    def __init__(self, seed: bytes, label: str = ""):
        if len(seed) != SEED_BYTES:
            raise ValueError(f"PRG seed must be {SEED_BYTES} bytes")
        key = derive_seed(seed, label) if label else seed
        self._enc = Cipher(algorithms.AES(key), modes.CTR(b"\0" * 16)).encryptor()
        self.drawn = 0  # bytes drawn so far

    def __repr__(self) -> str:  # never show the key
        return f"PRG(drawn={self.drawn})"

    def bytes(self, n: int) -> bytes:
        self.drawn += n
        return self._enc.update(bytes(n))

    def words(self, dtype, shape) -> np.ndarray:
        n = int(np.prod(shape, dtype=np.int64))
        dt = np.dtype(dtype)
        return np.frombuffer(self.bytes(n * dt.itemsize), dtype=dt).reshape(shape)

    def uint64(self, shape) -> np.ndarray:
        return self.words(np.uint64, shape).copy()

    def ring(self, r, shape) -> np.ndarray:
        """Uniform elements of ``r`` (a ``Ring``), as uint64."""
        w = self.words(_word_dtype(r.k), shape).astype(np.uint64)
        if r.k < 64:
            w &= r.mask
        return w

    def bits(self, shape) -> np.ndarray:
        return self.ring(_BOOL, shape)

    def field(self, f, shape) -> np.ndarray:
        """Uniform elements of F_p (statistical distance <= p / 2^64 from uniform)."""
        return self.words(np.uint64, shape) % np.uint64(f.p)

    def below(self, n: int, shape) -> np.ndarray:
        """Uniform integers in [0, n) (statistical distance <= n / 2^64)."""
        return self.words(np.uint64, shape) % np.uint64(n)


class _Bool:
    k = 1
    mask = np.uint64(1)


_BOOL = _Bool()
