"""Host config files (TOML) that tell each party where every party listens.

Format::

    [session]
    id = 12345            # integer 0..2**64-1, optional (default: derived from a hash of the file)
    timeout = 60          # seconds for connect and receive, optional (default 60)
    tls = true            # optional; default: true if any host is not a loopback address
    ca = "certs/ca.pem"   # the session CA (``qbert-mpc certs``); paths are relative to this file

    [parties.P0]
    host = "10.0.0.1"
    port = 9000
    cert = "certs/P0.pem" # this party's certificate and key (needed only on P0's machine)
    key = "certs/P0.key"
    [parties.P1]
    host = "10.0.0.2"
    port = 9001
    cert = "certs/P1.pem"
    key = "certs/P1.key"
    [parties.P2]
    host = "10.0.0.3"
    port = 9002
    cert = "certs/P2.pem"
    key = "certs/P2.key"

Every party loads the same file. ``[parties.Pn]`` holds the address party n listens on
(P0 and P1 listen, P2 only connects, but every party needs an entry). Keys other than
these are errors, so a typo cannot silently fall back to a default. Every mistake raises
ConfigError with a one-line message that names the file and says what to fix.

TLS (``net.tls``): a config whose hosts are not all loopback addresses runs over mutually
authenticated TLS unless it says ``tls = false``; a localhost config stays in clear unless it
says ``tls = true``. ``cert``/``key`` in ``[session]`` (older format) apply to every party
that has none of its own. Whether the files exist is checked when the party starts.

The default session id is a hash of the file's bytes: parties with identical files agree
on it, but two runs from the same file share it too; give ``id`` (or use a fresh file)
when stale processes of an earlier run might still be around.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import os
import secrets
import tomllib
from dataclasses import dataclass, field, replace

from net.errors import ConfigError

PARTIES = (0, 1, 2)
DEFAULT_TIMEOUT = 60.0
_SESSION_KEYS = {"id", "timeout", "tls", "ca", "cert", "key"}
_PARTY_KEYS = {"host", "port", "cert", "key"}


def is_loopback(host: str) -> bool:
    """True for localhost names and loopback IP addresses (127.0.0.0/8, ::1)."""
    h = host.strip().lower().rstrip(".")
    if h == "localhost" or h.endswith(".localhost") or h in ("ip6-localhost", "ip6-loopback"):
        return True
    try:
        return ipaddress.ip_address(h.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class HostConfig:
    addresses: dict[int, tuple[str, int]]
    session: int
    timeout: float = DEFAULT_TIMEOUT
    tls: bool = False
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    party_certs: dict[int, str] = field(default_factory=dict)
    party_keys: dict[int, str] = field(default_factory=dict)

    def cert_and_key(self, rank: int) -> tuple[str | None, str | None]:
        """Party ``rank``'s certificate and key paths (its own entry, else [session]'s)."""
        return self.party_certs.get(rank, self.cert), self.party_keys.get(rank, self.key)

    def with_tls(self, ca: str, certs: dict[int, str], keys: dict[int, str]) -> HostConfig:
        """This config with TLS on, the given CA and per-party certificates and keys."""
        return replace(self, tls=True, ca=ca, party_certs=dict(certs), party_keys=dict(keys))

    def to_toml(self, timeout: float | None = None) -> str:
        """The config as a hosts file that ``load_hosts`` reads back unchanged.

        ``timeout`` writes another timeout instead of ``self.timeout``.
        """
        timeout = self.timeout if timeout is None else float(timeout)
        lines = ["[session]", f"id = {self.session}", f"timeout = {timeout!r}"]
        lines.append(f"tls = {'true' if self.tls else 'false'}")
        for name in ("ca", "cert", "key"):
            value = getattr(self, name)
            if value is not None:
                lines.append(f"{name} = {_toml_str(value)}")
        for rank in sorted(self.addresses):
            host, port = self.addresses[rank]
            lines += ["", f"[parties.P{rank}]", f"host = {_toml_str(host)}", f"port = {port}"]
            for name, paths in (("cert", self.party_certs), ("key", self.party_keys)):
                if rank in paths:
                    lines.append(f"{name} = {_toml_str(paths[rank])}")
        return "\n".join(lines) + "\n"


def _toml_str(s: str) -> str:
    out = s.replace("\\", "\\\\").replace('"', '\\"')
    out = "".join(c if c.isprintable() else _toml_escape(c) for c in out)
    return f'"{out}"'


def _toml_escape(c: str) -> str:
    return f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}"


def _type_name(value) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        type(value), f"a {type(value).__name__}"
    )


def load_hosts(path, parties=PARTIES) -> HostConfig:
    """Read and validate a hosts file; raise ConfigError saying what to fix."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise ConfigError(f"{name}: hosts file not found; check the path") from None
    except IsADirectoryError:
        raise ConfigError(f"{name}: is a folder; pass the hosts TOML file") from None
    except OSError as e:
        raise ConfigError(f"{name}: cannot read the hosts file ({e.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{name}: not UTF-8 text; save the hosts file as UTF-8") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{name}: TOML syntax error: {e}") from None
    return _parse(doc, name, raw, tuple(parties))


def _parse(doc: dict, name: str, raw: bytes, parties: tuple[int, ...]) -> HostConfig:
    def fail(msg: str):
        raise ConfigError(f"{name}: {msg}")

    unknown = sorted(set(doc) - {"session", "parties"})
    if unknown:
        fail(f"unknown top-level key {unknown[0]!r}; only [session] and [parties.*] are allowed")

    session = doc.get("session", {})
    if not isinstance(session, dict):
        fail("'session' must be a table: write [session] on its own line")
    unknown = sorted(set(session) - _SESSION_KEYS)
    if unknown:
        allowed = ", ".join(sorted(_SESSION_KEYS))
        fail(f"unknown key {unknown[0]!r} in [session]; allowed keys: {allowed}")

    if "id" in session:
        sid = session["id"]
        if type(sid) is not int:
            fail(f"[session] id must be an integer, not {_type_name(sid)}")
        if not 0 <= sid < 1 << 64:
            fail(f"[session] id must be in 0..2**64-1, got {sid}")
    else:
        sid = int.from_bytes(hashlib.sha256(raw).digest()[:8], "little")

    timeout = session.get("timeout", DEFAULT_TIMEOUT)
    if type(timeout) not in (int, float):
        fail(f"[session] timeout must be a number of seconds, not {_type_name(timeout)}")
    if not (math.isfinite(timeout) and timeout > 0):
        fail(f"[session] timeout must be a positive number of seconds, got {timeout}")

    tls = session.get("tls")
    if tls is not None and type(tls) is not bool:
        fail(f"[session] tls must be true or false, not {_type_name(tls)}")

    base = os.path.dirname(os.path.abspath(name))

    def path(table: dict, key: str, where: str) -> str | None:
        value = table.get(key)
        if value is not None:
            if type(value) is not str or not value:
                fail(f"{where} {key} must be a non-empty path string")
            value = os.path.normpath(os.path.join(base, os.path.expanduser(value)))
        return value

    paths = {key: path(session, key, "[session]") for key in ("ca", "cert", "key")}
    party_paths: dict[str, dict[int, str]] = {"cert": {}, "key": {}}

    tables = doc.get("parties")
    if tables is None:
        fail("no [parties.P0] ... tables; add one per party with host and port")
    if not isinstance(tables, dict):
        fail("'parties' must be tables: write [parties.P0] etc.")
    wanted = {f"P{r}": r for r in parties}
    unknown = sorted(set(tables) - set(wanted))
    if unknown:
        fail(f"unknown party {unknown[0]!r}; parties are {', '.join(wanted)}")

    addresses: dict[int, tuple[str, int]] = {}
    seen: dict[tuple[str, int], str] = {}
    for label, rank in wanted.items():
        if label not in tables:
            fail(f"missing party {label}: add a [parties.{label}] table with host and port")
        entry = tables[label]
        where = f"[parties.{label}]"
        if not isinstance(entry, dict):
            fail(f"{where} must be a table with host and port")
        unknown = sorted(set(entry) - _PARTY_KEYS)
        if unknown:
            fail(f"unknown key {unknown[0]!r} in {where}; allowed keys: host, port, cert, key")
        for key in ("host", "port"):
            if key not in entry:
                fail(f"{where} has no {key}")
        host, port = entry["host"], entry["port"]
        if type(host) is not str:
            fail(f"{where} host must be a string, not {_type_name(host)}")
        if not host.strip() or any(c.isspace() for c in host):
            fail(f"{where} host must be a host name or IP address without spaces")
        if type(port) is not int:
            fail(f"{where} port must be an integer, not {_type_name(port)}")
        if not 1 <= port <= 65535:
            fail(f"{where} port must be in 1..65535, got {port}")
        endpoint = (host.lower(), port)
        if endpoint in seen:
            fail(f"{seen[endpoint]} and {label} both use {host}:{port}; give each its own port")
        seen[endpoint] = label
        addresses[rank] = (host, port)
        for key in ("cert", "key"):
            value = path(entry, key, where)
            if value is not None:
                party_paths[key][rank] = value

    if tls is None:  # LAN configs are encrypted unless they opt out
        tls = not all(is_loopback(h) for h, _ in addresses.values())

    return HostConfig(
        addresses=addresses,
        session=sid,
        timeout=float(timeout),
        tls=tls,
        ca=paths["ca"],
        cert=paths["cert"],
        key=paths["key"],
        party_certs=party_paths["cert"],
        party_keys=party_paths["key"],
    )


def local_hosts(ports=None, parties=PARTIES, timeout: float = DEFAULT_TIMEOUT) -> HostConfig:
    """A localhost config with free ports (or the given ones) and a random session id."""
    from net.tcp import free_ports

    parties = tuple(parties)
    if ports is None:
        ports = free_ports(len(parties))
    ports = [int(p) for p in ports]
    if len(ports) != len(parties):
        raise ConfigError(f"need {len(parties)} ports, got {len(ports)}")
    if len(set(ports)) != len(ports) or not all(1 <= p <= 65535 for p in ports):
        raise ConfigError("ports must be distinct and in 1..65535")
    return HostConfig(
        addresses={r: ("127.0.0.1", p) for r, p in zip(parties, ports, strict=True)},
        session=secrets.randbits(63),
        timeout=float(timeout),
    )
