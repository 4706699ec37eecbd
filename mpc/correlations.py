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

Dealt material is single-use: running twice on the same masks and triples would let the
peer subtract two transcripts. ``DealtSource.open`` binds a file to its program and party;
``claim()`` then atomically renames ``P1.bin`` to ``P1.bin.used`` before the seed or any
correction may be read, so a second run (or a concurrent one) on that file is refused
with MaterialError. ``qbert-mpc deal`` writes fresh ``P1.bin`` files next to old ``.used``
ones.
"""

from __future__ import annotations

import contextlib
import io
import json
import mmap
import os
import queue
import struct
import threading
from pathlib import Path
from typing import BinaryIO

from mpc.prg import SEED_BYTES, fresh_seed

DEALT_MAGIC = b"QBDEALT1"
USED_SUFFIX = ".used"


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
    """Writes each party's material to its own binary stream (a file or BytesIO).

    A writer thread does the writes (they release the GIL), so the helper computes the
    next correlations meanwhile; at most ``MAX_PENDING`` bytes wait for it. A write error
    is raised by the next ``put`` or by ``finish``, which waits for every write."""

    MAX_PENDING = 64 << 20

    def __init__(self, streams: dict[int, BinaryIO], program: str, run: int = 0):
        self.streams = streams
        self._seeds = {p: fresh_seed() for p in streams}
        for p, f in streams.items():
            f.write(_header(program, p, run))
            f.write(self._seeds[p])
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._room = threading.Condition()
        self._pending = 0
        self._error: BaseException | None = None
        self._writer = threading.Thread(target=self._write_loop, name="dealt-writer", daemon=True)
        self._writer.start()

    def seed_for(self, party: int) -> bytes:
        return self._seeds[party]

    def _write_loop(self) -> None:
        while (item := self._queue.get()) is not None:
            party, payload = item
            try:
                if self._error is None:
                    self.streams[party].write(payload)
            except BaseException as e:  # noqa: BLE001 - raised in the helper's thread
                self._error = e
            with self._room:
                self._pending -= len(payload)
                self._room.notify_all()

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, party: int, payload: bytes) -> None:
        self._check()
        with self._room:
            while self._pending > self.MAX_PENDING and self._error is None:
                self._room.wait()
            self._pending += len(payload)
        self._queue.put((party, payload))

    def finish(self) -> None:
        if self._writer.is_alive():
            self._queue.put(None)
            self._writer.join()
        self._check()
        for f in self.streams.values():
            f.flush()


class DealtSource(CorrelationSource):
    """Reads one party's dealt material; refuses material of another program or party.

    Built on a stream (e.g. BytesIO) it is usable at once; opened from a file with
    ``DealtSource.open`` it must be ``claim()``-ed before the seed or material is read.
    """

    def __init__(self, stream: BinaryIO, program: str, party: int, name: str = "material"):
        self.stream, self.name = stream, name
        self.path: Path | None = None
        self.claimed = True
        self._view: memoryview | None = None
        self._map: mmap.mmap | None = None
        self._pos, self._unmappable = 0, False
        magic = stream.read(len(DEALT_MAGIC))
        if magic != DEALT_MAGIC:
            raise MaterialError(f"{name}: not qbert-mpc dealt material")
        raw = stream.read(4)
        if len(raw) != 4:
            raise MaterialError(f"{name}: truncated")
        (n,) = struct.unpack("<I", raw)
        try:
            meta = json.loads(stream.read(n))
            if not isinstance(meta, dict):
                raise ValueError
        except ValueError:
            raise MaterialError(f"{name}: corrupt header") from None
        if meta.get("program") != program:
            raise MaterialError(
                f"{name}: dealt for program {meta.get('program')!r}, not {program!r}"
            )
        if meta.get("party") != party:
            raise MaterialError(f"{name}: dealt for P{meta.get('party')}, not P{party}")
        self.run = meta.get("run")
        self._seed = stream.read(SEED_BYTES)
        if len(self._seed) != SEED_BYTES:
            raise MaterialError(f"{name}: truncated")

    @classmethod
    def open(cls, path, program: str, party: int, claim: bool = True) -> DealtSource:
        """Open a dealt file, check its header, and (with ``claim``) mark it used."""
        path = Path(path)
        check_unused(path)
        try:
            stream = open(path, "rb")  # noqa: SIM115 - owned by the source, see close()
        except FileNotFoundError:
            check_unused(path)  # claimed by someone else since the check above
            raise MaterialError(
                f"no dealt material at {path}: run 'qbert-mpc deal' first"
            ) from None
        except OSError as e:
            raise MaterialError(f"{path}: cannot read dealt material ({e.strerror})") from None
        try:
            src = cls(stream, program, party, name=str(path))
            src.path, src.claimed = path, False
            if claim:
                src.claim()
        except BaseException:
            stream.close()
            raise
        return src

    def claim(self) -> None:
        """Mark the file used (atomic rename); MaterialError if another run got it first."""
        if self.claimed:
            return
        used = used_path(self.path)
        try:
            os.rename(self.path, used)
        except FileNotFoundError:
            check_unused(self.path)
            raise MaterialError(f"{self.name}: disappeared before it could be claimed") from None
        self.claimed = True
        self.name = str(used)

    @property
    def seed(self) -> bytes:
        self._check_claimed()
        return self._seed

    def _check_claimed(self) -> None:
        if not self.claimed:
            raise MaterialError(f"{self.name}: dealt material must be claimed before use")

    def _material(self) -> memoryview | None:
        """The whole stream as a read-only view (a mapped file or a BytesIO's buffer), so
        ``take`` hands out slices instead of copies; None if it cannot be mapped."""
        if self._view is None and not self._unmappable:
            self._check_claimed()
            self._pos = self.stream.tell()
            try:
                if isinstance(self.stream, io.BytesIO):
                    self._view = self.stream.getbuffer().toreadonly()
                else:
                    self._map = mmap.mmap(self.stream.fileno(), 0, access=mmap.ACCESS_READ)
                    self._view = memoryview(self._map)
            except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
                self._unmappable = True  # e.g. a pipe or an empty file: read() instead
        return self._view

    def take(self, nbytes: int):
        """The next ``nbytes`` of material: a read-only view of it, or bytes."""
        self._check_claimed()
        view = self._material()
        if view is None:
            data = self.stream.read(nbytes)
        else:
            data = view[self._pos : self._pos + nbytes]
            self._pos += len(data)
        if len(data) != nbytes:
            raise MaterialError(f"{self.name}: exhausted (program asked for more material)")
        return data

    def finish(self) -> None:
        view = self._material() if self.claimed else None
        left = self._pos < len(view) if view is not None else self.stream.read(1)
        if left:
            raise MaterialError(f"{self.name}: material left over (dealt for another program?)")

    def close(self) -> None:
        """Close the stream; a mapping still viewed by live arrays is unmapped when the
        last of them goes."""
        if self._view is not None:
            self._view.release()
            self._view = None
        if self._map is not None:
            with contextlib.suppress(BufferError):
                self._map.close()
            self._map = None
        with contextlib.suppress(BufferError):
            self.stream.close()


def used_path(path) -> Path:
    """Where a claimed dealt file lives after its run started."""
    path = Path(path)
    return path.with_name(path.name + USED_SUFFIX)


def check_unused(path) -> None:
    """MaterialError if ``path`` is missing: already used (``.used`` exists) or never dealt."""
    path = Path(path)
    if path.exists():
        return
    if used_path(path).exists():
        raise MaterialError(
            f"{path}: dealt material was already used by an earlier run (now "
            f"{used_path(path).name}); material is single-use: run 'qbert-mpc deal' again "
            "or pick another --run"
        )
    raise MaterialError(f"no dealt material at {path}: run 'qbert-mpc deal' first")


def dealt_paths(directory: Path | str, run: int) -> dict[int, Path]:
    d = Path(directory) / f"run{run:05d}"
    return {1: d / "P1.bin", 2: d / "P2.bin"}
