"""The party runtime: one object per party that protocol code talks to.

* Online messages between P1 and P2 (``send`` / ``recv`` / ``exchange``): every message
  is one frame holding one or more bit-packed arrays; all arrays a step sends go in one
  frame.
* Correlations from the helper P0 (``deal`` on P0, ``take`` on P1/P2), and seeded
  randomness (``prg``), through a live or dealt source (``mpc.correlations``).
* Accounting per named scope (``with rt.scope("layer3"):``): payload and wire bytes,
  messages, rounds, wall time; ``report()`` returns it all as a JSON-able dict.

Rounds are counted with a Lamport clock: each online frame carries the sender's clock,
and a receiver sets ``clock = max(clock, sender_clock + 1)``. The clock is the length of
the longest chain of sequential messages, i.e. the number of network latencies the
computation pays; simultaneous sends in both directions count once. Offline frames do
not move the clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np

from mpc.correlations import CorrelationSink, CorrelationSource
from mpc.packing import pack, packed, rows_size, unpack, unpack_rows
from mpc.prg import PRG, SEED_BYTES, draw_dtype, fresh_seed, from_words
from mpc.ring import Domain, Ring
from mpc.shares import Shared
from net.accounting import Accounting
from net.errors import FrameError, MPCError, SpecMismatch
from net.framing import (
    DEFAULT_MAX_FRAME,
    HEADER_SIZE,
    KIND_CONTROL,
    KIND_OFFLINE,
    KIND_ONLINE,
    Header,
    check_frame,
    parse_header,
    spec_digest,
)
from net.transport import Transport

Spec = tuple[Domain, tuple[int, ...]]
DEALER, P1, P2 = 0, 1, 2


class Runtime:
    """One party's view of a session. ``rank`` 0 is the helper, 1 and 2 compute."""

    def __init__(
        self,
        rank: int,
        transport: Transport | None,
        *,
        session: int,
        source: CorrelationSource | None = None,
        sink: CorrelationSink | None = None,
        timeout: float = 60.0,
        max_frame: int = DEFAULT_MAX_FRAME,
    ):
        if rank not in (0, 1, 2):
            raise ValueError(f"rank must be 0, 1 or 2, got {rank}")
        self.rank = rank
        self.transport = transport
        self.session = session
        self.timeout = timeout
        self.max_frame = max_frame
        self.clock = 0
        self.acct = Accounting(lambda: self.clock)
        self._seq_out: dict[int, int] = {0: 0, 1: 0, 2: 0}
        self._seq_in: dict[int, int] = {0: 0, 1: 0, 2: 0}
        self._prgs: dict[int, PRG] = {}
        self._seeds: dict[int, bytes] = {}
        self.stash: dict = {}  # protocols' state across calls of this session (e.g. use counts)
        if rank == DEALER:
            self.sink = sink or LiveSink(self)
            self.source = None
        else:
            self.sink = None
            self.source = source or LiveSource(self)
        self._setup_done = False

    # -- identity --------------------------------------------------------------------------
    @property
    def is_dealer(self) -> bool:
        return self.rank == DEALER

    @property
    def peer(self) -> int:
        """The other computing party."""
        if self.rank == DEALER:
            raise MPCError("the helper has no computing peer")
        return 3 - self.rank

    def __repr__(self) -> str:
        return f"Runtime(P{self.rank}, session={self.session:#x})"

    # -- set-up: seeds ---------------------------------------------------------------------
    def setup(self) -> Runtime:
        """Agree on pairwise PRG seeds: P0-P1 and P0-P2 from the correlation source/sink,
        P1-P2 chosen by P1 and sent to P2 in a control frame."""
        if self._setup_done:
            return self
        if self.is_dealer:
            for p in (P1, P2):
                self._seeds[p] = self.sink.seed_for(p)
                self._prgs[p] = PRG(self._seeds[p], "corr")
        else:
            self._seeds[DEALER] = self.source.seed
            self._prgs[DEALER] = PRG(self._seeds[DEALER], "corr")
            if self.rank == P1:
                s12 = fresh_seed()
                self._send_frame(P2, KIND_CONTROL, s12, 0)
            else:
                _, s12 = self._recv_frame(P1, KIND_CONTROL)
                s12 = bytes(s12)
                if len(s12) != SEED_BYTES:
                    raise FrameError(P1, "bad seed frame")
            self._prgs[self.peer] = PRG(s12, "common")
        self._setup_done = True
        return self

    def prg(self, other: int) -> PRG:
        """The PRG this party shares with ``other`` (both draw the same stream)."""
        return self._prgs[other]

    # -- frames ----------------------------------------------------------------------------
    def _header(self, to: int, kind: int, spec: int, length: int) -> bytes:
        h = Header(kind, self.rank, to, self.session, self._seq_out[to], self.clock, spec, length)
        self._seq_out[to] += 1
        return h.pack()

    def _send_frame(self, to: int, kind: int, payload: bytes, spec: int) -> None:
        frame = self._header(to, kind, spec, len(payload)) + payload
        self.transport.send(to, frame)
        self.acct.add(wire_sent=len(frame))

    def _send_reserved(self, to: int, kind: int, frame: memoryview, spec: int = 0) -> None:
        """Send a frame built in place: the first HEADER_SIZE bytes of the writable
        ``frame`` are free and get the header, the payload is not copied."""
        frame[:HEADER_SIZE] = self._header(to, kind, spec, len(frame) - HEADER_SIZE)
        self.transport.send(to, frame)
        self.acct.add(wire_sent=len(frame))

    def _recv_frame(self, frm: int, kind: int, spec: int | None = None):
        frame = self.transport.recv(frm, self.timeout)
        h = parse_header(frame[:HEADER_SIZE], frm, self.max_frame)
        check_frame(
            h, peer=frm, me=self.rank, session=self.session, seq=self._seq_in[frm], kind=kind
        )
        if len(frame) - HEADER_SIZE != h.length:
            raise FrameError(
                frm,
                f"frame carries {len(frame) - HEADER_SIZE} payload bytes, header says {h.length}",
            )
        self._seq_in[frm] += 1
        if spec is not None and h.spec != spec:
            raise SpecMismatch(frm, "peer sent arrays of other rings or shapes than expected")
        self.acct.add(wire_recv=len(frame))
        return h, memoryview(frame)[HEADER_SIZE:]

    # -- online messages between P1 and P2 -------------------------------------------------
    def send(self, items: Sequence[tuple[Domain, np.ndarray]]) -> None:
        """Send arrays (each reduced to its domain) to the peer in one frame."""
        specs = [(d, a.shape) for d, a in items]
        payload = b"".join(pack(a, d.bits) for d, a in items)
        self._send_frame(self.peer, KIND_ONLINE, payload, spec_digest(specs))
        self.acct.add(online_sent=len(payload), messages_sent=1)

    def recv(self, specs: Sequence[Spec], dtype=np.uint64) -> list[np.ndarray]:
        """Receive one frame of arrays with the given (domain, shape) specs, unpacked as
        ``dtype`` (uint64 by default; a narrower unsigned dtype for small domains)."""
        specs = [(d, tuple(s)) for d, s in specs]
        h, payload = self._recv_frame(self.peer, KIND_ONLINE, spec_digest(specs))
        sizes = [d.nbytes(int(np.prod(s, dtype=np.int64))) for d, s in specs]
        if sum(sizes) != len(payload):
            raise FrameError(self.peer, f"payload of {len(payload)} bytes, expected {sum(sizes)}")
        self.clock = max(self.clock, h.clock + 1)
        self.acct.add(online_recv=len(payload))
        out, off = [], 0
        for (d, s), n in zip(specs, sizes, strict=False):
            count = int(np.prod(s, dtype=np.int64))
            out.append(unpack(payload[off : off + n], d.bits, count, dtype).reshape(s))
            off += n
        return out

    def exchange(
        self, items: Sequence[tuple[Domain, np.ndarray]], dtype=np.uint64
    ) -> list[np.ndarray]:
        """Both parties send arrays of the same specs and receive the other's (1 round)."""
        self.send(items)
        specs = [(d, a.shape) for d, a in items]
        return self.recv(specs) if np.dtype(dtype) == np.uint64 else self.recv(specs, dtype)

    def barrier(self, helper: bool = False) -> None:
        """P1 and P2 wait for each other (1 round, no payload); afterwards both round
        clocks equal max(clock1, clock2) + 1, so the next scope's rounds are measured in
        isolation. A no-op on P0, unless ``helper``: in a live 3-party run P0 then flushes
        its buffered material and waits until P1 and P2 both passed (an empty control
        frame each), so it deals what follows only from here, with no head start (how
        the benchmarks time a query with the helper generating concurrently). With dealt
        material ``helper`` changes nothing."""
        if self.is_dealer:
            if helper and isinstance(self.sink, LiveSink):
                self.sink.finish()  # the parties may still need buffered material
                for p in (P1, P2):
                    self._recv_frame(p, KIND_CONTROL)
            return
        mine, spec = self.clock, spec_digest([])
        self._send_frame(self.peer, KIND_ONLINE, b"", spec)
        h, _ = self._recv_frame(self.peer, KIND_ONLINE, spec)
        self.clock = max(mine, h.clock) + 1
        if helper and isinstance(self.source, LiveSource):
            self._send_frame(DEALER, KIND_CONTROL, b"", 0)

    # -- correlations ----------------------------------------------------------------------
    def deal(self, party: int, dom: Domain, values: np.ndarray) -> None:
        """P0: send a correction array to ``party`` (live, or into dealt material)."""
        self.deal_raw(party, packed(values, dom.bits))

    def deal_raw(self, party: int, payload) -> None:
        """P0: send already packed correction bytes (bytes or a uint8 array) to ``party``."""
        self.sink.put(party, payload)
        self.acct.add(offline_sent=len(payload))

    def take_raw(self, nbytes: int):
        """P1/P2: the next ``nbytes`` of packed correction bytes from the helper (a
        read-only bytes-like object, often a view of the material: no copy)."""
        payload = self.source.take(nbytes)
        self.acct.add(offline_recv=nbytes)
        return payload

    def take(self, dom: Domain, shape, dtype=np.uint64) -> np.ndarray:
        """P1/P2: the next correction array from the helper, unpacked as ``dtype``."""
        shape = tuple(int(s) for s in shape)
        n = int(np.prod(shape, dtype=np.int64))
        return unpack(self.take_raw(dom.nbytes(n)), dom.bits, n, dtype).reshape(shape)

    def take_rows(self, widths, n: int, dtype=np.uint64) -> np.ndarray:
        """P1/P2: the next correction of ``n`` rows whose column c is packed to widths[c]
        bits (``mpc.packing.pack_rows``), as an (n, columns) ``dtype`` array."""
        return unpack_rows(self.take_raw(rows_size(int(n), widths)), widths, int(n), dtype)

    def random_shared(self, dom: Domain, shape) -> Shared | np.ndarray:
        """A random secret r = r1 + r2 that costs nothing: each Pi draws ri from its seed
        with P0. P1/P2 get their share; P0 gets the plaintext r."""
        shape = tuple(shape)
        if self.is_dealer:
            if isinstance(dom, Ring):  # both draws summed in their narrow words: one pass
                dt = draw_dtype(dom)
                w1, w2 = (self._prgs[p].words(dt, shape) for p in (P1, P2))
                return from_words(dom, np.add(w1, w2, dtype=dt))
            r1 = dom.random(self._prgs[P1], shape)
            r2 = dom.random(self._prgs[P2], shape)
            return dom.add(r1, r2)
        return Shared(dom, dom.random(self._prgs[DEALER], shape), self.rank)

    def random_bits(self, shape) -> np.ndarray:
        """``random_shared(BOOL, shape)`` as uint8 arrays, from the same draws: P1/P2 their
        XOR share bits, P0 the secret bits (one byte per bit, not eight)."""
        shape = tuple(shape)
        if self.is_dealer:
            w = self._prgs[P1].words(np.uint8, shape)
            w ^= self._prgs[P2].words(np.uint8, shape)
        else:
            w = self._prgs[DEALER].words(np.uint8, shape)
        w &= np.uint8(1)
        return w

    def dealer_shared(self, dom: Domain, shape, value: np.ndarray | None = None) -> Shared:
        """Share a value only P0 knows: P1's share comes from the seed, P2's share is the
        correction P0 sends (|value| elements offline). P0 passes ``value``."""
        shape = tuple(shape)
        if self.is_dealer:
            v = np.asarray(value)
            if isinstance(dom, Ring) and v.dtype.kind in "iub":
                # P1's share is its drawn words mod 2^k and pack keeps the low k bits, so
                # value - words in the words' dtype is the correction: one pass, narrow
                w = self._prgs[P1].words(draw_dtype(dom), shape)
                self.deal(P2, dom, np.subtract(v, w, dtype=w.dtype, casting="unsafe"))
            else:
                self.deal(P2, dom, dom.sub(dom.reduce(value), dom.random(self._prgs[P1], shape)))
            return Shared.phantom(dom, shape)
        if self.rank == P1:
            return Shared(dom, dom.random(self._prgs[DEALER], shape), P1)
        return Shared(dom, self.take(dom, shape), P2)

    def private_random(self, dom: Domain, shape, party: int) -> np.ndarray | None:
        """Randomness known to P0 and ``party`` only (None on the other party)."""
        if self.is_dealer:
            return dom.random(self._prgs[party], shape)
        if self.rank == party:
            return dom.random(self._prgs[DEALER], shape)
        return None

    def private_words(self, r: Ring, shape, party: int) -> np.ndarray | None:
        """``private_random`` of a ring as the drawn words (``draw_dtype``), not reduced:
        the same elements mod 2^k, without a uint64 copy (for kernels that read words mod
        2^k, e.g. a weight mask of 100 M elements)."""
        if self.rank not in (DEALER, party):
            return None
        return self._prgs[party if self.is_dealer else DEALER].words(draw_dtype(r), shape)

    def keyed_random(self, dom: Domain, shape, party: int, key: str) -> np.ndarray | None:
        """Like ``private_random`` (P0 and ``party`` only), but drawn from a stream of its
        own named by ``key`` instead of the running stream, so it can be drawn at any time
        (e.g. before the query). Keys must be distinct within a session."""
        if self.is_dealer:
            seed = self._seeds[party]
        elif self.rank == party:
            seed = self._seeds[DEALER]
        else:
            return None
        return dom.random(PRG(seed, "keyed/" + key), tuple(shape))

    def common_random(self, dom: Domain, shape) -> np.ndarray | None:
        """Randomness known to P1 and P2 only (None on P0)."""
        if self.is_dealer:
            return None
        return dom.random(self._prgs[self.peer], shape)

    # -- inputs and outputs ----------------------------------------------------------------
    def input(self, owner: int, dom: Domain, shape, value=None) -> Shared:
        """Secret-share ``value`` held by computing party ``owner`` at no cost: the other
        party's share is drawn from the P1-P2 seed, the owner keeps value - that."""
        shape = tuple(int(s) for s in shape)
        if self.is_dealer:
            return Shared.phantom(dom, shape)
        r = dom.random(self._prgs[self.peer], shape)
        if self.rank != owner:
            return Shared(dom, r, self.rank)
        v = dom.reduce(np.asarray(value))
        if v.shape != shape:
            raise ValueError(f"input of shape {v.shape}, declared {shape}")
        return Shared(dom, dom.sub(v, r), self.rank)

    def open(self, x: Shared) -> np.ndarray | None:
        """Both computing parties learn x (1 round, |x| elements each way)."""
        if self.is_dealer:
            return None
        (other,) = self.exchange([(x.dom, x.data)])
        return x.dom.add(x.data, other)

    def reveal(self, x: Shared, to: int) -> np.ndarray | None:
        """Only party ``to`` learns x (1 round, |x| elements one way)."""
        if self.is_dealer:
            return None
        if self.rank == to:
            (other,) = self.recv([(x.dom, x.shape)])
            return x.dom.add(x.data, other)
        self.send([(x.dom, x.data)])
        return None

    # -- accounting ------------------------------------------------------------------------
    @contextmanager
    def scope(self, name: str):
        with self.acct.scope(name) as path:
            yield path

    def finish(self) -> None:
        """End of run: flush P0's material, check P1/P2 consumed all of theirs."""
        if self.is_dealer:
            self.sink.finish()
        else:
            self.source.finish()

    def report(self) -> dict:
        rep = self.acct.report()
        rep["party"] = self.rank
        rep["session"] = self.session
        if self.transport is not None:
            rep["transport"] = {
                "bytes_sent": dict(self.transport.bytes_sent),
                "bytes_received": dict(self.transport.bytes_received),
            }
        return rep


class LiveSink(CorrelationSink):
    """P0 in a 3-party run: streams corrections in offline frames of at least 4 MiB (or
    what is pending at a flush). Payloads are kept by reference until then (callers hand
    over fresh arrays or bytes) and copied once, into a frame of exactly their size.

    Batching is safe: P0 waits on no one (except at ``Runtime.barrier(helper=True)``,
    which flushes first), so it flushes at the latest at the end."""

    FLUSH = 4 << 20

    def __init__(self, rt: Runtime):
        self.rt = rt
        self._buf = {P1: self._fresh(), P2: self._fresh()}
        self._seeds: dict[int, bytes] = {}

    @staticmethod
    def _fresh() -> list:
        """[payloads not sent yet, their total bytes]."""
        return [[], 0]

    def seed_for(self, party: int) -> bytes:
        if party not in self._seeds:
            self._seeds[party] = s = fresh_seed()
            self.rt._send_frame(party, KIND_CONTROL, s, 0)
        return self._seeds[party]

    def put(self, party: int, payload) -> None:
        pending = self._buf[party]
        data = np.frombuffer(payload, dtype=np.uint8)
        pending[0].append(data)
        pending[1] += data.size
        if pending[1] >= self.FLUSH:
            self._flush(party)

    def _flush(self, party: int) -> None:
        parts, size = self._buf[party]
        if size:  # header filled in place, payload never copied again
            frame = np.empty(HEADER_SIZE + size, dtype=np.uint8)
            pos = HEADER_SIZE
            for data in parts:
                frame[pos : pos + data.size] = data
                pos += data.size
            self.rt._send_reserved(party, KIND_OFFLINE, memoryview(frame))
            self._buf[party] = self._fresh()

    def finish(self) -> None:
        for p in (P1, P2):
            self._flush(p)


class LiveSource(CorrelationSource):
    """P1/P2 in a 3-party run: reads P0's offline frames as the program needs them."""

    def __init__(self, rt: Runtime):
        self.rt = rt
        self._chunk = memoryview(b"")
        self._seed: bytes | None = None

    @property
    def seed(self) -> bytes:
        if self._seed is None:
            _, s = self.rt._recv_frame(DEALER, KIND_CONTROL)
            if len(s) != SEED_BYTES:
                raise FrameError(DEALER, "bad seed frame")
            self._seed = bytes(s)
        return self._seed

    def take(self, nbytes: int):
        if nbytes and not len(self._chunk):
            _, self._chunk = self.rt._recv_frame(DEALER, KIND_OFFLINE)
        if len(self._chunk) >= nbytes:  # within one frame: a view, no copy
            part, self._chunk = self._chunk[:nbytes], self._chunk[nbytes:]
            return part
        parts, need = [], nbytes
        while need:
            if not len(self._chunk):
                _, self._chunk = self.rt._recv_frame(DEALER, KIND_OFFLINE)
            part = self._chunk[:need]
            self._chunk = self._chunk[len(part) :]
            parts.append(part)
            need -= len(part)
        return b"".join(parts)

    def finish(self) -> None:
        if len(self._chunk):
            raise FrameError(DEALER, "helper sent more material than the program used")
