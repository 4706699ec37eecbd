"""``qbert-mpc certs``: a session CA and one certificate per party, for mutual TLS.

    qbert-mpc certs --out DIR [--days N] [--host P1=10.0.0.2 ...] [--config hosts.toml]

writes into DIR::

    ca.pem                  the session CA's certificate (every party needs it)
    P0.pem P0.key           each party's certificate and private key (0600); copy only
    P1.pem P1.key           Pn.key to Pn's machine
    P2.pem P2.key

All keys are EC P-256. Party n's certificate has subject ``CN=qbert-mpc-Pn, O=qbert-mpc``
and a SAN holding the role marker ``urn:qbert-mpc:role:Pn`` plus its host names and IP
addresses (``--host``, else the config's host, else localhost/127.0.0.1/::1); it is valid
for TLS server and client use. ``net.tls`` accepts a peer only with a certificate from this
CA whose CN and role marker both name the rank the peer claimed. The CA's private key is
discarded after signing (``--keep-ca-key`` writes ``ca.key``), so nobody can mint another
certificate for the session. With ``--config`` a ``hosts.toml`` with ``tls = true`` and the
new paths is written next to them.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import sys
from pathlib import Path

from net.errors import ConfigError
from net.hosts import PARTIES, HostConfig

ROLE_URI = "urn:qbert-mpc:role:P{rank}"
ORG = "qbert-mpc"
DEFAULT_DAYS = 90
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
CA_FILE = "ca.pem"
EXIT_ERROR = 2


def role_cn(rank: int) -> str:
    return f"qbert-mpc-P{rank}"


def cert_files(out_dir, rank: int) -> tuple[Path, Path]:
    d = Path(out_dir)
    return d / f"P{rank}.pem", d / f"P{rank}.key"


def _san(names) -> list:
    from cryptography import x509

    out = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name.strip("[]"))))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def _write(path: Path, data: bytes, private: bool = False) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(path, flags, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def generate(
    out_dir,
    days: int = DEFAULT_DAYS,
    hosts: dict[int, list[str]] | None = None,
    keep_ca_key: bool = False,
    parties=PARTIES,
    force: bool = False,
) -> dict:
    """Create the CA and the party certificates in ``out_dir``; return the paths written."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not 1 <= int(days) <= 3650:
        raise ConfigError(f"--days must be in 1..3650, got {days}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    if (out / CA_FILE).exists() and not force:
        raise ConfigError(f"{out}: already holds certificates; pick another --out or --force")
    hosts = hosts or {}
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=int(days))
    pem = serialization.Encoding.PEM

    def key_pem(key) -> bytes:
        return key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG),
            x509.NameAttribute(NameOID.COMMON_NAME, f"qbert-mpc session CA {os.urandom(4).hex()}"),
        ]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    written = {"ca": out / CA_FILE}
    _write(written["ca"], ca.public_bytes(pem))
    if keep_ca_key:
        written["ca_key"] = out / "ca.key"
        _write(written["ca_key"], key_pem(ca_key), private=True)
    aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)
    for rank in parties:
        key = ec.generate_private_key(ec.SECP256R1())
        names = list(hosts.get(rank) or LOCAL_NAMES)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG),
                x509.NameAttribute(NameOID.COMMON_NAME, role_cn(rank)),
            ]
        )
        san = [x509.UniformResourceIdentifier(ROLE_URI.format(rank=rank)), *_san(names)]
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(aki, critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        cert_path, key_path = cert_files(out, rank)
        _write(key_path, key_pem(key), private=True)
        _write(cert_path, cert.public_bytes(pem))
        written[f"P{rank}"] = {"cert": cert_path, "key": key_path, "names": names}
    return written


def tls_config(hosts: HostConfig, cert_dir) -> HostConfig:
    """``hosts`` with TLS on and the CA and party files of ``cert_dir`` (absolute paths)."""
    d = Path(cert_dir).resolve()
    ranks = sorted(hosts.addresses)
    return hosts.with_tls(
        str(d / CA_FILE),
        {r: str(cert_files(d, r)[0]) for r in ranks},
        {r: str(cert_files(d, r)[1]) for r in ranks},
    )


def local_tls(hosts: HostConfig, cert_dir, days: int = 1) -> HostConfig:
    """Fresh certificates in ``cert_dir`` for a one-off run; the TLS version of ``hosts``."""
    names = {r: sorted({h, *LOCAL_NAMES}) for r, (h, _) in hosts.addresses.items()}
    generate(cert_dir, days=days, hosts=names, parties=sorted(hosts.addresses), force=True)
    return tls_config(hosts, cert_dir)


# ------------------------------------------------------------------------------ CLI


def _parse_host(text: str) -> tuple[int, list[str]]:
    role, sep, names = text.partition("=")
    role = role.strip().upper()
    if not sep or role not in {f"P{r}" for r in PARTIES}:
        raise ConfigError(f"--host {text!r}: write ROLE=HOST[,HOST...], e.g. P1=10.0.0.2")
    parts = [n.strip() for n in names.split(",") if n.strip()]
    if not parts or any(any(c.isspace() for c in n) for n in parts):
        raise ConfigError(f"--host {text!r}: give host names or IP addresses without spaces")
    return int(role[1]), parts


def register(subparsers) -> None:
    """Add the ``certs`` subcommand to the CLI's subparsers."""
    p = subparsers.add_parser(
        "certs",
        help="create a session CA and per-party TLS certificates",
        description="Create a session CA and certificates/keys for P0, P1, P2 (mutual TLS). "
        "Copy ca.pem to every machine and Pn.pem/Pn.key to Pn's machine, then point the host "
        "config at them: ca under [session], cert/key under [parties.Pn].",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--days", type=int, default=DEFAULT_DAYS, help=f"validity in days (default {DEFAULT_DAYS})"
    )
    p.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="Pn=HOST[,HOST]",
        help="names/addresses to put in Pn's certificate (repeatable; default: the "
        "config's host, else localhost)",
    )
    p.add_argument(
        "--config",
        metavar="HOSTS.toml",
        help="take hosts from this config and write DIR/hosts.toml with TLS on",
    )
    p.add_argument(
        "--keep-ca-key",
        action="store_true",
        help="also write ca.key (default: discard it after signing)",
    )
    p.add_argument("--force", action="store_true", help="overwrite certificates in DIR")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")


def add_run_options(run_parser) -> None:
    """``qbert-mpc run --tls``: see ``local_tls``."""
    run_parser.add_argument(
        "--tls",
        action="store_true",
        help="run the parties over mutual TLS with throw-away certificates",
    )


def cmd_certs(args) -> dict:
    from net.hosts import load_hosts

    hosts: dict[int, list[str]] = {}
    cfg = load_hosts(args.config) if args.config else None
    if cfg is not None:
        hosts = {r: [h] for r, (h, _) in cfg.addresses.items()}
    for text in args.host:
        rank, names = _parse_host(text)
        hosts[rank] = names
    written = generate(args.out, args.days, hosts, args.keep_ca_key, force=args.force)
    if cfg is not None:
        written["hosts"] = Path(args.out) / "hosts.toml"
        ranks = sorted(cfg.addresses)  # paths relative to hosts.toml: the folder can move
        certs = {r: f"P{r}.pem" for r in ranks}
        rel = cfg.with_tls(CA_FILE, certs, {r: f"P{r}.key" for r in ranks})
        written["hosts"].write_text(rel.to_toml())
    return {
        k: (
            {kk: str(vv) if isinstance(vv, Path) else vv for kk, vv in v.items()}
            if isinstance(v, dict)
            else str(v)
        )
        for k, v in written.items()
    }


def main(args) -> int:
    """Run ``qbert-mpc certs``; one-line errors and exit status 2 unless ``--debug``."""
    import json

    try:
        out = cmd_certs(args)
    except Exception as e:  # noqa: BLE001 - one-line errors for users
        if args.debug or os.environ.get("QBERT_DEBUG"):
            raise
        print(f"qbert-mpc certs: error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(out))
    else:
        print(
            f"wrote {out['ca']} and the certificates of "
            + ", ".join(k for k in out if k.startswith("P"))
        )
        if "hosts" in out:
            print(f"host config with TLS on: {out['hosts']}")
        else:
            print(
                'host config: [session] tls = true, ca = "ca.pem"; '
                '[parties.Pn] cert = "Pn.pem", key = "Pn.key"'
            )
    return 0
