"""TCP transport: one TCP connection per pair of parties, one receiver thread per connection.

Connection set-up
-----------------
The lower rank listens and the higher rank connects (P0 listens for P1 and P2, P1 listens
for P2). Every party that expects a higher peer binds its listening socket (SO_REUSEADDR)
before it connects anywhere. A connector retries until ``connect_timeout`` and then raises
PeerTimeout naming the peer; a listener that does not hear from an expected peer within
``connect_timeout`` raises PeerTimeout ("P2: never connected to P0 within 30 s").

Handshake
---------
Right after the TCP connection is up, the connector sends a hello frame and the acceptor
answers with one: both are ordinary frames (``net.framing``) of kind KIND_CONTROL, seq 0,
clock 0, spec 0, carrying the sender's rank and session and the fixed 8-byte payload
``b"QBHELLO" + status``. The connector sends status 0; the acceptor answers status 0
(accepted) or a rejection code (another session, a rank it does not expect, a duplicate of
a connection it already has), then closes. A rejected connector raises SessionMismatch or
HandshakeError at once; the acceptor logs the rejection, records it in ``rejected`` and
keeps accepting until the expected peer arrives or the timeout passes.

The hello travels in clear; when ``ssl_context_factory`` is given, TLS starts right after
it, so the acceptor already knows which peer it talks to and can pick the per-peer context
(``factory("server", peer)``; the connector uses ``factory("client", peer)`` with the
peer's host as server name). Only TLS authenticates the claimed rank, so the factory's
contexts must verify peer certificates; every later frame also carries the session, which
``net.framing.check_frame`` checks. TLS runs over memory BIOs (``ssl.SSLObject``) with a
lock around the OpenSSL object only: a blocking ``SSLSocket`` must not be read and written
from two threads at once, and holding a lock across blocking socket I/O would deadlock
simultaneous large sends.

Counting
--------
The base class counts frame bytes (header + payload), not wire bytes: TCP/IP and TLS
overhead are not included. The handshake frames are counted: after set-up,
``bytes_sent[peer] == bytes_received[peer] == HANDSHAKE_FRAME_SIZE`` (44) and one frame
each way, for every connected peer. Rejected connection attempts are not counted.

Receiving
---------
A receiver thread per connection reads the exact 36-byte header, validates it with
``parse_header`` (sender rank, kind, version, ``max_frame`` payload limit), reads the
payload and queues the whole frame. End of stream queues a marker so ``recv`` raises
PeerDisconnected (after every frame that arrived before it); a malformed header is
delivered to ``recv`` as that FrameError and the connection is shut down, since the byte
stream cannot be resynchronised. Errors are sticky: later ``recv`` calls raise them again.
Session, receiver and sequence numbers are left to ``check_frame`` in the runtime.

Frames from the helper P0 are read ahead at most ``DEALER_BUDGET`` bytes (unless the queue
is empty, so one larger frame still passes): beyond that the receiver waits, TCP pushes
back and P0 blocks in its send, so the material of a live run does not pile up in this
party's memory (page faults cost ~1.2 s per GB here) and P0 yields the cores. It waits only
while the party's program computes or waits on P0 itself: as soon as it waits on another
peer, the receiver reads on, so P0 can never be held up by a party that waits for
someone P0 must serve first (no cycle of waits).
"""

from __future__ import annotations

import errno
import logging
import queue
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from net.errors import (
    ConfigError,
    FrameError,
    HandshakeError,
    MPCError,
    PeerDisconnected,
    PeerTimeout,
    SessionMismatch,
)
from net.framing import (
    DEFAULT_MAX_FRAME,
    HEADER,
    HEADER_SIZE,
    KIND_CONTROL,
    KIND_ONLINE,
    Header,
    parse_header,
)
from net.transport import Transport

log = logging.getLogger(__name__)

SslContextFactory = Callable[[str, int], ssl.SSLContext]

HELLO_MAGIC = b"QBHELLO"
HELLO_SIZE = len(HELLO_MAGIC) + 1
HANDSHAKE_FRAME_SIZE = HEADER_SIZE + HELLO_SIZE  # 44: counted once each way per connection

# Status byte of the acceptor's answer.
HELLO_OK = 0
REJECT_SESSION = 1
REJECT_UNKNOWN_RANK = 2
REJECT_DUPLICATE = 3
REJECT_BAD_HELLO = 4
_REJECT_TEXT = {
    REJECT_SESSION: "it runs another session",
    REJECT_UNKNOWN_RANK: "it does not expect a connection from this rank",
    REJECT_DUPLICATE: "it is already connected to this rank",
    REJECT_BAD_HELLO: "it found the hello malformed",
}

_HELLO_READ_TIMEOUT = 5.0  # an accepted connection that stays silent longer is dropped
_TLS_CHUNK = 256 * 1024  # plaintext bytes encrypted per lock hold
_TLS_RECV = 256 * 1024
_LENGTH = struct.Struct("<I")
_LENGTH_OFFSET = HEADER_SIZE - 4


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct TCP ports that were free on ``host`` a moment ago (racy by nature)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind((host, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# --------------------------------------------------------------------------- connections


class _PlainConn:
    """A connected TCP socket (blocking, no timeout) behind the tiny interface links use."""

    def __init__(self, sock: socket.socket):
        self.sock = sock

    def sendall(self, data) -> None:
        self.sock.sendall(data)

    def recv_into(self, buf: memoryview) -> int:
        return self.sock.recv_into(buf)

    def shutdown(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()


class _TlsConn:
    """TLS over memory BIOs, safe for one sending and one receiving thread at a time.

    Only calls into the OpenSSL object happen under ``_lock``; socket I/O happens outside
    it, so a sender blocked in ``sendall`` never stops the receiver from draining. Bytes
    that OpenSSL queues while reading (post-handshake messages) go out with the next send.
    """

    def __init__(self, sock, ctx: ssl.SSLContext, server_side: bool, server_hostname):
        self.sock = sock
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = ctx.wrap_bio(
            self._in, self._out, server_side=server_side, server_hostname=server_hostname
        )
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._eof = False

    def handshake(self) -> None:
        """Run the TLS handshake on the socket (which has a timeout; single-threaded)."""
        while True:
            try:
                self._obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
            self._flush()
            data = self.sock.recv(_TLS_RECV)
            if not data:
                raise ConnectionError("peer closed the connection during the TLS handshake")
            self._in.write(data)
        self._flush()

    def _flush(self) -> None:
        data = self._out.read()
        if data:
            self.sock.sendall(data)

    def sendall(self, data) -> None:
        mv = memoryview(data).cast("B")
        with self._send_lock:
            for off in range(0, max(len(mv), 1), _TLS_CHUNK):
                with self._lock:
                    if len(mv):
                        self._obj.write(mv[off : off + _TLS_CHUNK])
                    out = self._out.read()
                if out:
                    self.sock.sendall(out)

    def recv_into(self, buf: memoryview) -> int:
        while True:
            with self._lock:
                try:
                    return self._obj.read(len(buf), buf)
                except ssl.SSLWantReadError:
                    if self._eof:
                        return 0
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    return 0
            data = self.sock.recv(_TLS_RECV)
            with self._lock:
                if data:
                    self._in.write(data)
                else:
                    self._eof = True
                    self._in.write_eof()

    def shutdown(self) -> None:
        # Best effort close_notify, only if no send is in progress (it would interleave).
        if self._send_lock.acquire(blocking=False):
            try:
                with self._lock:
                    try:
                        self._obj.unwrap()
                    except (ssl.SSLError, ValueError):
                        pass
                    out = self._out.read()
                if out:
                    self.sock.send(out, socket.MSG_DONTWAIT)
            except OSError:
                pass
            finally:
                self._send_lock.release()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()


# --------------------------------------------------------------------------- handshake


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    """Exactly ``n`` bytes (never more: TLS may follow) or fewer if the stream ended."""
    chunks = []
    got = 0
    while got < n:
        chunk = sock.recv(n - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _hello(sender: int, receiver: int, session: int, status: int) -> bytes:
    header = Header(KIND_CONTROL, sender, receiver, session, 0, 0, 0, HELLO_SIZE)
    return header.pack() + HELLO_MAGIC + bytes([status])


def _hello_ok(h: Header, payload: bytes, me: int) -> bool:
    return (
        h.kind == KIND_CONTROL
        and h.seq == 0
        and h.receiver == me
        and len(payload) == HELLO_SIZE
        and payload.startswith(HELLO_MAGIC)
    )


class _Retry(Exception):
    """The connection attempt failed in a way a later attempt may not (internal)."""


DEALER_BUDGET = 256 << 20  # bytes of P0's frames queued ahead of the program (see above)


@dataclass
class _Link:
    peer: int
    conn: _PlainConn | _TlsConn
    queue: queue.Queue = field(default_factory=queue.Queue)
    queued: int = 0  # bytes of frames in ``queue``
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    thread: threading.Thread | None = None
    failed: MPCError | None = None


# --------------------------------------------------------------------------- transport


class TcpTransport(Transport):
    """One party's TCP endpoint; the constructor blocks until every peer is connected.

    ``addresses`` maps every rank to its listening ``(host, port)``; ``peers`` are the
    ranks to connect with (default: every other rank in ``addresses``). ``bind_host``
    overrides the host the listening socket binds to (e.g. ``"0.0.0.0"`` behind NAT).
    """

    def __init__(
        self,
        rank: int,
        addresses: Mapping[int, tuple[str, int]],
        session: int,
        peers: Iterable[int] | None = None,
        connect_timeout: float = 30.0,
        max_frame: int = DEFAULT_MAX_FRAME,
        ssl_context_factory: SslContextFactory | None = None,
        bind_host: str | None = None,
    ):
        super().__init__(rank)
        self.addresses = {int(r): (str(h), int(p)) for r, (h, p) in addresses.items()}
        self.session = int(session)
        self.connect_timeout = float(connect_timeout)
        self.max_frame = int(max_frame)
        self.ssl_context_factory = ssl_context_factory
        if peers is None:
            peers = [r for r in self.addresses if r != rank]
        self.peers = tuple(sorted(set(int(p) for p in peers)))
        self._check_config()
        self.rejected: list[MPCError] = []  # handshakes this party refused (diagnostics)
        self._links: dict[int, _Link] = {}
        self._lock = threading.Lock()
        self._closing = False
        self._closed = False
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._flow = threading.Condition()  # guards _Link.queued and _waiting_on
        self._waiting_on: int | None = None  # the peer the program waits on in recv
        self.dealer_budget = DEALER_BUDGET
        self._setup(bind_host)

    # ---------------------------------------------------------------- set-up

    def _check_config(self) -> None:
        if not 0 <= self.rank <= 255:
            raise ConfigError(f"rank {self.rank} is out of range 0..255")
        if not 0 <= self.session < 1 << 64:
            raise ConfigError("session must be an unsigned 64-bit integer")
        if self.connect_timeout <= 0:
            raise ConfigError("connect_timeout must be positive")
        for p in self.peers:
            if p == self.rank:
                raise ConfigError(f"P{self.rank} cannot connect to itself")
            if p not in self.addresses:
                raise ConfigError(f"no address for peer P{p}")
            if not 0 <= p <= 255:
                raise ConfigError(f"rank {p} is out of range 0..255")
        if any(p > self.rank for p in self.peers) and self.rank not in self.addresses:
            raise ConfigError(f"no listening address for P{self.rank}")

    def _setup(self, bind_host: str | None) -> None:
        deadline = time.monotonic() + self.connect_timeout
        higher = [p for p in self.peers if p > self.rank]
        lower = [p for p in self.peers if p < self.rank]
        acceptor = None
        accept_error: list[BaseException] = []
        try:
            if higher:
                host, port = self.addresses[self.rank]
                self._listener = self._listen(bind_host or host, port)
                acceptor = threading.Thread(
                    target=self._accept_loop,
                    args=(set(higher), deadline, accept_error),
                    name=f"tcp-accept-P{self.rank}",
                    daemon=True,
                )
                acceptor.start()
            for peer in lower:
                self._register(peer, self._connect(peer, deadline))
            if acceptor is not None:
                acceptor.join()
                acceptor = None
            if accept_error:
                raise accept_error[0]
        except BaseException:
            self._stop.set()
            if acceptor is not None:
                acceptor.join()
            self.close()
            raise
        finally:
            if self._listener is not None:
                self._listener.close()
                self._listener = None

    def _listen(self, host: str, port: int) -> socket.socket:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            family, _, _, _, sockaddr = infos[0]
            s = socket.socket(family, socket.SOCK_STREAM)
        except OSError as e:
            raise ConfigError(f"P{self.rank} cannot listen on {host}:{port}: {e}") from None
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(sockaddr)
            s.listen(16)
        except OSError as e:
            s.close()
            hint = ""
            if e.errno == errno.EADDRINUSE:
                hint = (
                    f"; another program (or an earlier party) holds port {port}: stop it, or "
                    f"give P{self.rank} another port in the host file"
                )
            raise ConfigError(f"P{self.rank} cannot listen on {host}:{port}: {e}{hint}") from None
        return s

    def _connect(self, peer: int, deadline: float) -> _PlainConn | _TlsConn:
        host, port = self.addresses[peer]
        delay = 0.02
        last = "no attempt"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stop.is_set():
                raise PeerTimeout(
                    peer,
                    f"P{self.rank} could not connect to {host}:{port} within "
                    f"{self.connect_timeout:g} s (last attempt: {last})",
                )
            try:
                sock = socket.create_connection((host, port), timeout=min(remaining, 5.0))
            except OSError as e:
                last = type(e).__name__
                time.sleep(min(delay, max(remaining, 0)))
                delay = min(delay * 2, 0.5)
                continue
            try:
                if sock.getsockname() == sock.getpeername():
                    # TCP self-connect: an ephemeral source port equal to the target port
                    # of a listener that is not up yet.
                    raise _Retry("self-connected socket")
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                self._client_hello(sock, peer)
                conn = self._wrap(sock, "client", peer, host)
                sock.settimeout(None)
                return conn
            except _Retry as e:
                sock.close()
                last = str(e)
                time.sleep(min(delay, max(deadline - time.monotonic(), 0)))
            except TimeoutError:
                sock.close()
                last = "connected but no handshake answer"
            except BaseException:
                sock.close()
                raise

    def _client_hello(self, sock: socket.socket, peer: int) -> None:
        try:
            sock.sendall(_hello(self.rank, peer, self.session, HELLO_OK))
            raw = _recv_exact(sock, HANDSHAKE_FRAME_SIZE)
        except TimeoutError:
            raise
        except OSError as e:
            raise _Retry(type(e).__name__) from None
        if len(raw) < HANDSHAKE_FRAME_SIZE:
            raise _Retry("connection closed during the handshake")
        h = parse_header(raw[:HEADER_SIZE], peer, HELLO_SIZE)
        payload = raw[HEADER_SIZE:]
        if not _hello_ok(h, payload, self.rank):
            raise HandshakeError(peer, "malformed handshake answer")
        status = payload[-1]
        if status == REJECT_SESSION or (status == HELLO_OK and h.session != self.session):
            raise SessionMismatch(peer, f"P{peer} rejected the handshake: another session")
        if status != HELLO_OK:
            reason = _REJECT_TEXT.get(status, f"status {status}")
            raise HandshakeError(peer, f"P{peer} rejected the handshake: {reason}")

    def _accept_loop(self, expected: set[int], deadline: float, errors: list) -> None:
        try:
            while expected and not self._stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._listener.settimeout(min(remaining, 0.2))
                try:
                    sock, addr = self._listener.accept()
                except TimeoutError:
                    continue
                peer = self._serve_hello(sock, addr, expected, deadline)
                if peer is not None:
                    expected.discard(peer)
            if expected and not self._stop.is_set():
                missing = sorted(expected)
                msg = f"never connected to P{self.rank} within {self.connect_timeout:g} s"
                if len(missing) > 1:
                    msg += f" (nor did {', '.join(f'P{p}' for p in missing[1:])})"
                if self.rejected:
                    msg += f"; rejected {len(self.rejected)} connection(s), last: "
                    msg += str(self.rejected[-1])
                raise PeerTimeout(missing[0], msg)
        except BaseException as e:  # delivered to the constructing thread
            errors.append(e)

    def _reject(self, error: MPCError) -> None:
        log.warning("P%d rejected a connection: %s", self.rank, error)
        self.rejected.append(error)

    def _serve_hello(self, sock, addr, expected: set[int], deadline: float) -> int | None:
        """Handshake on an accepted socket; the peer's rank, or None if it was rejected."""
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(max(min(deadline - time.monotonic(), _HELLO_READ_TIMEOUT), 0.001))
            raw = _recv_exact(sock, HANDSHAKE_FRAME_SIZE)
            if len(raw) < HANDSHAKE_FRAME_SIZE:
                self._reject(MPCError(f"a connection from {addr[0]} closed before its hello"))
                sock.close()
                return None
            claimed = HEADER.unpack(raw[:HEADER_SIZE])[3]
            status, error = HELLO_OK, None
            try:
                h = parse_header(raw[:HEADER_SIZE], claimed, HELLO_SIZE)
                payload = raw[HEADER_SIZE:]
                if not _hello_ok(h, payload, self.rank):
                    raise FrameError(claimed, "malformed handshake hello")
            except FrameError as e:
                status, error = REJECT_BAD_HELLO, e
            else:
                if h.session != self.session:
                    status = REJECT_SESSION
                    error = SessionMismatch(claimed, "handshake for another session rejected")
                elif claimed in self._links:
                    status = REJECT_DUPLICATE
                    error = HandshakeError(claimed, "duplicate connection rejected")
                elif claimed not in expected:
                    status = REJECT_UNKNOWN_RANK
                    error = HandshakeError(
                        claimed, f"P{self.rank} does not expect a connection from this rank"
                    )
            sock.sendall(_hello(self.rank, claimed, self.session, status))
            if error is not None:
                self._reject(error)
                sock.close()
                return None
            conn = self._wrap(sock, "server", claimed, None)
            sock.settimeout(None)
        except (OSError, HandshakeError) as e:
            if not isinstance(e, MPCError):
                e = MPCError(f"handshake with a connection from {addr[0]} failed: {e}")
            self._reject(e)
            sock.close()
            return None
        self._register(claimed, conn)
        return claimed

    def _wrap(self, sock, role: str, peer: int, host: str | None) -> _PlainConn | _TlsConn:
        if self.ssl_context_factory is None:
            return _PlainConn(sock)
        ctx = self.ssl_context_factory(role, peer)
        conn = _TlsConn(sock, ctx, server_side=(role == "server"), server_hostname=host)
        try:
            conn.handshake()
        except TimeoutError:
            raise
        except ssl.SSLError as e:
            raise HandshakeError(peer, f"TLS handshake failed: {e.reason or e}") from None
        except OSError as e:
            raise HandshakeError(peer, f"TLS handshake failed: {e}") from None
        return conn

    def _register(self, peer: int, conn: _PlainConn | _TlsConn) -> None:
        from net.shaping import maybe_wrap  # LAN/WAN emulation when QBERT_NET_SHAPE is set

        link = _Link(peer, maybe_wrap(conn))
        with self._lock:
            if self._closing:
                conn.shutdown()
                conn.close()
                raise PeerDisconnected(peer, "transport closed during set-up")
            self._links[peer] = link
            # The hello frames, one each way (see "Counting" in the module docstring).
            self.bytes_sent[peer] += HANDSHAKE_FRAME_SIZE
            self.frames_sent[peer] += 1
            self.bytes_received[peer] += HANDSHAKE_FRAME_SIZE
            self.frames_received[peer] += 1
        link.thread = threading.Thread(
            target=self._reader, args=(link,), name=f"tcp-recv-P{self.rank}<-P{peer}", daemon=True
        )
        link.thread.start()

    # ---------------------------------------------------------------- data path

    def _read_exact(self, conn, buf: memoryview) -> int:
        got = 0
        while got < len(buf):
            n = conn.recv_into(buf[got:])
            if n == 0:
                break
            got += n
        return got

    def _reader(self, link: _Link) -> None:
        peer, conn, q = link.peer, link.conn, link.queue
        try:
            while True:
                header = bytearray(HEADER_SIZE)
                n = self._read_exact(conn, memoryview(header))
                if n == 0:
                    q.put(PeerDisconnected(peer, self._eof_text("peer closed the connection")))
                    return
                if n < HEADER_SIZE:
                    q.put(PeerDisconnected(peer, "connection closed inside a frame header"))
                    return
                h = parse_header(bytes(header), peer, self.max_frame)
                if peer == 0 and self.rank != 0:
                    self._await_budget(link, h.length)
                # Uninitialised (bytearray(n) would zero it first: a frame of material can
                # be GBs, written once by recv_into) and passed on without a bytes() copy;
                # placed so that the payload starts 8-byte aligned (unpack reads it as words).
                pad = -HEADER_SIZE % 8
                buf = np.empty(pad + HEADER_SIZE + h.length, dtype=np.uint8)
                frame = memoryview(buf[pad:])
                frame[:HEADER_SIZE] = header
                if h.length:
                    n = self._read_exact(conn, frame[HEADER_SIZE:])
                    if n < h.length:
                        q.put(PeerDisconnected(peer, "connection closed inside a frame"))
                        return
                with self._flow:
                    link.queued += len(frame)
                q.put(frame)
        except FrameError as e:
            q.put(e)
            conn.shutdown()  # the stream cannot be resynchronised; the peer sees the close
        except (OSError, ValueError) as e:
            q.put(PeerDisconnected(peer, self._eof_text(f"connection lost ({type(e).__name__})")))
        except BaseException as e:  # never leave a recv() waiting forever
            q.put(PeerDisconnected(peer, f"receiver failed ({type(e).__name__})"))
            raise

    def _await_budget(self, link: _Link, length: int) -> None:
        """Hold the receiver of P0's frames while more than ``dealer_budget`` bytes wait and
        the program computes or waits on P0 (see the module doc)."""
        with self._flow:
            while (
                link.queued
                and link.queued + length > self.dealer_budget
                and self._waiting_on in (None, link.peer)
                and not self._closing
            ):
                self._flow.wait(0.5)

    def _eof_text(self, text: str) -> str:
        return "transport closed locally" if self._closing else text

    def _link(self, peer: int) -> _Link:
        link = self._links.get(peer)
        if link is None:
            raise ConfigError(f"P{self.rank} has no connection to P{peer}")
        return link

    def _send(self, peer: int, frame: bytes) -> None:
        link = self._link(peer)
        if self._closing:
            raise PeerDisconnected(peer, "send on a closed transport")
        if len(frame) < HEADER_SIZE or (
            _LENGTH.unpack_from(frame, _LENGTH_OFFSET)[0] != len(frame) - HEADER_SIZE
        ):
            # A wrong length field would desynchronise the stream for good.
            raise ValueError("frame length field does not match the frame size")
        with link.send_lock:
            try:
                link.conn.sendall(frame)
            except (OSError, ValueError) as e:
                raise PeerDisconnected(
                    peer, self._eof_text(f"connection lost while sending ({type(e).__name__})")
                ) from None

    def _recv(self, peer: int, timeout: float | None) -> memoryview:
        link = self._link(peer)
        if link.failed is not None:
            raise link.failed
        self._set_waiting(peer)
        try:
            item = link.queue.get(timeout=timeout)
        except queue.Empty:
            raise PeerTimeout(peer, f"nothing received within {timeout:g} s") from None
        finally:
            self._set_waiting(None)
        if isinstance(item, MPCError):
            link.failed = item
            raise item
        with self._flow:
            link.queued -= len(item)
            self._flow.notify_all()
        return item

    def _set_waiting(self, peer: int | None) -> None:
        with self._flow:
            self._waiting_on = peer
            self._flow.notify_all()

    def close(self) -> None:
        """Shut every connection down and join the receiver threads; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closing = True
            self._closed = True
            links = list(self._links.values())
        self._stop.set()
        self._set_waiting(None)  # wakes a receiver held by the budget: it sees _closing
        for link in links:
            link.conn.shutdown()
        for link in links:
            if link.thread is not None and link.thread is not threading.current_thread():
                link.thread.join(timeout=5.0)
            link.conn.close()

    def __enter__(self) -> TcpTransport:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------- benchmark


def _pair(session: int, timeout: float, **kw) -> tuple[TcpTransport, TcpTransport]:
    ports = free_ports(2)
    addresses = {0: ("127.0.0.1", ports[0]), 1: ("127.0.0.1", ports[1])}
    out: dict[int, object] = {}

    def build(rank: int) -> None:
        try:
            out[rank] = TcpTransport(rank, addresses, session, connect_timeout=timeout, **kw)
        except BaseException as e:
            out[rank] = e

    threads = [threading.Thread(target=build, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [v for v in out.values() if isinstance(v, BaseException)]
    if errors:
        for v in out.values():
            if isinstance(v, TcpTransport):
                v.close()
        raise errors[0]
    return out[0], out[1]


def measure_throughput(nbytes: int, repeats: int = 3) -> dict:
    """Localhost TCP throughput of ``nbytes``-payload frames between two threads.

    Each of ``repeats`` rounds times one frame P0 -> P1 (one-way) and then one frame in
    each direction at once (two-way, until both arrived). MB/s counts payload bytes with
    MB = 10**6 and uses the median round: ``one_way_MBps``; ``two_way_MBps`` per direction;
    ``two_way_total_MBps`` for both directions together.
    """
    if nbytes < 0 or repeats < 1:
        raise ValueError("need nbytes >= 0 and repeats >= 1")
    session = 0x5EED
    t0, t1 = _pair(session, 30.0)
    ends = {0: t0, 1: t1}
    frames = {
        r: Header(KIND_ONLINE, r, 1 - r, session, 0, 0, 0, nbytes).pack() + bytes(nbytes)
        for r in (0, 1)
    }

    def exchange(rank: int, do_send: bool, do_recv: bool, errors: list) -> None:
        try:
            if do_send:
                ends[rank].send(1 - rank, frames[rank])
            if do_recv:
                frame = ends[rank].recv(1 - rank, timeout=120)
                if len(frame) != HEADER_SIZE + nbytes:
                    raise FrameError(1 - rank, "short frame in the benchmark")
        except BaseException as e:
            errors.append(e)

    def timed(plan: dict[int, tuple[bool, bool]]) -> float:
        errors: list = []
        threads = [
            threading.Thread(target=exchange, args=(r, s, rc, errors))
            for r, (s, rc) in plan.items()
        ]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        if errors:
            raise errors[0]
        return elapsed

    one, two = [], []
    try:
        for _ in range(repeats):
            one.append(timed({0: (True, False), 1: (False, True)}))
            two.append(timed({0: (True, True), 1: (True, True)}))
    finally:
        t0.close()
        t1.close()
    one_s = sorted(one)[len(one) // 2]
    two_s = sorted(two)[len(two) // 2]
    mb = nbytes / 1e6
    return {
        "nbytes": nbytes,
        "repeats": repeats,
        "one_way_s": one_s,
        "two_way_s": two_s,
        "one_way_MBps": mb / one_s,
        "two_way_MBps": mb / two_s,
        "two_way_total_MBps": 2 * mb / two_s,
    }
