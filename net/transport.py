"""Transports move whole frames between parties and count every byte they move.

A transport is one party's endpoint: ``send(peer, frame)`` and ``recv(peer, timeout)``.
Frames are opaque ``bytes`` (header + payload, see ``net.framing``); the transport only
needs the header's length field to split a byte stream. ``send`` never waits for the peer
to read (a receiver thread or queue drains each link), so simultaneous large sends in
both directions cannot deadlock.
"""

from __future__ import annotations

import queue
import threading
from collections import defaultdict

from net.errors import PeerDisconnected, PeerTimeout


class Transport:
    """One party's endpoint. Subclasses implement ``_send`` and ``_recv``."""

    def __init__(self, rank: int):
        self.rank = rank
        self.bytes_sent: dict[int, int] = defaultdict(int)
        self.bytes_received: dict[int, int] = defaultdict(int)
        self.frames_sent: dict[int, int] = defaultdict(int)
        self.frames_received: dict[int, int] = defaultdict(int)

    def send(self, peer: int, frame: bytes) -> None:
        self._send(peer, frame)
        self.bytes_sent[peer] += len(frame)
        self.frames_sent[peer] += 1

    def recv(self, peer: int, timeout: float | None = None) -> bytes:
        frame = self._recv(peer, timeout)
        self.bytes_received[peer] += len(frame)
        self.frames_received[peer] += 1
        return frame

    def close(self) -> None:  # pragma: no cover - trivial default
        pass

    def _send(self, peer: int, frame: bytes) -> None:
        raise NotImplementedError

    def _recv(self, peer: int, timeout: float | None) -> bytes:
        raise NotImplementedError


_CLOSED = object()


class InMemoryNetwork:
    """Unbounded queues between parties that run as threads of one process (tests)."""

    def __init__(self, ranks=(0, 1, 2)):
        self.ranks = tuple(ranks)
        self._queues = {(a, b): queue.Queue() for a in ranks for b in ranks if a != b}
        self._lock = threading.Lock()

    def endpoint(self, rank: int) -> InMemoryTransport:
        return InMemoryTransport(self, rank)


class InMemoryTransport(Transport):
    def __init__(self, net: InMemoryNetwork, rank: int):
        super().__init__(rank)
        self.net = net
        self._closed = False

    def _send(self, peer: int, frame: bytes) -> None:
        if self._closed:
            raise PeerDisconnected(peer, "send on a closed transport")
        self.net._queues[(self.rank, peer)].put(bytes(frame))

    def _recv(self, peer: int, timeout: float | None) -> bytes:
        try:
            item = self.net._queues[(peer, self.rank)].get(timeout=timeout)
        except queue.Empty:
            raise PeerTimeout(peer, f"nothing received within {timeout} s") from None
        if item is _CLOSED:
            raise PeerDisconnected(peer, "peer closed the connection")
        return item

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            for peer in self.net.ranks:
                if peer != self.rank:
                    self.net._queues[(self.rank, peer)].put(_CLOSED)
