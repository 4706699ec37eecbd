"""Fuzzing the frame parser and the runtime's receive path: typed errors only, no hangs.

Two paths: a fake transport hands crafted frames straight to ``Runtime`` (fast, many
examples), and a real ``TcpTransport`` receives the bytes from a raw socket that did the
handshake (stream splitting, truncation, oversized lengths, closes mid-frame).
"""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpc.packing import pack
from mpc.prg import SEED_BYTES
from mpc.ring import ring
from net.errors import FrameError, MPCError, PeerTimeout, SessionMismatch, SpecMismatch
from net.framing import (
    HEADER_SIZE,
    KIND_CONTROL,
    KIND_OFFLINE,
    KIND_ONLINE,
    Header,
    parse_header,
    spec_digest,
)
from net.hosts import local_hosts
from net.runtime import Runtime
from net.tcp import HANDSHAKE_FRAME_SIZE, TcpTransport, _hello
from net.transport import Transport

SESSION = 0x5E55_1011
MAX_FRAME = 4096
R = ring(32)
SPEC = [(R, (4,))]
GOOD_SPEC = spec_digest(SPEC)
GOOD_PAYLOAD_LEN = R.nbytes(4)


class _Seeded:
    seed = bytes(SEED_BYTES)

    def take(self, nbytes):  # pragma: no cover
        raise AssertionError

    def finish(self):
        pass


class FakeTransport(Transport):
    """Hands out the queued frames, then times out like a silent peer."""

    def __init__(self, rank, frames):
        super().__init__(rank)
        self.frames = list(frames)

    def _send(self, peer, frame):
        pass

    def _recv(self, peer, timeout):
        if not self.frames:
            raise PeerTimeout(peer, f"nothing received within {timeout} s")
        return self.frames.pop(0)


def runtime(frames, rank=1) -> Runtime:
    return Runtime(
        rank,
        FakeTransport(rank, frames),
        session=SESSION,
        source=_Seeded(),
        timeout=0.05,
        max_frame=MAX_FRAME,
    )


def frame(
    kind=KIND_ONLINE,
    sender=2,
    receiver=1,
    session=SESSION,
    seq=0,
    clock=0,
    spec=GOOD_SPEC,
    payload=None,
    length=None,
) -> bytes:
    if payload is None:
        payload = pack(np.arange(4, dtype=np.uint64), 32)
    n = len(payload) if length is None else length
    return Header(kind, sender, receiver, session, seq, clock, spec, n).pack() + payload


def receive_all(rt: Runtime, n: int) -> None:
    """Up to ``n`` receives; anything but success or an MPCError fails the test."""
    for _ in range(n):
        try:
            out = rt.recv(SPEC)
        except MPCError:
            return
        assert out[0].shape == (4,) and out[0].dtype == np.uint64


# ------------------------------------------------------------------ runtime, fake transport

fields = st.fixed_dictionaries(
    {
        "kind": st.sampled_from([KIND_ONLINE, KIND_OFFLINE, KIND_CONTROL]),
        "sender": st.sampled_from([2, 2, 2, 0, 1, 255]),
        "receiver": st.sampled_from([1, 1, 1, 0, 2]),
        "session": st.sampled_from([SESSION, SESSION, SESSION ^ 1, 0]),
        "seq": st.sampled_from([0, 0, 0, 1, 2**64 - 1]),
        "clock": st.integers(0, 2**32 - 1),
        "spec": st.one_of(
            st.just(GOOD_SPEC),
            st.integers(0, 2**32 - 1),
            st.builds(
                lambda k, n: spec_digest([(ring(k), (n,))]), st.integers(1, 64), st.integers(0, 9)
            ),
        ),
        "payload": st.one_of(st.just(None), st.binary(max_size=40)),
        "length": st.one_of(st.none(), st.integers(0, 2**32 - 1)),
    }
)


@settings(max_examples=300, deadline=None)
@given(
    frames=st.lists(
        st.one_of(fields.map(lambda f: frame(**f)), st.binary(max_size=80)), min_size=1, max_size=4
    )
)
def test_runtime_recv_raises_only_typed_errors(frames):
    receive_all(runtime(frames), len(frames) + 1)


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(max_size=120),
    kind=st.sampled_from([KIND_OFFLINE, KIND_CONTROL]),
    good_seed=st.booleans(),
    seq=st.sampled_from([0, 1, 1, 2]),
)
def test_correlation_and_seed_path_raise_only_typed_errors(data, kind, good_seed, seq):
    # P1 reading P0's seed frame, then material; the fuzzer writes one or both.
    seed = frame(KIND_CONTROL, 0, 1, spec=0, payload=bytes(SEED_BYTES)) if good_seed else data
    material = frame(kind, 0, 1, seq=seq, spec=0, payload=data)
    rt = Runtime(
        1, FakeTransport(1, [seed, material]), session=SESSION, timeout=0.05, max_frame=MAX_FRAME
    )
    try:
        rt.source.seed  # noqa: B018
        out = rt.take(R, (3,))
        assert out.shape == (3,)
    except MPCError:
        pass


def test_named_cases():
    good = frame()
    cases = {
        "wrong session": (frame(session=SESSION + 1), SessionMismatch, "another session"),
        "wrong spec": (frame(spec=spec_digest([(R, (5,))])), SpecMismatch, "rings or shapes"),
        "wrong ring": (frame(spec=spec_digest([(ring(16), (4,))])), SpecMismatch, "rings"),
        "oversized": (frame(length=MAX_FRAME + 1), FrameError, "exceeds the limit of 4096"),
        "truncated": (good[:-1], FrameError, "header says"),
        "short header": (good[:20], FrameError, "truncated frame header"),
        "other sender": (frame(sender=0), FrameError, "claims sender P0"),
        "misaddressed": (frame(receiver=0), FrameError, "addressed to P0"),
        "kind": (frame(kind=KIND_OFFLINE), FrameError, "kind 1, expected 0"),
        "bad payload size": (frame(payload=b"x" * 15), FrameError, "payload of 15 bytes"),
    }
    for name, (raw, err, text) in cases.items():
        try:
            runtime([raw]).recv(SPEC)
        except err as e:
            assert text in str(e) and str(e).startswith("P2: "), (name, e)
        else:
            raise AssertionError(f"{name}: accepted")
    rt = runtime([good, good])  # the same frame again: a replay
    rt.recv(SPEC)
    try:
        rt.recv(SPEC)
    except FrameError as e:
        assert "sequence 0, expected 1 (replayed or lost)" in str(e)
    else:
        raise AssertionError("replay accepted")


# ------------------------------------------------------------------ through TCP


def _tcp_victim():
    """P1's transport (listening for P2) and a raw socket that did P2's handshake."""
    hosts = local_hosts()
    box = {}

    def listen():
        box["t"] = TcpTransport(
            1, hosts.addresses, SESSION, peers=[2], connect_timeout=5, max_frame=MAX_FRAME
        )

    t = threading.Thread(target=listen)
    t.start()
    deadline = time.monotonic() + 5
    while True:
        try:
            sock = socket.create_connection(hosts.addresses[1], timeout=5)
            break
        except OSError:
            assert time.monotonic() < deadline, "listener never came up"
            time.sleep(0.01)
    sock.sendall(_hello(2, 1, SESSION, 0))
    got = b""
    while len(got) < HANDSHAKE_FRAME_SIZE:
        chunk = sock.recv(HANDSHAKE_FRAME_SIZE - len(got))
        assert chunk
        got += chunk
    t.join(10)
    return box["t"], sock


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(
        st.one_of(fields.map(lambda f: frame(**f)), st.binary(max_size=60)), min_size=1, max_size=3
    ),
    cut=st.integers(0, 200),
    close=st.booleans(),
)
def test_tcp_receive_path_raises_only_typed_errors(parts, cut, close):
    transport, sock = _tcp_victim()
    try:
        data = b"".join(parts)
        if not close:
            data = data[: max(len(data) - cut, 0)]  # possibly stop mid-frame and stay silent
        sock.sendall(data)
        if close:
            sock.close()
        rt = Runtime(
            1, transport, session=SESSION, source=_Seeded(), timeout=0.1, max_frame=MAX_FRAME
        )
        t0 = time.monotonic()
        receive_all(rt, len(parts) + 1)
        assert time.monotonic() - t0 < 0.1 * (len(parts) + 1) + 2, "receive path hung"
    finally:
        sock.close()
        transport.close()


def test_parse_header_limits():
    h = Header(KIND_ONLINE, 2, 1, SESSION, 0, 0, 0, MAX_FRAME)
    assert parse_header(h.pack(), 2, MAX_FRAME) == h
    for raw in (b"", b"QB", h.pack()[:-1], h.pack() + b"x"):
        try:
            parse_header(raw, 2, MAX_FRAME)
        except FrameError as e:
            assert "truncated" in str(e)
        else:
            raise AssertionError("accepted a header of the wrong size")
    assert HEADER_SIZE == 36
