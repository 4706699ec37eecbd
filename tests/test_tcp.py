"""TcpTransport on localhost: parties run as threads of the test process.

Byte counters include the handshake: after set-up every connected pair has exchanged one
hello frame each way, so ``bytes_sent[peer] == HANDSHAKE_FRAME_SIZE + sum(frame sizes)``.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from net.errors import (
    ConfigError,
    FrameError,
    HandshakeError,
    PeerDisconnected,
    PeerTimeout,
    SessionMismatch,
)
from net.framing import HEADER_SIZE, KIND_OFFLINE, KIND_ONLINE, Header, parse_header
from net.tcp import HANDSHAKE_FRAME_SIZE, TcpTransport, free_ports, measure_throughput

SESSION = 0xC0FFEE


def frame(sender, receiver, seq, payload=b"", session=SESSION, kind=KIND_ONLINE) -> bytes:
    h = Header(kind, sender, receiver, session, seq, 7, 0, len(payload))
    return h.pack() + payload


def addresses(n=3):
    return {r: ("127.0.0.1", p) for r, p in enumerate(free_ports(n))}


@pytest.fixture
def opened():
    """Collects transports and closes them after the test whatever happened."""
    items: list[TcpTransport] = []
    yield items
    for t in items:
        t.close()


def build(opened, addrs, specs, session=SESSION, timeout=10.0, **kw):
    """Construct TcpTransports concurrently; specs: {rank: extra kwargs}. Errors re-raised."""
    out: dict[int, object] = {}

    def run(rank, extra):
        try:
            args = {"session": session, "connect_timeout": timeout, **kw, **extra}
            out[rank] = TcpTransport(rank, addrs, **args)
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            out[rank] = e

    threads = [threading.Thread(target=run, args=(r, x)) for r, x in specs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 10)
    for v in out.values():
        if isinstance(v, TcpTransport):
            opened.append(v)
    for v in out.values():
        if isinstance(v, BaseException):
            raise v
    return out


def test_three_parties_exchange_frames_and_count_bytes(opened):
    addrs = addresses()
    ts = build(opened, addrs, {0: {}, 1: {}, 2: {}})
    sent: dict[tuple[int, int], list[bytes]] = {}
    for a in range(3):
        for b in range(3):
            if a != b:
                payloads = [b"", b"x" * 10, bytes(range(256)) * 40]
                sent[a, b] = [frame(a, b, i, p) for i, p in enumerate(payloads)]
                for f in sent[a, b]:
                    ts[a].send(b, f)
    for (a, b), frames in sent.items():
        got = [ts[b].recv(a, timeout=5) for _ in frames]
        assert got == frames
    for (a, b), frames in sent.items():
        total = HANDSHAKE_FRAME_SIZE + sum(len(f) for f in frames)
        assert ts[a].bytes_sent[b] == total
        assert ts[b].bytes_received[a] == total
        assert ts[a].frames_sent[b] == ts[b].frames_received[a] == 1 + len(frames)


def test_handshake_alone_is_counted(opened):
    ts = build(opened, addresses(2), {0: {}, 1: {}})
    assert dict(ts[0].bytes_sent) == dict(ts[0].bytes_received) == {1: HANDSHAKE_FRAME_SIZE}
    assert dict(ts[1].frames_sent) == dict(ts[1].frames_received) == {0: 1}
    assert HANDSHAKE_FRAME_SIZE == HEADER_SIZE + 8


def test_simultaneous_50mb_sends_both_ways(opened):
    addrs = addresses()
    ts = build(opened, addrs, {1: {"peers": [2]}, 2: {"peers": [1]}})
    n = 50_000_000
    payloads = {1: b"\x01" * n, 2: b"\x02" * n}
    got: dict[int, bytes] = {}
    errors: list[BaseException] = []

    def party(me, other):
        try:
            ts[me].send(other, frame(me, other, 0, payloads[me], kind=KIND_OFFLINE))
            got[me] = ts[me].recv(other, timeout=30)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [
        threading.Thread(target=party, args=(1, 2)),
        threading.Thread(target=party, args=(2, 1)),
    ]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert time.monotonic() - start < 30
    assert got[1][HEADER_SIZE:] == payloads[2]
    assert got[2][HEADER_SIZE:] == payloads[1]
    assert ts[1].bytes_sent[2] == ts[2].bytes_received[1] == HANDSHAKE_FRAME_SIZE + HEADER_SIZE + n


def test_listener_raises_peer_timeout_when_peer_never_connects(opened):
    addrs = addresses(2)
    start = time.monotonic()
    with pytest.raises(PeerTimeout) as info:
        build(opened, addrs, {0: {}}, timeout=1.0)
    assert time.monotonic() - start < 3
    assert info.value.peer == 1
    assert "never connected" in str(info.value) and "1 s" in str(info.value)


def test_connector_raises_peer_timeout_naming_the_peer(opened):
    addrs = addresses(2)  # nobody listens on P0's port
    start = time.monotonic()
    with pytest.raises(PeerTimeout) as info:
        build(opened, addrs, {1: {}}, timeout=1.0)
    assert time.monotonic() - start < 3
    assert info.value.peer == 0
    assert "could not connect" in str(info.value)


def test_connector_retries_until_listener_appears(opened):
    addrs = addresses(2)
    out = {}

    def late_listener():
        time.sleep(0.5)
        out[0] = TcpTransport(0, addrs, SESSION, connect_timeout=5)

    t = threading.Thread(target=late_listener)
    t.start()
    try:
        p1 = TcpTransport(1, addrs, SESSION, connect_timeout=5)
        opened.append(p1)
    finally:
        t.join()
        if 0 in out:
            opened.append(out[0])
    p1.send(0, frame(1, 0, 0, b"hi"))
    assert out[0].recv(1, timeout=5) == frame(1, 0, 0, b"hi")


def test_recv_timeout(opened):
    ts = build(opened, addresses(2), {0: {}, 1: {}})
    start = time.monotonic()
    with pytest.raises(PeerTimeout) as info:
        ts[0].recv(1, timeout=0.2)
    assert 0.15 < time.monotonic() - start < 2
    assert info.value.peer == 1


def test_closed_peer_gives_peer_disconnected_after_pending_frames(opened):
    ts = build(opened, addresses(2), {0: {}, 1: {}})
    last = frame(1, 0, 0, b"last words")
    ts[1].send(0, last)
    ts[1].close()
    ts[1].close()  # idempotent
    assert ts[0].recv(1, timeout=5) == last
    for _ in range(2):  # sticky
        with pytest.raises(PeerDisconnected) as info:
            ts[0].recv(1, timeout=5)
        assert info.value.peer == 1
    with pytest.raises(PeerDisconnected):
        ts[1].send(0, frame(1, 0, 1))
    with pytest.raises(PeerDisconnected):  # the closing side itself
        ts[1].recv(0, timeout=1)
    # Sending to a peer that is gone fails once the kernel notices (EPIPE / reset).
    with pytest.raises(PeerDisconnected):
        for i in range(200):
            ts[0].send(1, frame(0, 1, i, bytes(65536)))
            time.sleep(0.005)


def test_oversized_frame_is_a_frame_error(opened):
    ts = build(opened, addresses(2), {0: {"max_frame": 1000}, 1: {}})
    ok = frame(1, 0, 0, bytes(1000))
    ts[1].send(0, ok)
    ts[1].send(0, frame(1, 0, 1, bytes(1001)))
    assert ts[0].recv(1, timeout=5) == ok
    for _ in range(2):
        with pytest.raises(FrameError) as info:
            ts[0].recv(1, timeout=5)
        assert info.value.peer == 1 and "exceeds the limit" in str(info.value)
    # The receiver shut the connection down: the sender learns about it.
    with pytest.raises(PeerDisconnected):
        ts[1].recv(0, timeout=5)


def test_garbage_header_is_a_frame_error(opened):
    ts = build(opened, addresses(2), {0: {}, 1: {}})
    bad = bytearray(frame(1, 0, 0, b"abc"))
    bad[0:2] = b"XX"
    ts[1].send(0, bytes(bad))
    with pytest.raises(FrameError, match="bad magic"):
        ts[0].recv(1, timeout=5)


def test_frame_claiming_another_sender_is_a_frame_error(opened):
    ts = build(opened, addresses(3), {0: {"peers": [1]}, 1: {"peers": [0]}})
    ts[1].send(0, frame(2, 0, 0, b"spoof"))
    with pytest.raises(FrameError, match="claims sender P2"):
        ts[0].recv(1, timeout=5)


def test_send_checks_the_length_field(opened):
    ts = build(opened, addresses(2), {0: {}, 1: {}})
    with pytest.raises(ValueError):
        ts[0].send(1, frame(0, 1, 0, b"abc") + b"extra")
    with pytest.raises(ValueError):
        ts[0].send(1, b"short")
    with pytest.raises(ConfigError):
        ts[0].send(2, frame(0, 2, 0))


def test_wrong_session_handshake_is_rejected(opened):
    addrs = addresses(3)
    out = {}

    def p0():
        try:
            out[0] = TcpTransport(0, addrs, SESSION, peers=[2], connect_timeout=5)
        except BaseException as e:  # noqa: BLE001
            out[0] = e

    t = threading.Thread(target=p0)
    t.start()
    try:
        with pytest.raises(SessionMismatch) as info:
            TcpTransport(2, addrs, SESSION + 1, peers=[0], connect_timeout=5)
        assert info.value.peer == 0
        good = TcpTransport(2, addrs, SESSION, peers=[0], connect_timeout=5)
        opened.append(good)
    finally:
        t.join()
    assert isinstance(out[0], TcpTransport)
    opened.append(out[0])
    assert [type(e) for e in out[0].rejected] == [SessionMismatch]
    good.send(0, frame(2, 0, 0, b"ok"))
    assert out[0].recv(2, timeout=5) == frame(2, 0, 0, b"ok")


def test_unknown_and_duplicate_ranks_are_rejected(opened):
    addrs = addresses(4)
    out = {}

    def p0():
        try:
            out[0] = TcpTransport(0, addrs, SESSION, peers=[1, 2], connect_timeout=5)
        except BaseException as e:  # noqa: BLE001
            out[0] = e

    t = threading.Thread(target=p0)
    t.start()
    try:
        with pytest.raises(HandshakeError, match="does not expect"):
            TcpTransport(3, addrs, SESSION, peers=[0], connect_timeout=5)
        first = TcpTransport(1, addrs, SESSION, peers=[0], connect_timeout=5)
        opened.append(first)
        with pytest.raises(HandshakeError, match="already connected"):
            TcpTransport(1, addrs, SESSION, peers=[0], connect_timeout=5)
        opened.append(TcpTransport(2, addrs, SESSION, peers=[0], connect_timeout=5))
    finally:
        t.join()
    assert isinstance(out[0], TcpTransport)
    opened.append(out[0])
    assert [type(e) for e in out[0].rejected] == [HandshakeError, HandshakeError]


def test_listener_timeout_mentions_rejections(opened):
    addrs = addresses(2)
    out = {}

    def p0():
        try:
            out[0] = TcpTransport(0, addrs, SESSION, connect_timeout=1.5)
        except BaseException as e:  # noqa: BLE001
            out[0] = e

    t = threading.Thread(target=p0)
    t.start()
    with pytest.raises(SessionMismatch):
        TcpTransport(1, addrs, 99, connect_timeout=1)
    t.join()
    assert isinstance(out[0], PeerTimeout)
    assert "rejected 1 connection" in str(out[0])


def test_config_errors():
    addrs = addresses(2)
    with pytest.raises(ConfigError):
        TcpTransport(0, addrs, SESSION, peers=[5])
    with pytest.raises(ConfigError):
        TcpTransport(0, addrs, SESSION, peers=[0])
    with pytest.raises(ConfigError):
        TcpTransport(0, addrs, -1)
    busy = socket.socket()
    busy.bind(addrs[0])
    busy.listen()
    try:
        with pytest.raises(ConfigError, match="cannot listen"):
            TcpTransport(0, addrs, SESSION, connect_timeout=1)
    finally:
        busy.close()


def test_close_while_receiving_wakes_the_receiver(opened):
    ts = build(opened, addresses(2), {0: {}, 1: {}})
    errors = []

    def waiter():
        try:
            ts[0].recv(1, timeout=10)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.1)
    ts[0].close()
    t.join(5)
    assert not t.is_alive()
    assert isinstance(errors[0], PeerDisconnected)
    assert "closed locally" in str(errors[0])


def test_free_ports_are_distinct_and_bindable():
    ports = free_ports(5)
    assert len(set(ports)) == 5
    for p in ports:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", p))


def test_measure_throughput_reports_rates():
    r = measure_throughput(1 << 20, 2)
    assert r["nbytes"] == 1 << 20 and r["repeats"] == 2
    for key in ("one_way_MBps", "two_way_MBps", "two_way_total_MBps"):
        assert r[key] > 0
    assert r["two_way_total_MBps"] == pytest.approx(2 * r["two_way_MBps"])


# ------------------------------------------------------------------ TLS through the hook


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def make(name):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        d = tmp_path_factory.mktemp(name)
        cert_path, key_path = d / "cert.pem", d / "key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return str(cert_path), str(key_path)

    return {"good": make("qbert-test"), "other": make("someone-else")}


def tls_factory(cert, key, trust):
    calls = []

    def factory(role, peer):
        calls.append((role, peer))
        if role == "server":
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.verify_mode = ssl.CERT_REQUIRED
        else:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_cert_chain(cert, key)
        ctx.load_verify_locations(trust)
        return ctx

    factory.calls = calls
    return factory


def test_tls_hook_full_duplex(opened, tls_files):
    cert, key = tls_files["good"]
    factories = {r: tls_factory(cert, key, cert) for r in range(3)}
    addrs = addresses()
    ts = build(opened, addrs, {r: {"ssl_context_factory": factories[r]} for r in range(3)})
    assert sorted(factories[0].calls) == [("server", 1), ("server", 2)]
    assert sorted(factories[1].calls) == [("client", 0), ("server", 2)]
    assert sorted(factories[2].calls) == [("client", 0), ("client", 1)]
    n = 4_000_000
    errors = []

    def party(me):
        try:
            for other in range(3):
                if other != me:
                    for i in range(3):
                        ts[me].send(other, frame(me, other, i, bytes([me]) * n))
            for other in range(3):
                if other != me:
                    for i in range(3):
                        f = ts[me].recv(other, timeout=30)
                        assert f == frame(other, me, i, bytes([other]) * n)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=party, args=(r,)) for r in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    expected = HANDSHAKE_FRAME_SIZE + 3 * (HEADER_SIZE + n)
    assert ts[0].bytes_sent[1] == ts[1].bytes_received[0] == expected
    ts[2].close()
    with pytest.raises(PeerDisconnected):
        ts[0].recv(2, timeout=5)


def test_tls_handshake_failure_is_typed(opened, tls_files):
    cert, key = tls_files["good"]
    other_cert, other_key = tls_files["other"]
    addrs = addresses(2)
    out = {}

    def p0():
        try:
            f = tls_factory(cert, key, cert)
            out[0] = TcpTransport(0, addrs, SESSION, connect_timeout=1.5, ssl_context_factory=f)
        except BaseException as e:  # noqa: BLE001
            out[0] = e

    t = threading.Thread(target=p0)
    t.start()
    with pytest.raises(HandshakeError, match="TLS"):  # P1 does not trust P0's certificate
        f1 = tls_factory(other_cert, other_key, other_cert)
        TcpTransport(1, addrs, SESSION, connect_timeout=1.5, ssl_context_factory=f1)
    t.join()
    assert isinstance(out[0], PeerTimeout)


# ------------------------------------------------------------------ header fuzzing


@settings(max_examples=300, deadline=None)
@given(buf=st.binary(min_size=0, max_size=64), peer=st.integers(0, 3))
def test_parse_header_on_random_bytes_fails_only_with_frame_error(buf, peer):
    try:
        h = parse_header(buf, peer, 1 << 20)
    except FrameError:
        return
    assert len(buf) == HEADER_SIZE and h.sender == peer and h.length <= 1 << 20


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from([0, 1, 2]),
    peer=st.integers(0, 255),
    receiver=st.integers(0, 255),
    session=st.integers(0, 2**64 - 1),
    seq=st.integers(0, 2**64 - 1),
    clock=st.integers(0, 2**32 - 1),
    spec=st.integers(0, 2**32 - 1),
    length=st.integers(0, 2**32 - 1),
)
def test_parse_header_roundtrip(kind, peer, receiver, session, seq, clock, spec, length):
    h = Header(kind, peer, receiver, session, seq, clock, spec, length)
    if length > 1 << 31:
        with pytest.raises(FrameError):
            parse_header(h.pack(), peer)
    else:
        assert parse_header(h.pack(), peer) == h


def test_dealer_frames_read_ahead_within_budget_unless_waiting_elsewhere(opened):
    # P2 holds at most ~budget bytes of P0's frames while its program computes; once it
    # waits on P1, its receiver reads on (P0 never stalls behind a party waiting on P1)
    addrs = addresses()
    ts = build(opened, addrs, {0: {}, 1: {}, 2: {}})
    p2 = ts[2]
    p2.dealer_budget = 3000
    frames = [frame(0, 2, i, bytes([i]) * 1000, kind=KIND_OFFLINE) for i in range(1, 9)]
    sender = threading.Thread(target=lambda: [ts[0].send(2, f) for f in frames], daemon=True)
    sender.start()
    time.sleep(0.5)
    link = p2._links[0]
    held = link.queued
    assert 0 < held <= 3000 + len(frames[0])  # held back (TCP buffers keep the rest)
    threading.Timer(0.5, lambda: ts[1].send(2, frame(1, 2, 1, b"x"))).start()
    assert p2.recv(1, timeout=5) == frame(1, 2, 1, b"x")
    assert link.queued == sum(len(f) for f in frames)  # read on while P2 waited on P1
    got = [p2.recv(0, timeout=5) for _ in frames]  # in order, all of them
    assert got == frames
    sender.join(5)
    assert link.queued == 0
