"""Mutual TLS: certificates from ``qbert-mpc certs``, role checks, refusal of impostors."""

from __future__ import annotations

import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from net.certs import generate, local_tls, tls_config
from net.errors import ConfigError, HandshakeError, PeerTimeout
from net.framing import HEADER_SIZE, KIND_ONLINE, Header
from net.hosts import HostConfig, load_hosts, local_hosts
from net.tcp import TcpTransport
from net.tls import TlsError, context_factory, make_context

sys.path.insert(0, str(Path(__file__).parent))
import tinyjob  # noqa: E402


@pytest.fixture(scope="module")
def certdirs(tmp_path_factory):
    good = tmp_path_factory.mktemp("certs")
    other = tmp_path_factory.mktemp("other-ca")
    generate(good, days=2)
    generate(other, days=2)
    return good, other


def files(d: Path, rank: int) -> tuple[str, str, str]:
    return str(d / "ca.pem"), str(d / f"P{rank}.pem"), str(d / f"P{rank}.key")


def factory(ca: str, cert: str, key: str):
    return lambda side, peer: make_context(side, peer, ca, cert, key)


def build(rank, hosts: HostConfig, peers, fac, timeout=5.0):
    return TcpTransport(
        rank,
        hosts.addresses,
        hosts.session,
        peers=peers,
        connect_timeout=timeout,
        ssl_context_factory=fac,
    )


def in_thread(fn):
    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - inspected by the test
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


# ------------------------------------------------------------------ certificates


def test_certs_command_writes_role_certificates(tmp_path):
    from cryptography import x509

    from net.tls import certificate_role

    cfg = tmp_path / "lan.toml"
    lan = HostConfig({0: ("10.9.0.1", 9000), 1: ("10.9.0.2", 9001), 2: ("pc2.lan", 9002)}, 77)
    cfg.write_text(lan.to_toml())
    out = tmp_path / "c"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "net.cli",
            "certs",
            "--out",
            str(out),
            "--days",
            "3",
            "--config",
            str(cfg),
            "--host",
            "P1=10.9.0.2,p1.lan",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert not (out / "ca.key").exists(), "the CA key is discarded by default"
    for r in range(3):
        assert (out / f"P{r}.key").stat().st_mode & 0o077 == 0
        cert = x509.load_pem_x509_certificate((out / f"P{r}.pem").read_bytes())
        assert certificate_role(cert) == r
        assert cert.subject.rfc4514_string().startswith("CN=qbert-mpc-P" + str(r))
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert f"urn:qbert-mpc:role:P{r}" in san.get_values_for_type(x509.UniformResourceIdentifier)
        names = {str(v) for v in san.get_values_for_type(x509.IPAddress)}
        names |= set(san.get_values_for_type(x509.DNSName))
        want = {0: {"10.9.0.1"}, 1: {"10.9.0.2", "p1.lan"}, 2: {"pc2.lan"}}[r]
        assert names == want
        days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
        assert days == 3
    hosts = load_hosts(out / "hosts.toml")
    assert hosts.tls and hosts.ca == str(out / "ca.pem")
    assert hosts.cert_and_key(1) == (str(out / "P1.pem"), str(out / "P1.key"))
    again = subprocess.run(
        [sys.executable, "-m", "net.cli", "certs", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 2 and "already holds" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_host_config_tls_defaults_and_per_party_files(tmp_path):
    def load(text):
        path = tmp_path / "h.toml"
        path.write_text(text)
        return load_hosts(path)

    parties = "".join(f'[parties.P{r}]\nhost = "{{h}}"\nport = {9000 + r}\n' for r in range(3))
    assert load(parties.format(h="10.1.1.1").replace("9001", "9001")).tls is True
    assert load("[session]\ntls = false\n" + parties.format(h="10.1.1.1")).tls is False
    assert load(parties.format(h="127.0.0.1")).tls is False
    assert load(parties.format(h="localhost")).tls is False
    assert load("[session]\ntls = true\n" + parties.format(h="localhost")).tls is True
    text = '[session]\nca = "ca.pem"\ncert = "shared.pem"\n' + parties.format(h="::1")
    text = text.replace("port = 9001\n", 'port = 9001\ncert = "c/P1.pem"\nkey = "c/P1.key"\n')
    cfg = load(text)
    assert cfg.cert_and_key(1) == (str(tmp_path / "c/P1.pem"), str(tmp_path / "c/P1.key"))
    assert cfg.cert_and_key(2) == (str(tmp_path / "shared.pem"), None)
    assert load(cfg.to_toml()) == cfg
    with pytest.raises(ConfigError, match=r"\[parties.P1\] key must be a non-empty path"):
        load(text.replace('key = "c/P1.key"', 'key = ""'))


def test_context_factory_checks_local_files(certdirs):
    good, other = certdirs
    hosts = tls_config(local_hosts(), good)
    context_factory(hosts, 1)  # fine
    with pytest.raises(ConfigError, match="no \\[session\\] ca"):
        context_factory(HostConfig(hosts.addresses, 1, tls=True), 1)
    swapped = hosts.with_tls(hosts.ca, {1: str(good / "P2.pem")}, {1: str(good / "P2.key")})
    with pytest.raises(ConfigError, match="is P2's, but this party is P1"):
        context_factory(swapped, 1)
    foreign = hosts.with_tls(hosts.ca, {1: str(other / "P1.pem")}, {1: str(other / "P1.key")})
    with pytest.raises(ConfigError, match="not issued by the CA"):
        context_factory(foreign, 1)
    mismatch = hosts.with_tls(hosts.ca, {1: str(good / "P1.pem")}, {1: str(good / "P0.key")})
    with pytest.raises(ConfigError, match="does not fit"):
        context_factory(mismatch, 1)
    missing = hosts.with_tls(str(good / "nope.pem"), hosts.party_certs, hosts.party_keys)
    with pytest.raises(ConfigError, match="cannot read"):
        context_factory(missing, 1)


def test_contexts_are_tls13_mutual_and_trust_only_the_ca(certdirs):
    good, _ = certdirs
    for side in ("server", "client"):
        ctx = make_context(side, 2, *files(good, 1))
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3
        assert ctx.verify_mode == ssl.CERT_REQUIRED
        assert [c["subject"] for c in ctx.get_ca_certs()] == [
            c["subject"] for c in make_context(side, 0, *files(good, 0)).get_ca_certs()
        ]
        assert len(ctx.get_ca_certs()) == 1


# ------------------------------------------------------------------ handshakes


def test_three_parties_over_tls_exchange_frames(certdirs):
    good, _ = certdirs
    hosts = tls_config(local_hosts(timeout=5), good)
    threads = [
        in_thread(lambda r=r: build(r, hosts, None, context_factory(hosts, r))) for r in range(3)
    ]
    for t, _ in threads:
        t.join(20)
    ts = {r: out["value"] for r, (_, out) in enumerate(threads)}
    try:
        for t in ts.values():
            assert {type(link.conn).__name__ for link in t._links.values()} == {"_TlsConn"}
        payload = b"over tls" * 1000
        ts[2].send(
            1, Header(KIND_ONLINE, 2, 1, hosts.session, 0, 0, 0, len(payload)).pack() + payload
        )
        assert ts[1].recv(2, timeout=5)[HEADER_SIZE:] == payload
    finally:
        for t in ts.values():
            t.close()


def test_acceptor_refuses_a_certificate_of_another_role(certdirs):
    good, _ = certdirs
    hosts = local_hosts(timeout=8)
    t0, out0 = in_thread(lambda: build(0, hosts, [2], factory(*files(good, 0))))
    # P1's certificate, but the hello claims P2: the handshake completes on the impostor's
    # side (TLS 1.3 client finishes first), P0 refuses after checking the role.
    impostor = build(2, hosts, [0], factory(*files(good, 1)))
    impostor.close()
    real = build(2, hosts, [0], factory(*files(good, 2)))
    t0.join(10)
    p0 = out0["value"]
    try:
        assert len(p0.rejected) == 1
        err = p0.rejected[0]
        assert isinstance(err, TlsError) and isinstance(err, HandshakeError)
        assert err.peer == 2 and "role P1" in str(err) and "claims to be P2" in str(err)
    finally:
        p0.close()
        real.close()


def test_connector_refuses_a_server_of_another_role(certdirs):
    good, _ = certdirs
    hosts = local_hosts(timeout=3)
    t0, out0 = in_thread(lambda: build(0, hosts, [1], factory(*files(good, 2)), timeout=1))
    with pytest.raises(TlsError, match=r"^P0: certificate is for role P2, but the peer claims"):
        build(1, hosts, [0], factory(*files(good, 1)), timeout=3)
    t0.join(10)
    assert isinstance(out0.get("error"), PeerTimeout)


def test_unknown_ca_is_refused_both_ways(certdirs):
    good, other = certdirs
    hosts = local_hosts(timeout=3)
    # A P0 with a certificate from another CA: the honest P1 refuses it at once.
    t0, out0 = in_thread(lambda: build(0, hosts, [1], factory(*files(other, 0)), timeout=1))
    with pytest.raises(TlsError, match=r"^P0: certificate refused .*session's CA"):
        build(1, hosts, [0], factory(*files(good, 1)), timeout=3)
    t0.join(10)
    # An honest P0 refuses a P1 whose certificate comes from another CA; it keeps waiting
    # and its timeout names the rejection.
    hosts = local_hosts(timeout=2)
    t0, out0 = in_thread(lambda: build(0, hosts, [1], factory(*files(good, 0)), timeout=1))
    foreign_ca_but_trusting_ours = factory(str(good / "ca.pem"), *files(other, 1)[1:])
    try:
        build(1, hosts, [0], foreign_ca_but_trusting_ours, timeout=1).close()
    except HandshakeError:
        pass
    t0.join(10)
    err = out0["error"]
    assert isinstance(err, PeerTimeout) and err.peer == 1
    assert "rejected 1 connection" in str(err) and "certificate" in str(err)


def test_plain_peer_is_refused_by_a_tls_acceptor(certdirs):
    good, _ = certdirs
    hosts = local_hosts(timeout=2)
    t0, out0 = in_thread(lambda: build(0, hosts, [1], factory(*files(good, 0)), timeout=1))
    try:
        build(1, hosts, [0], None, timeout=1).close()
    except HandshakeError:
        pass
    t0.join(10)
    err = out0["error"]
    assert isinstance(err, PeerTimeout) and "TLS" in str(err)


def test_tiny_job_over_tls_with_processes(tmp_path):
    hosts = local_tls(local_hosts(timeout=20), tmp_path / "certs")
    cfg = tmp_path / "hosts.toml"
    cfg.write_text(hosts.to_toml())
    res = tinyjob.launch_tiny(cfg, "--marker", "12345", timeout=60)
    assert all(r.returncode == 0 for r in res.values()), {r: x.stderr for r, x in res.items()}
    assert '"matches_plaintext": true' in res[1].stdout


def test_expired_certificate_is_a_config_error(certdirs, monkeypatch):
    import datetime as real

    import net.tls

    class Later:
        UTC = real.UTC

        class datetime:  # noqa: N801 - stands in for the module attribute
            @staticmethod
            def now(tz):
                return real.datetime.now(tz) + real.timedelta(days=3)

    monkeypatch.setattr(net.tls, "datetime", Later)
    good, _ = certdirs
    with pytest.raises(ConfigError, match="is valid only from .* UTC; create new ones"):
        context_factory(tls_config(local_hosts(), good), 0)


def test_certificate_role_needs_one_consistent_role():
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from net.tls import certificate_role

    def cert(cn, uris):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        now = datetime.datetime.now(datetime.UTC)
        b = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
        )
        if uris:
            san = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris])
            b = b.add_extension(san, critical=False)
        return b.sign(key, hashes.SHA256())

    assert certificate_role(cert("qbert-mpc-P2", ["urn:qbert-mpc:role:P2"])) == 2
    with pytest.raises(ValueError, match="several roles"):
        certificate_role(cert("qbert-mpc-P1", ["urn:qbert-mpc:role:P2"]))
    with pytest.raises(ValueError, match="several roles"):
        certificate_role(cert("qbert-mpc-P1", ["urn:qbert-mpc:role:P1", "urn:qbert-mpc:role:P0"]))
    with pytest.raises(ValueError, match="no qbert-mpc role"):
        certificate_role(cert("qbert-mpc-P1", []))
    with pytest.raises(ValueError, match="no qbert-mpc role"):
        certificate_role(cert("someone", ["urn:qbert-mpc:role:P1"]))


def test_cli_run_tls_uses_fresh_certificates(monkeypatch, capsys):
    """``qbert-mpc run --tls``: the parties get a TLS host config with throw-away
    certificates that pass every party's own checks, and the result is right."""
    import json

    import net.launcher
    from net.cli import main

    real, seen = net.launcher.launch, {}

    def spy(commands, **kw):
        argv = commands[1]
        seen["hosts"] = hosts = load_hosts(argv[argv.index("--config") + 1])
        seen["factories"] = [context_factory(hosts, r) for r in sorted(commands)]
        return real(commands, **kw)

    monkeypatch.setattr(net.launcher, "launch", spy)
    small = ["--job", "demo", "--rows", "4", "--dim", "16", "--out-dim", "8", "--bits", "24"]
    assert main(["run", "--tls", "--json", "--timeout", "20", *small]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["result"]["matches_plaintext"] is True and out["mode"] == "3party"
    hosts = seen["hosts"]
    assert hosts.tls and hosts.ca and sorted(hosts.party_certs) == [0, 1, 2]
    assert len(seen["factories"]) == 3
    assert not Path(hosts.ca).exists(), "the certificates are deleted after the run"
