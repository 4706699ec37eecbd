"""Correlation sources: where P1 and P2 get the helper's material, and where P0 puts it.

The helper P0 shares an AES-CTR seed with each computing party, so for every correlation
it transmits only the one *correction* share that cannot come from a seed. Two ways to
move those corrections, behind one interface:

* live (3-party run): P0 runs alongside and streams corrections over its links
  (``LiveSink`` / ``LiveSource`` in ``net.runtime``);
* dealt (2-party run): P0 runs beforehand (``qbert-mpc deal``) and writes one file per
  party and run: a header naming the program, the seed, then the correction stream
  (``DealtSink`` / ``DealtSource`` here). Only P1 and P2 run online.

Protocol code sees neither: it calls ``Runtime.deal`` / ``Runtime.take``.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import BinaryIO

from mpc.prg import SEED_BYTES, fresh_seed

DEALT_MAGIC = b"QBDEALT1"


class MaterialError(Exception):
    """Dealt material is missing, corrupt, exhausted, or for another program."""


class CorrelationSource:
    """Where P1/P2 read correction bytes, in the order P0 produced them."""

    seed: bytes  # the seed shared with P0

    def take(self, nbytes: int) -> bytes:
        raise NotImplementedError

    def finish(self) -> None:
        """Called at the end of a run: all material must have been consumed."""


class CorrelationSink:
    """Where P0 writes correction bytes for party 1 or 2."""

    def seed_for(self, party: int) -> bytes:
        raise NotImplementedError

    def put(self, party: int, payload: bytes) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        pass


def _header(program: str, party: int, run: int) -> bytes:
    meta = json.dumps({"program": program, "party": party, "run": run}).encode()
    return DEALT_MAGIC + struct.pack("<I", len(meta)) + meta


class DealtSink(CorrelationSink):
    """Writes each party's material to its own binary stream (a file or BytesIO)."""

    def __init__(self, streams: dict[int, BinaryIO], program: str, run: int = 0):
        self.streams = streams
        self._seeds = {p: fresh_seed() for p in streams}
        for p, f in streams.items():
            f.write(_header(program, p, run))
            f.write(self._seeds[p])

    def seed_for(self, party: int) -> bytes:
        return self._seeds[party]

    def put(self, party: int, payload: bytes) -> None:
        self.streams[party].write(payload)

    def finish(self) -> None:
        for f in self.streams.values():
            f.flush()


class DealtSource(CorrelationSource):
    """Reads one party's dealt material; refuses material of another program or party."""

    def __init__(self, stream: BinaryIO, program: str, party: int, name: str = "material"):
        self.stream, self.name = stream, name
        magic = stream.read(len(DEALT_MAGIC))
        if magic != DEALT_MAGIC:
            raise MaterialError(f"{name}: not qbert-mpc dealt material")
        (n,) = struct.unpack("<I", stream.read(4))
        try:
            meta = json.loads(stream.read(n))
        except ValueError:
            raise MaterialError(f"{name}: corrupt header") from None
        if meta.get("program") != program:
            raise MaterialError(
                f"{name}: dealt for program {meta.get('program')!r}, not {program!r}"
            )
        if meta.get("party") != party:
            raise MaterialError(f"{name}: dealt for P{meta.get('party')}, not P{party}")
        self.run = meta.get("run")
        self.seed = stream.read(SEED_BYTES)
        if len(self.seed) != SEED_BYTES:
            raise MaterialError(f"{name}: truncated")

    def take(self, nbytes: int) -> bytes:
        data = self.stream.read(nbytes)
        if len(data) != nbytes:
            raise MaterialError(f"{self.name}: exhausted (program asked for more material)")
        return data

    def finish(self) -> None:
        if self.stream.read(1):
            raise MaterialError(f"{self.name}: material left over (dealt for another program?)")


def dealt_paths(directory: Path | str, run: int) -> dict[int, Path]:
    d = Path(directory) / f"run{run:05d}"
    return {1: d / "P1.bin", 2: d / "P2.bin"}
