"""Mutual TLS for ``TcpTransport``: contexts that authenticate the peer's *role*.

``context_factory(hosts, rank)`` returns the transport's ``ssl_context_factory``: for
``("server", peer)`` and ``("client", peer)`` a fresh context with

* TLS 1.3 only, a certificate required from both sides (``CERT_REQUIRED``);
* trust in the session CA (``[session] ca``) only: no system store, strict X.509 checks;
* this party's certificate and key (``[parties.Pn] cert/key``);
* after the handshake, a check that the peer's certificate names role ``Pn`` for the
  rank ``n`` the peer claimed in its hello (acceptor) or was dialled as (connector): the
  subject CN ``qbert-mpc-Pn`` and the SAN URI ``urn:qbert-mpc:role:Pn`` must agree.

Host names are not checked (``check_hostname`` off): the CA from ``qbert-mpc certs``
issues one certificate per role and discards its key, so the role is the identity, and
parties behind NAT may be reached under other names. The clear-text hello (see
``net.tcp``) only selects which role to demand.

A certificate from another CA, of the wrong role, expired or missing raises ``TlsError``
(a ``HandshakeError``) naming the peer. The acceptor logs and skips such a connection and
keeps waiting for the real peer (its ``PeerTimeout`` then mentions the rejection); the
connector fails at once. A broken local set-up (missing file, key not matching the
certificate, certificate of another role or CA) is a ``ConfigError`` before connecting.

Cost: one TLS 1.3 handshake per link (one extra round trip, ~2 KB each way with P-256
certificates) and 22 bytes of AES-GCM record overhead per 16 KiB of payload; transport
byte counts exclude both (they count frames).
"""

from __future__ import annotations

import datetime
import re
import ssl
from collections.abc import Callable

from net.errors import ConfigError, HandshakeError
from net.hosts import HostConfig

_CN = re.compile(r"qbert-mpc-P(\d{1,3})")
_URI = re.compile(r"urn:qbert-mpc:role:P(\d{1,3})")


class TlsError(HandshakeError):
    """A peer's certificate is not from the session CA, names another role, or TLS failed."""


def certificate_role(cert) -> int:
    """The rank a certificate (``cryptography`` x509) names; ValueError if unclear."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cns = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    from_cn = {int(m.group(1)) for cn in cns if (m := _CN.fullmatch(str(cn)))}
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    from_uri = {int(m.group(1)) for u in uris if (m := _URI.fullmatch(u))}
    if not from_cn or not from_uri:
        raise ValueError("it carries no qbert-mpc role")
    if len(from_cn | from_uri) != 1:
        roles = ", ".join(f"P{r}" for r in sorted(from_cn | from_uri))
        raise ValueError(f"it names several roles ({roles})")
    return from_cn.pop()


def _peer_role(der: bytes | None) -> int:
    from cryptography import x509

    if not der:
        raise ValueError("no certificate was presented")
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        raise ValueError("its certificate cannot be parsed") from None
    return certificate_role(cert)


class _RoleCheckedObject(ssl.SSLObject):
    """SSLObject whose completed handshake also checks the peer's role."""

    def do_handshake(self) -> None:
        peer = self.context.expected_rank
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise
        except ssl.SSLCertVerificationError as e:
            raise TlsError(
                peer,
                f"certificate refused ({e.verify_message}); it must come from this "
                "session's CA (qbert-mpc certs)",
            ) from None
        except ssl.SSLError as e:
            reason = str(e.reason or e)
            if "ALERT" in reason.upper():
                raise TlsError(peer, f"refused this party's TLS handshake ({reason})") from None
            raise TlsError(peer, f"TLS handshake failed ({reason})") from None
        try:
            role = _peer_role(self.getpeercert(binary_form=True))
        except ValueError as e:
            raise TlsError(peer, f"certificate refused: {e}") from None
        if role != peer:
            raise TlsError(
                peer, f"certificate is for role P{role}, but the peer claims to be P{peer}"
            )


class _RoleContext(ssl.SSLContext):
    sslobject_class = _RoleCheckedObject
    expected_rank: int = -1


def make_context(side: str, peer: int, ca: str, cert: str, key: str) -> ssl.SSLContext:
    """A TLS 1.3 context for talking to ``peer`` as ``side`` ("server" or "client")."""
    if side not in ("server", "client"):
        raise ValueError(f"side must be 'server' or 'client', got {side!r}")
    proto = ssl.PROTOCOL_TLS_SERVER if side == "server" else ssl.PROTOCOL_TLS_CLIENT
    ctx = _RoleContext(proto)
    ctx.expected_rank = int(peer)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    ctx.options |= ssl.OP_NO_TICKET
    if side == "server":
        ctx.num_tickets = 0
    ctx.load_verify_locations(cafile=ca)
    ctx.load_cert_chain(cert, key)
    return ctx


def _read_cert(path: str, what: str):
    from cryptography import x509

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(f"{what} {path}: cannot read ({e.strerror})") from None
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise ConfigError(f"{what} {path}: not a PEM certificate") from None


def check_own_files(ca: str, cert: str, key: str, rank: int) -> None:
    """ConfigError unless ``cert`` is P``rank``'s, valid now, issued by ``ca``, with ``key``."""
    ca_cert = _read_cert(ca, "CA")
    mine = _read_cert(cert, "certificate")
    try:
        role = certificate_role(mine)
    except ValueError as e:
        raise ConfigError(f"certificate {cert}: not a qbert-mpc party certificate ({e})") from None
    if role != rank:
        raise ConfigError(
            f"certificate {cert} is P{role}'s, but this party is P{rank} "
            "(wrong --role, or the config points at another party's files)"
        )
    from cryptography.exceptions import InvalidSignature

    try:
        mine.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature) as e:
        raise ConfigError(
            f"certificate {cert} was not issued by the CA {ca} ({type(e).__name__}); "
            "use files from one 'qbert-mpc certs' run"
        ) from None
    now = datetime.datetime.now(datetime.UTC)
    for path, c in ((ca, ca_cert), (cert, mine)):
        if not c.not_valid_before_utc <= now <= c.not_valid_after_utc:
            raise ConfigError(
                f"certificate {path} is valid only from {c.not_valid_before_utc:%Y-%m-%d %H:%M} "
                f"to {c.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; create new ones"
            )
    try:
        make_context("client", rank, ca, cert, key)
    except ssl.SSLError as e:
        raise ConfigError(f"key {key} does not fit certificate {cert} ({e.reason or e})") from None
    except OSError as e:
        raise ConfigError(f"key {key}: cannot read ({e.strerror})") from None


def context_factory(hosts: HostConfig, rank: int) -> Callable[[str, int], ssl.SSLContext]:
    """The ``ssl_context_factory`` for party ``rank`` of ``hosts`` (files checked now)."""
    cert, key = hosts.cert_and_key(rank)
    missing = [
        name
        for name, value in (
            ("[session] ca", hosts.ca),
            (f"[parties.P{rank}] cert", cert),
            (f"[parties.P{rank}] key", key),
        )
        if not value
    ]
    if missing:
        raise ConfigError(
            f"TLS is on but the host config has no {', '.join(missing)}; create files with "
            "'qbert-mpc certs --out DIR' (or set tls = false on a trusted network)"
        )
    check_own_files(hosts.ca, cert, key, rank)

    def factory(side: str, peer: int) -> ssl.SSLContext:
        return make_context(side, peer, hosts.ca, cert, key)

    return factory
