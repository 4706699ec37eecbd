"""Hosts files: a valid file and every kind of mistake (one-line ConfigError each)."""

from __future__ import annotations

import os

import pytest

from net.errors import ConfigError
from net.hosts import DEFAULT_TIMEOUT, HostConfig, load_hosts, local_hosts

VALID = """\
[session]
id = 12345
timeout = 60
tls = false

[parties.P0]
host = "10.0.0.1"
port = 9000
[parties.P1]
host = "10.0.0.2"
port = 9001
[parties.P2]
host = "10.0.0.3"
port = 9002
"""

PARTIES_ONLY = VALID.split("\n\n", 1)[1]


def write(tmp_path, text, name="hosts.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def error(tmp_path, text) -> str:
    with pytest.raises(ConfigError) as info:
        load_hosts(write(tmp_path, text))
    msg = str(info.value)
    assert "\n" not in msg, "messages are one line"
    assert "hosts.toml" in msg, "messages name the file"
    return msg


def test_valid_file(tmp_path):
    cfg = load_hosts(write(tmp_path, VALID))
    assert cfg == HostConfig(
        addresses={0: ("10.0.0.1", 9000), 1: ("10.0.0.2", 9001), 2: ("10.0.0.3", 9002)},
        session=12345,
        timeout=60.0,
        tls=False,
    )
    assert isinstance(cfg.timeout, float)


def test_defaults_and_derived_session(tmp_path):
    a = load_hosts(write(tmp_path, PARTIES_ONLY, "a.toml"))
    b = load_hosts(write(tmp_path, PARTIES_ONLY, "b.toml"))
    c = load_hosts(write(tmp_path, PARTIES_ONLY + "\n# another run\n", "c.toml"))
    assert a.session == b.session != c.session
    assert 0 <= a.session < 2**64
    assert a.timeout == DEFAULT_TIMEOUT and a.tls is True and a.ca is None  # LAN: TLS on


def test_tls_paths_are_resolved_next_to_the_file(tmp_path):
    text = '[session]\ntls = true\nca = "certs/ca.pem"\ncert = "/abs/me.pem"\nkey = "me.key"\n'
    cfg = load_hosts(write(tmp_path, text + "\n" + PARTIES_ONLY))
    assert cfg.tls is True
    assert cfg.ca == os.path.join(str(tmp_path), "certs", "ca.pem")
    assert cfg.cert == "/abs/me.pem"
    assert cfg.key == os.path.join(str(tmp_path), "me.key")


def test_roundtrip_through_to_toml(tmp_path):
    cfg = local_hosts()
    assert load_hosts(write(tmp_path, cfg.to_toml())) == cfg
    assert load_hosts(write(tmp_path, cfg.to_toml(timeout=7))).timeout == 7.0


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_hosts(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="folder"):
        load_hosts(tmp_path)


def test_syntax_error_names_the_line(tmp_path):
    msg = error(tmp_path, VALID.replace("port = 9001", "port 9001"))
    assert "TOML syntax error" in msg and "line 11" in msg


def test_missing_party(tmp_path):
    text = VALID.replace('[parties.P1]\nhost = "10.0.0.2"\nport = 9001\n', "")
    assert "missing party P1" in error(tmp_path, text)
    assert "[parties.P0]" in error(tmp_path, "[session]\nid = 1\n")


@pytest.mark.parametrize("port", ["0", "65536", "-5", "70000"])
def test_bad_port(tmp_path, port):
    assert "1..65535" in error(tmp_path, VALID.replace("9002", port))


def test_duplicate_endpoint(tmp_path):
    text = VALID.replace('"10.0.0.3"', '"10.0.0.1"').replace("9002", "9000")
    msg = error(tmp_path, text)
    assert "P0 and P2 both use 10.0.0.1:9000" in msg


@pytest.mark.parametrize(
    "text, fragment",
    [
        (VALID + "\n[extra]\nx = 1\n", "unknown top-level key 'extra'"),
        (VALID.replace("tls = false", "tls = false\nretries = 3"), "unknown key 'retries'"),
        (VALID.replace("port = 9000", 'port = 9000\nhostname = "a"'), "unknown key 'hostname'"),
        (VALID + '\n[parties.P3]\nhost = "x"\nport = 1\n', "unknown party 'P3'"),
    ],
)
def test_unknown_keys(tmp_path, text, fragment):
    assert fragment in error(tmp_path, text)


@pytest.mark.parametrize(
    "old, new, fragment",
    [
        ("id = 12345", 'id = "12345"', "id must be an integer, not a string"),
        ("id = 12345", "id = -1", "id must be in 0..2**64-1"),
        ("id = 12345", "id = true", "id must be an integer, not a boolean"),
        ("timeout = 60", 'timeout = "60"', "timeout must be a number"),
        ("timeout = 60", "timeout = 0", "positive"),
        ("timeout = 60", "timeout = inf", "positive"),
        ("tls = false", 'tls = "no"', "tls must be true or false"),
        ("port = 9000", 'port = "9000"', "port must be an integer, not a string"),
        ("port = 9000", "port = 9000.0", "port must be an integer, not a number"),
        ('host = "10.0.0.1"', "host = 10", "host must be a string, not an integer"),
        ('host = "10.0.0.1"', 'host = ""', "without spaces"),
        ('host = "10.0.0.1"\nport = 9000', 'host = "10.0.0.1"', "[parties.P0] has no port"),
    ],
)
def test_wrong_types(tmp_path, old, new, fragment):
    assert old in VALID
    assert fragment in error(tmp_path, VALID.replace(old, new, 1))


def test_session_must_be_a_table(tmp_path):
    assert "'session' must be a table" in error(tmp_path, "session = 5\n" + PARTIES_ONLY)


def test_party_must_be_a_table(tmp_path):
    text = VALID.replace('[parties.P2]\nhost = "10.0.0.3"\nport = 9002\n', "")
    text = text.replace("[parties.P0]", "[parties]\nP2 = 5\n[parties.P0]")
    assert "[parties.P2] must be a table" in error(tmp_path, text)


def test_local_hosts():
    cfg = local_hosts()
    assert sorted(cfg.addresses) == [0, 1, 2]
    assert all(h == "127.0.0.1" for h, _ in cfg.addresses.values())
    assert len({p for _, p in cfg.addresses.values()}) == 3
    assert local_hosts([9100, 9101, 9102]).addresses[2] == ("127.0.0.1", 9102)
    assert local_hosts().session != cfg.session
    with pytest.raises(ConfigError):
        local_hosts([9100, 9100, 9102])
    with pytest.raises(ConfigError):
        local_hosts([9100])
