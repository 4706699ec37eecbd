"""Runtime: messages, accounting, Lamport rounds, correlation sources, frame checks."""

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc.correlations import DealtSink, DealtSource, MaterialError
from mpc.ring import field, ring
from mpc.shares import Shared, reconstruct, share_plain
from net.accounting import merge_reports
from net.errors import FrameError, PeerTimeout, SessionMismatch, SpecMismatch
from net.framing import HEADER_SIZE, KIND_ONLINE, Header
from net.local import run_local
from net.runtime import Runtime
from net.transport import InMemoryNetwork


@settings(max_examples=30, deadline=None)
@given(k=st.integers(1, 64), n=st.integers(0, 50), seed=st.integers(0, 2**32))
def test_share_reconstruct_ring(k, n, seed):
    r = ring(k)
    rng = np.random.default_rng(seed)
    x = r.reduce(rng.integers(0, 2**63, n, dtype=np.uint64))
    a, b = share_plain(x, r, rng)
    assert (reconstruct(a, b) == x).all()
    assert ((a + b).data < r.modulus).all() if k < 64 else True


@settings(max_examples=20, deadline=None)
@given(p=st.sampled_from([2, 3, 67, 131, 65537]), n=st.integers(0, 50), seed=st.integers(0, 99))
def test_share_reconstruct_field(p, n, seed):
    f = field(p)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, p, n).astype(np.uint64)
    a, b = share_plain(x, f, rng)
    assert (reconstruct(a, b) == x).all()


@pytest.mark.parametrize("mode", ["live", "dealt"])
def test_beaver_style_program_and_accounting(mode):
    R = ring(20)
    rng = np.random.default_rng(1)
    x = R.reduce(rng.integers(0, 2**20, (4, 5)))
    y = R.reduce(rng.integers(0, 2**20, (4, 5)))

    def prog(rt):
        xs = rt.input(1, R, x.shape, x if rt.rank == 1 else None)
        ys = rt.input(2, R, y.shape, y if rt.rank == 2 else None)
        with rt.scope("mul"):
            a = rt.random_shared(R, x.shape)
            b = rt.random_shared(R, x.shape)
            if rt.is_dealer:
                rt.dealer_shared(R, x.shape, R.mul(a, b))
                return None
            c = rt.dealer_shared(R, x.shape)
            dx, dy = rt.exchange([(R, (xs - a).data), (R, (ys - b).data)])
            ex, ey = R.add((xs - a).data, dx), R.add((ys - b).data, dy)
            z = c + a * ey + b * ex
            if rt.rank == 1:
                z = z + R.mul(ex, ey)
        with rt.scope("open"):
            return rt.open(z)

    run = run_local(prog, mode=mode)
    assert (run.results[1] == R.mul(x, y)).all()
    for p in (1, 2):
        m = run.reports[p]["scopes"]["mul"]
        assert m["online_sent"] == 2 * R.nbytes(20) and m["rounds"] == 1
        assert m["offline_recv"] == (R.nbytes(20) if p == 2 else 0)
        assert run.reports[p]["scopes"]["open"]["rounds"] == 1
        assert run.reports[p]["total"]["rounds"] == 2
    assert run.reports[0]["scopes"]["mul"]["offline_sent"] == R.nbytes(20)


def test_lamport_rounds_sequential_and_parallel():
    R = ring(8)

    def prog(rt):
        if rt.is_dealer:
            return None
        with rt.scope("pingpong"):  # P1 -> P2 -> P1 -> P2: 3 sequential messages
            for i in range(3):
                if (rt.rank == 1) == (i % 2 == 0):
                    rt.send([(R, np.zeros(3, np.uint64))])
                else:
                    rt.recv([(R, (3,))])
        with rt.scope("parallel"):  # 5 independent sends each way before receiving
            for _ in range(5):
                rt.send([(R, np.zeros(2, np.uint64))])
            for _ in range(5):
                rt.recv([(R, (2,))])
        return rt.clock

    run = run_local(prog)
    merged = merge_reports(run.reports)
    assert merged["scopes"]["pingpong"]["rounds"] == 3
    assert merged["scopes"]["parallel"]["rounds"] == 1
    assert merged["total"]["rounds"] == 4


def test_nested_scopes_roll_up():
    R = ring(16)

    def prog(rt):
        if rt.is_dealer:
            return None
        with rt.scope("layer0"):
            with rt.scope("a"):
                rt.exchange([(R, np.zeros(10, np.uint64))])
            with rt.scope("b"):
                rt.exchange([(R, np.zeros(6, np.uint64))])
        return None

    run = run_local(prog)
    sc = run.reports[1]["scopes"]
    assert sc["layer0.a"]["online_sent"] == 20 and sc["layer0.b"]["online_sent"] == 12
    assert sc["layer0"]["online_sent"] == 32 and sc["layer0"]["rounds"] == 2


def test_dealt_material_matches_live_and_checks_program():
    R = ring(32)

    def prog(rt):
        r = rt.random_shared(R, (7,))
        c = rt.dealer_shared(R, (7,), R.mul(r, r) if rt.is_dealer else None)
        if rt.is_dealer:
            return None
        return rt.open(c - r * 0), rt.open(r)

    for mode in ("live", "dealt"):
        run = run_local(prog, mode=mode)
        c, r = run.results[1]
        assert (c == R.mul(r, r)).all()

    streams = {1: io.BytesIO(), 2: io.BytesIO()}
    DealtSink(streams, "model-a").finish()
    streams[1].seek(0)
    with pytest.raises(MaterialError, match="model-a"):
        DealtSource(streams[1], "model-b", 1)
    streams[2].seek(0)
    with pytest.raises(MaterialError, match="P2, not P1"):
        DealtSource(streams[2], "model-a", 1)


def test_material_exhausted_and_left_over():
    streams = {1: io.BytesIO(), 2: io.BytesIO()}
    sink = DealtSink(streams, "p")
    sink.put(2, b"abc")
    sink.finish()  # the writer thread has written everything
    streams[2].seek(0)
    src = DealtSource(streams[2], "p", 2)
    assert src.take(2) == b"ab"
    with pytest.raises(MaterialError, match="left over"):
        src.finish()
    with pytest.raises(MaterialError, match="exhausted"):
        src.take(5)


def _pair(session=7, timeout=0.5):
    net = InMemoryNetwork()
    rts = {}
    for r in (1, 2):
        rts[r] = Runtime(r, net.endpoint(r), session=session, timeout=timeout, source=_NullSource())
    return net, rts


class _NullSource:
    seed = bytes(16)

    def take(self, n):
        raise AssertionError

    def finish(self):
        pass


def test_spec_mismatch_and_timeout():
    _, rts = _pair()
    rts[1].send([(ring(8), np.zeros(4, np.uint64))])
    with pytest.raises(SpecMismatch):
        rts[2].recv([(ring(16), (4,))])
    with pytest.raises(PeerTimeout, match="P1"):
        rts[2].recv([(ring(8), (4,))])


def test_frame_checks_session_seq_truncation():
    net, rts = _pair()
    ep = net.endpoint(1)
    h = Header(KIND_ONLINE, 1, 2, 99, 0, 0, 0, 0)
    ep.send(2, h.pack())
    with pytest.raises(SessionMismatch):
        rts[2].recv([])
    _, rts = _pair()
    h = Header(KIND_ONLINE, 1, 2, 7, 5, 0, 0, 0)  # replayed / out of order sequence number
    rts[1].transport.send(2, h.pack())
    with pytest.raises(FrameError, match="sequence"):
        rts[2].recv([])
    _, rts = _pair()
    h = Header(KIND_ONLINE, 1, 2, 7, 0, 0, 0, 10)
    rts[1].transport.send(2, h.pack() + b"abc")
    with pytest.raises(FrameError, match="payload"):
        rts[2].recv([])
    _, rts = _pair()
    rts[1].transport.send(2, b"\0" * (HEADER_SIZE - 1))
    with pytest.raises(FrameError, match="truncated"):
        rts[2].recv([])


def test_shared_local_ops_and_phantoms():
    R = ring(12)
    x = R.reduce(np.arange(24).reshape(2, 3, 4))
    a, b = share_plain(x, R)
    s = (a * 3 + 5).reshape(6, 4)[1:3].T.sum(axis=0)
    t = (b * 3 + 5).reshape(6, 4)[1:3].T.sum(axis=0)
    ref = R.reduce(((x * 3 + 5).reshape(6, 4)[1:3].T.sum(axis=0)).astype(np.int64))
    assert (reconstruct(s, t) == ref).all()
    ph = Shared.phantom(R, (2, 3, 4))
    q = (ph * 3 + 5).reshape(6, 4)[1:3].T.sum(axis=0)
    assert q.is_phantom and q.shape == s.shape
    assert "phantom" in repr(q) and "P1" in repr(a)
    assert (reconstruct(a.reduce(5), b.reduce(5)) == x % 32).all()


@settings(max_examples=30, deadline=None)
@given(k=st.integers(16, 64), f=st.integers(0, 12), seed=st.integers(0, 99))
def test_fixedpoint_round_trip(k, f, seed):
    from mpc.fixedpoint import decode, encode

    r = ring(k)
    rng = np.random.default_rng(seed)
    bound = min(2.0 ** (k - 2 - f), 1e6)
    x = rng.uniform(-bound, bound, 20)
    y = decode(encode(x, f, r), f, r)
    assert np.all(np.abs(y - x) <= 2.0 ** (-f - 1) + 1e-9)
    with pytest.raises(OverflowError):
        encode([2.0 ** (k - f)], f, r)


def test_barrier_equalises_clocks():
    R = ring(8)

    def prog(rt):
        if rt.is_dealer:
            return None
        if rt.rank == 1:  # P1 -> P2 one way: P2's clock runs ahead
            rt.send([(R, np.zeros(1, np.uint64))])
        else:
            rt.recv([(R, (1,))])
        rt.barrier()
        return rt.clock

    run = run_local(prog)
    assert run.results[1] == run.results[2] == 2


@pytest.mark.parametrize("mode", ["live", "dealt"])
def test_helper_barrier_holds_the_helper_until_both_parties_pass(mode):
    """barrier(helper=True): live, P0 flushes the material the parties still need and
    deals what follows only after both reached it; dealt, nothing changes."""
    R, events = ring(16), []

    def prog(rt):
        before = rt.dealer_shared(R, (3,), np.arange(3) if rt.is_dealer else None)
        if not rt.is_dealer:
            events.append(f"P{rt.rank} at")
        rt.barrier(helper=True)
        if rt.is_dealer:
            events.append("P0 past")
        after = rt.dealer_shared(R, (2,), np.array([7, 9]) if rt.is_dealer else None)
        return None if rt.is_dealer else (before.data, after.data)

    run = run_local(prog, mode=mode, timeout=10)
    (b1, a1), (b2, a2) = run.results[1], run.results[2]
    assert list(R.add(b1, b2)) == [0, 1, 2] and list(R.add(a1, a2)) == [7, 9]
    if mode == "live":
        assert events.index("P0 past") > max(events.index("P1 at"), events.index("P2 at"))


def test_dealt_sink_writes_in_order_and_raises_a_write_error():
    """The writer thread keeps the order of puts, bounds what is pending, and a failing
    stream surfaces as an error of put or finish (never a silent short file)."""
    streams = {1: io.BytesIO(), 2: io.BytesIO()}
    sink = DealtSink(streams, "p")
    sink.MAX_PENDING = 10  # forces put to wait for the writer
    chunks = [bytes([i]) * (i + 1) for i in range(50)]
    for c in chunks:
        sink.put(1, c)
    sink.finish()
    assert streams[1].getvalue().endswith(b"".join(chunks))

    class Full(io.BytesIO):
        def write(self, b):
            raise OSError(28, "No space left on device")

    bad = DealtSink({1: io.BytesIO(), 2: io.BytesIO()}, "p")
    bad.streams[2] = Full()
    with pytest.raises(OSError, match="No space"):
        for _ in range(1000):
            bad.put(2, b"x" * 100)
        bad.finish()


@pytest.mark.parametrize("mode", ["live", "dealt"])
def test_random_bits_are_xor_shares_of_the_dealers_bits_and_cost_nothing(mode):
    shape = (3, 1000)

    def prog(rt):
        with rt.scope("bits"):
            bits = rt.random_bits(shape)
            shared = rt.random_shared(ring(1), shape)  # the same streams, uint64 and reduced
        assert bits.dtype == np.uint8 and bits.shape == shape and int(bits.max()) <= 1
        return bits, shared if rt.is_dealer else shared.data

    run = run_local(prog, mode=mode)
    (b0, r0), (b1, r1), (b2, r2) = (run.results[p] for p in (0, 1, 2))
    assert ((b1 ^ b2) == b0).all() and 0.45 < b0.mean() < 0.55
    assert ((r1 ^ r2) == r0).all()
    for p in (1, 2):
        s = run.reports[p]["scopes"]["bits"]
        assert s["online_sent"] == s["offline_recv"] == s["rounds"] == 0
