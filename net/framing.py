"""Frame format shared by every transport.

A frame is a fixed 36-byte header followed by ``length`` payload bytes::

    magic "QB" | version u8 | kind u8 | sender u8 | receiver u8 | reserved u16 |
    session u64 | seq u64 | clock u32 | spec u32 | length u32      (little endian)

``kind`` tells online messages (between P1 and P2) from offline correlation material
(from the helper P0) and control messages (set-up, shutdown). ``seq`` counts frames per
direction from 0; ``clock`` is the sender's Lamport round clock (see ``net.runtime``);
``spec`` is a CRC-32 of the rings and shapes the payload carries, so a receiver that
expects other arrays fails with a clear error instead of decoding garbage.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from net.errors import FrameError, SessionMismatch

MAGIC = b"QB"
VERSION = 1
HEADER = struct.Struct("<2sBBBBHQQIII")
HEADER_SIZE = HEADER.size  # 36
DEFAULT_MAX_FRAME = 1 << 31  # bytes of payload accepted in one frame

KIND_ONLINE = 0
KIND_OFFLINE = 1
KIND_CONTROL = 2
KINDS = (KIND_ONLINE, KIND_OFFLINE, KIND_CONTROL)


@dataclass(frozen=True, slots=True)
class Header:
    kind: int
    sender: int
    receiver: int
    session: int
    seq: int
    clock: int
    spec: int
    length: int

    def pack(self) -> bytes:
        return HEADER.pack(
            MAGIC,
            VERSION,
            self.kind,
            self.sender,
            self.receiver,
            0,
            self.session,
            self.seq,
            self.clock,
            self.spec,
            self.length,
        )


def parse_header(buf: bytes, peer: int, max_payload: int = DEFAULT_MAX_FRAME) -> Header:
    """Decode and sanity-check a header received from ``peer``; raise FrameError."""
    if len(buf) != HEADER_SIZE:
        raise FrameError(peer, f"truncated frame header ({len(buf)} of {HEADER_SIZE} bytes)")
    magic, version, kind, sender, receiver, _res, session, seq, clock, spec, length = HEADER.unpack(
        buf
    )
    if magic != MAGIC:
        raise FrameError(peer, "bad magic: not a qbert-mpc frame")
    if version != VERSION:
        raise FrameError(peer, f"protocol version {version}, expected {VERSION}")
    if kind not in KINDS:
        raise FrameError(peer, f"unknown frame kind {kind}")
    if sender != peer:
        raise FrameError(peer, f"frame claims sender P{sender}")
    if length > max_payload:
        raise FrameError(peer, f"frame of {length} bytes exceeds the limit of {max_payload}")
    return Header(kind, sender, receiver, session, seq, clock, spec, length)


def check_frame(h: Header, *, peer: int, me: int, session: int, seq: int, kind: int) -> None:
    """Check a parsed header against what the receiver expects next from ``peer``."""
    if h.session != session:
        raise SessionMismatch(peer, "frame from another session")
    if h.receiver != me:
        raise FrameError(peer, f"frame addressed to P{h.receiver}, this is P{me}")
    if h.seq != seq:
        raise FrameError(peer, f"frame sequence {h.seq}, expected {seq} (replayed or lost)")
    if h.kind != kind:
        raise FrameError(peer, f"frame kind {h.kind}, expected {kind}")


def spec_digest(specs: Sequence[tuple[object, tuple[int, ...]]]) -> int:
    """CRC-32 of a list of (domain, shape) pairs; domains are described by ``repr``."""
    text = ";".join(f"{dom!r}:{tuple(int(s) for s in shape)}" for dom, shape in specs)
    return zlib.crc32(text.encode())
