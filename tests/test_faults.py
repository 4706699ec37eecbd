"""Faults and bad input: killed or silent peers, single-use dealt material, CLI errors."""

from __future__ import annotations

import argparse
import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc.correlations import DealtSink, DealtSource, MaterialError, dealt_paths
from mpc.prg import SEED_BYTES
from net.errors import MPCError, PeerDisconnected, PeerTimeout
from net.hosts import local_hosts
from net.party import deal, run_party
from net.runtime import Runtime
from net.tcp import HANDSHAKE_FRAME_SIZE, TcpTransport, _hello

sys.path.insert(0, str(Path(__file__).parent))
import tinyjob  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def tiny_args(**kw) -> argparse.Namespace:
    base = {"n": 8, "rounds": 2, "sleep": 0.0, "marker": 7, "fail": "none"}
    return argparse.Namespace(**{**base, **kw})


def one_line_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def established(port: int) -> int:
    """Established TCP connections whose local port is ``port`` (from /proc/net/tcp)."""
    n = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":
            n += 1
    return n


# ------------------------------------------------------------------ killed party


@pytest.mark.parametrize(
    "sig, timeout, error",
    [
        (signal.SIGKILL, 5.0, "PeerDisconnected"),
        (signal.SIGSTOP, 3.0, "Peer(Timeout|Disconnected)"),
    ],
)
def test_lost_party_makes_the_others_fail_naming_it(tmp_path, sig, timeout, error):
    """P2 killed (or hung) in the middle of the rounds: P0 and P1 exit 2 naming P2."""
    hosts = local_hosts(timeout=timeout)
    cfg = tmp_path / "hosts.toml"
    cfg.write_text(hosts.to_toml())
    procs = {
        r: subprocess.Popen(
            tinyjob.party_command(cfg, r, "--rounds", "200", "--sleep", "0.05"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for r in range(3)
    }
    try:
        ports = {r: hosts.addresses[r][1] for r in range(3)}
        deadline = time.monotonic() + 30
        while established(ports[0]) < 2 or established(ports[1]) < 1:
            assert time.monotonic() < deadline, "parties never connected"
            time.sleep(0.05)
        time.sleep(0.3)  # inside the sleeping rounds
        os.kill(procs[2].pid, sig)
        t_kill = time.monotonic()
        outs = {}
        for r in (0, 1):
            outs[r] = procs[r].communicate(timeout=timeout + 10)
            elapsed = time.monotonic() - t_kill
            assert procs[r].returncode == 2, outs[r]
            assert elapsed < timeout + 1, f"P{r} took {elapsed:.1f} s to notice"
            line = one_line_error(outs[r][1])
            assert re.match(f"qbert-mpc party: error: {error}: P2: ", line), line
            print(f"P{r} after {signal.Signals(sig).name} of P2 ({elapsed:.2f} s): {line}")
        if sig == signal.SIGKILL:
            procs[2].wait(5)
            assert procs[2].returncode == -signal.SIGKILL
    finally:
        for p in procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            for f in (p.stdout, p.stderr):
                f.close()
    assert all(gone(p.pid) for p in procs.values())


def _children(pid: int) -> list[int]:
    """Child pids of ``pid`` (from /proc/<pid>/task/*/children)."""
    out = []
    for f in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out += [int(c) for c in f.read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return out


def _role_and_config(pid: int) -> tuple[int, str] | None:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except (FileNotFoundError, ProcessLookupError):
        return None
    if "party" not in argv or "--role" not in argv:
        return None
    return int(argv[argv.index("--role") + 1][1]), argv[argv.index("--config") + 1]


def test_party_killed_under_the_launcher_fails_the_run_naming_it():
    """``qbert-mpc run``: P2 (a child of the launcher) SIGKILLed mid-inference; the run
    exits 2 within its --timeout with one line naming P2, and no party outlives it."""
    from net.hosts import load_hosts

    timeout = 5.0
    demo = ["--job", "demo", "--rows", "512", "--dim", "768", "--out-dim", "768"]
    argv = [sys.executable, "-m", "net.cli", "run", "--timeout", str(timeout), *demo]
    run = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    parties: dict[int, int] = {}
    try:
        deadline = time.monotonic() + 30
        while len(parties) < 3:
            assert run.poll() is None and time.monotonic() < deadline, "no three parties"
            for pid in _children(run.pid):
                if (found := _role_and_config(pid)) is not None:
                    parties[found[0]] = pid
                    config = found[1]
            time.sleep(0.02)
        ports = {r: a[1] for r, a in load_hosts(config).addresses.items()}
        while established(ports[0]) < 2 or established(ports[1]) < 1:
            assert run.poll() is None and time.monotonic() < deadline, "parties never connected"
            time.sleep(0.02)
        time.sleep(0.2)  # inside the inference (about 2 s of it at these sizes)
        os.kill(parties[2], signal.SIGKILL)
        t_kill = time.monotonic()
        _, err = run.communicate(timeout=timeout + 10)
        elapsed = time.monotonic() - t_kill
    finally:
        if run.poll() is None:
            for pid in [*parties.values(), run.pid]:
                os.kill(pid, signal.SIGKILL)
            run.communicate()
    assert run.returncode == 2, err
    assert elapsed < timeout + 2, f"the run took {elapsed:.1f} s to fail"
    line = one_line_error(err)
    assert line.startswith("qbert-mpc run: error: PartyFailed: ") and "P2" in line, line
    print(f"run after SIGKILL of P2 ({elapsed:.2f} s): {line}")
    for pid in parties.values():  # reaped by the launcher, process groups empty
        assert gone(pid)
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)


# ------------------------------------------------------------------ silent peers


def test_silent_connection_gives_peer_timeout():
    hosts = local_hosts(timeout=1.0)
    box = {}

    def listen():
        try:
            TcpTransport(0, hosts.addresses, hosts.session, peers=[1], connect_timeout=1.0)
        except BaseException as e:  # noqa: BLE001
            box["error"] = e

    t = threading.Thread(target=listen)
    t.start()
    time.sleep(0.1)
    with socket.create_connection(hosts.addresses[0], timeout=5):  # connects, says nothing
        t.join(10)
    err = box["error"]
    assert isinstance(err, PeerTimeout) and err.peer == 1, err


class _Seeded:
    seed = bytes(SEED_BYTES)

    def take(self, nbytes):  # pragma: no cover - not reached
        raise AssertionError

    def finish(self):
        pass


@pytest.mark.parametrize("say", [b"", b"QB\x01"])  # nothing, or half a header
def test_peer_that_stops_talking_after_the_handshake_times_out(say):
    from mpc.ring import ring

    hosts = local_hosts()
    box = {}

    def listen():
        box["t"] = TcpTransport(1, hosts.addresses, hosts.session, peers=[2], connect_timeout=5)

    t = threading.Thread(target=listen)
    t.start()
    deadline = time.monotonic() + 5
    while True:
        try:
            sock = socket.create_connection(hosts.addresses[1], timeout=5)
            break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    with sock:
        sock.sendall(_hello(2, 1, hosts.session, 0))
        assert len(sock.recv(HANDSHAKE_FRAME_SIZE, socket.MSG_WAITALL)) == HANDSHAKE_FRAME_SIZE
        t.join(10)
        sock.sendall(say)
        rt = Runtime(1, box["t"], session=hosts.session, source=_Seeded(), timeout=0.4)
        t0 = time.monotonic()
        with pytest.raises(PeerTimeout, match=r"^P2: nothing received within 0.4 s"):
            rt.recv([(ring(32), (4,))])
        assert time.monotonic() - t0 < 2
        box["t"].close()


# ------------------------------------------------------------------ single-use material


def _dealt_files(tmp_path, program="prog", payload=b"\x01" * 8):
    paths = dealt_paths(tmp_path, 0)
    paths[1].parent.mkdir(parents=True)
    with open(paths[1], "wb") as f1, open(paths[2], "wb") as f2:
        sink = DealtSink({1: f1, 2: f2}, program)
        sink.put(1, payload)
        sink.finish()
    return paths


def test_dealt_source_is_single_use(tmp_path):
    paths = _dealt_files(tmp_path)
    src = DealtSource.open(paths[1], "prog", 1)
    assert not paths[1].exists() and Path(str(paths[1]) + ".used").exists()
    assert len(src.seed) == SEED_BYTES and src.take(8) == b"\x01" * 8
    src.finish()
    src.close()
    with pytest.raises(MaterialError, match="already used by an earlier run") as info:
        DealtSource.open(paths[1], "prog", 1)
    assert "\n" not in str(info.value)
    with pytest.raises(MaterialError, match="no dealt material"):
        DealtSource.open(tmp_path / "run00009" / "P1.bin", "prog", 1)


def test_dealt_source_checks_program_before_claiming_and_needs_a_claim(tmp_path):
    paths = _dealt_files(tmp_path)
    with pytest.raises(MaterialError, match="dealt for program 'prog', not 'other'"):
        DealtSource.open(paths[2], "other", 2)
    assert paths[2].exists(), "material for another program is not burnt"
    a = DealtSource.open(paths[2], "prog", 2, claim=False)
    b = DealtSource.open(paths[2], "prog", 2, claim=False)
    with pytest.raises(MaterialError, match="claimed before use"):
        a.seed  # noqa: B018
    with pytest.raises(MaterialError, match="claimed before use"):
        a.take(1)
    a.claim()
    with pytest.raises(MaterialError, match="already used"):
        b.claim()  # the concurrent second run loses
    a.close()
    b.close()
    stream = io.BytesIO()
    DealtSink({1: stream}, "p")
    stream.seek(0)
    assert len(DealtSource(stream, "p", 1).seed) == SEED_BYTES  # in-memory sources need no claim


def test_run_party_refuses_material_used_twice(tmp_path):
    job, args = tinyjob.TINY, tiny_args()
    deal(job, args, tmp_path, runs=1, progress=False)

    def run_both():
        hosts = local_hosts(timeout=10)
        out = {}

        def party(r):
            try:
                out[r] = run_party(r, hosts, job, args, material=str(tmp_path), run=0)
            except BaseException as e:  # noqa: BLE001
                out[r] = e

        threads = [threading.Thread(target=party, args=(r,)) for r in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        return out

    first = run_both()
    assert first[1]["result"]["matches_plaintext"] is True, first
    second = run_both()
    for r in (1, 2):
        assert isinstance(second[r], MaterialError), second[r]
        assert "already used" in str(second[r]) and f"P{r}.bin" in str(second[r])
    # Another program's material is refused without being used up.
    deal(job, tiny_args(rounds=3), tmp_path / "b", runs=1, progress=False)
    with pytest.raises(MaterialError, match="dealt for program"):
        run_party(1, local_hosts(), job, args, material=str(tmp_path / "b"))
    assert dealt_paths(tmp_path / "b", 0)[1].exists()


@settings(max_examples=150, deadline=None)
@given(
    cut=st.integers(0, 200),
    flips=st.lists(st.integers(0, 10**6), max_size=3),
    junk=st.binary(max_size=64),
)
def test_corrupt_dealt_material_raises_only_material_errors(cut, flips, junk):
    stream = io.BytesIO()
    sink = DealtSink({1: stream}, "prog")
    sink.put(1, b"\x05" * 16)
    raw = bytearray(stream.getvalue())
    for f in flips:
        raw[f % len(raw)] ^= 0xFF
    raw = bytes(raw[: max(len(raw) - cut, 0)]) + junk
    try:
        src = DealtSource(io.BytesIO(raw), "prog", 1)
        src.take(16)
        src.finish()
    except MaterialError as e:
        assert "\n" not in str(e)


# ------------------------------------------------------------------ CLI input errors


def cli(*argv, script=False, timeout=60):
    head = [sys.executable, tinyjob.SCRIPT] if script else [sys.executable, "-m", "net.cli"]
    return subprocess.run([*head, *argv], capture_output=True, text=True, timeout=timeout, cwd=REPO)


BAD_CONFIGS = {
    "syntax": ("[session\nid = 1\n", "TOML syntax error"),
    "bad port": ('[parties.P0]\nhost = "a"\nport = 0\n', "1..65535"),
    "tls without certs": (
        "".join(f'[parties.P{r}]\nhost = "10.3.0.{r + 1}"\nport = 9000\n' for r in range(3)),
        "TLS is on but the host config has no [session] ca",
    ),
}


def test_cli_bad_input_is_one_line_exit_2(tmp_path):
    """Every case runs as its own ``qbert-mpc party`` process, all at once."""
    from concurrent.futures import ThreadPoolExecutor

    from net.certs import generate, tls_config

    cases = {}  # name -> (argv, fragment of the one-line error)
    for name, (text, fragment) in BAD_CONFIGS.items():
        cfg = tmp_path / f"{name.replace(' ', '_')}.toml"
        cfg.write_text(text)
        cases[name] = (["--config", str(cfg), "--role", "P1"], fragment)
    hosts = local_hosts(timeout=2)
    plain = tmp_path / "plain.toml"
    plain.write_text(hosts.to_toml())
    cases["missing material"] = (
        ["--config", str(plain), "--role", "P1", "--material", str(tmp_path / "none")],
        "MaterialError: no dealt material at",
    )
    cases["port in use"] = (
        ["--config", str(plain), "--role", "P0"],
        "Address already in use; another program (or an earlier party) holds port "
        f"{hosts.addresses[0][1]}: stop it, or give P0 another port",
    )
    generate(tmp_path / "c", days=1)
    good = tls_config(hosts, tmp_path / "c")
    swapped = good.with_tls(
        good.ca,
        {**good.party_certs, 1: good.party_certs[2]},
        {**good.party_keys, 1: good.party_keys[2]},
    )
    wrong = tmp_path / "wrong_role.toml"
    wrong.write_text(swapped.to_toml())
    cases["wrong role cert"] = (
        ["--config", str(wrong), "--role", "P1"],
        "is P2's, but this party is P1",
    )
    debug = ["--config", str(tmp_path / "nope.toml"), "--role", "P0", "--debug"]
    invalid_role = ["--config", str(plain), "--role", "P3"]
    with socket.socket() as blocker, ThreadPoolExecutor(4) as pool:
        blocker.bind(hosts.addresses[0])
        blocker.listen()
        runs = {
            k: pool.submit(cli, "party", "--job", "demo", *argv) for k, (argv, _) in cases.items()
        }
        runs["debug"] = pool.submit(cli, "party", *debug)
        runs["invalid role"] = pool.submit(cli, "party", *invalid_role)
        done = {k: f.result() for k, f in runs.items()}
    for name, (_, fragment) in cases.items():
        p = done[name]
        assert p.returncode == 2, (name, p.stderr)
        line = one_line_error(p.stderr)
        assert line.startswith("qbert-mpc party: error: ") and fragment in line, (name, line)
    assert done["debug"].returncode != 0 and "Traceback" in done["debug"].stderr
    # argparse's own errors: usage lines, then one error line, exit 2, no traceback
    p = done["invalid role"]
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "invalid choice: 'P3'" in p.stderr.strip().splitlines()[-1]


def test_cli_refuses_reused_material(tmp_path):
    hosts = local_hosts(timeout=10)
    cfg = tmp_path / "hosts.toml"
    cfg.write_text(hosts.to_toml())
    mat = tmp_path / "mat"
    deal(tinyjob.TINY, tiny_args(), mat, progress=False)
    extra = ("--material", str(mat))
    first = tinyjob.launch_tiny(cfg, *extra, ranks=(1, 2), timeout=60)
    assert [first[r].returncode for r in (1, 2)] == [0, 0], first
    again = [tinyjob.party_command(cfg, r, *extra) for r in (1, 2)]
    second = [subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) for argv in again]
    for p in second:  # each refuses before connecting: no peer needed
        assert p.wait(60) == 2
        line = one_line_error(p.stderr.read())
        p.stderr.close()
        assert "MaterialError" in line and "already used by an earlier run" in line, line


def test_errors_are_typed():
    assert issubclass(PeerDisconnected, MPCError) and issubclass(PeerTimeout, MPCError)
