"""Network emulation for the TCP transport: bandwidth and latency shaping per connection.

Set ``QBERT_NET_SHAPE="<bandwidth bit/s>,<rtt s>"`` (e.g. ``1e9,0.0005`` for a LAN,
``1e8,0.04`` for a WAN) in the environment of the party processes; ``TcpTransport``
then wraps each connection in ``ShapedConn``. A frame handed to ``sendall`` at time t
leaves the emulated link at ``start + size / bandwidth`` (``start`` = t, or when the
previous frame finished serialising: the link is a FIFO of that bandwidth) and is
written to the socket rtt/2 later. ``sendall`` returns at once (the frame is copied into
a queue); a writer thread per connection sleeps until each frame is due. ``shutdown``
waits until the queue is drained, so nothing in flight is lost. Errors of the writer are
raised by the next ``sendall``.

The frame bytes shaped are the counted frame bytes (header + payload), not TCP/IP
overhead. The handshake is not shaped (it runs before the wrap).
"""

from __future__ import annotations

import os
import queue
import threading
import time

ENV = "QBERT_NET_SHAPE"
_DRAIN_TIMEOUT = 600.0


def parse(spec: str | None) -> tuple[float, float] | None:
    """``"bw,rtt"`` -> (bits per second, round-trip seconds); empty or None -> None."""
    if not spec:
        return None
    try:
        bw, rtt = (float(v) for v in spec.split(","))
    except ValueError:
        raise ValueError(f"{ENV} must be '<bandwidth bit/s>,<rtt s>', got {spec!r}") from None
    if bw <= 0 or rtt < 0:
        raise ValueError(f"{ENV}: bandwidth must be > 0 and rtt >= 0, got {spec!r}")
    return bw, rtt


def setting(name: str) -> str:
    """The ``QBERT_NET_SHAPE`` value of a named setting."""
    return {"lan": "1e9,0.0005", "wan": "1e8,0.04"}[name]


class ShapedConn:
    """Wraps a connection (``sendall``/``recv_into``/``shutdown``/``close``)."""

    def __init__(self, conn, bandwidth: float, rtt: float):
        self.conn, self.bw, self.delay = conn, bandwidth / 8.0, rtt / 2.0
        self._q: queue.Queue = queue.Queue()
        self._free = 0.0  # when the emulated link finishes the last queued frame
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._writer, name="shaped-send", daemon=True)
        self._thread.start()

    def sendall(self, data) -> None:
        if self._error is not None:
            raise self._error
        with self._lock:
            now = time.monotonic()
            self._free = max(now, self._free) + len(data) / self.bw
            self._q.put((self._free + self.delay, bytes(data)))

    def _writer(self) -> None:
        while True:
            item = self._q.get()
            try:
                if item is None:
                    return
                due, data = item
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if self._error is None:
                    self.conn.sendall(data)
            except (OSError, ValueError) as e:
                self._error = e
            finally:
                self._q.task_done()

    def recv_into(self, buf) -> int:
        return self.conn.recv_into(buf)

    def _drain(self) -> None:
        end = time.monotonic() + _DRAIN_TIMEOUT
        while self._q.unfinished_tasks and time.monotonic() < end and self._error is None:
            time.sleep(0.001)

    def shutdown(self) -> None:
        if threading.current_thread() is not self._thread:
            self._drain()
        self._q.put(None)
        self.conn.shutdown()

    def close(self) -> None:
        self.conn.close()


def maybe_wrap(conn):
    """``conn`` shaped as ``QBERT_NET_SHAPE`` says, or unchanged when it is not set."""
    shape = parse(os.environ.get(ENV))
    return conn if shape is None else ShapedConn(conn, *shape)
