"""Rings, shares, PRG, packing and exact ring matmul (see the modules)."""

from mpc.jitcache import lock_cache_saves

lock_cache_saves()  # before any @njit(cache=True) kernel of the package compiles
