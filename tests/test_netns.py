"""Three parties on three network namespaces joined by a bridge, bandwidth-limited with tbf.

Each party gets a namespace with one veth (``eth0``, 10.77.0.{1,2,3}/24) whose other end
sits on a bridge in a fourth "hub" namespace, so nothing touches the host's network.
Every ``eth0`` egress is shaped by ``tc qdisc tbf`` (netem is not available). The host
config names LAN addresses and says nothing about TLS, so mutual TLS is on by default;
``qbert-mpc party --config`` runs inside each namespace. Skipped unless ``ip netns`` works
(root, iproute2, veth/bridge/tbf support). Namespaces are removed in a ``finally``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from net.certs import generate
from net.hosts import load_hosts
from net.launcher import launch

sys.path.insert(0, str(Path(__file__).parent))
import tinyjob  # noqa: E402

RATE_MBIT = 40
N = 250_000  # elements of 32 bits per opened vector: 1 MB per message


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=20)


@pytest.fixture
def namespaces():
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("tc") is None:
        pytest.skip("needs root and iproute2 (ip, tc) for network namespaces")
    tag = f"qb{os.getpid() % 100000}"
    hub, parties = f"{tag}hub", [f"{tag}p{r}" for r in range(3)]
    created: list[str] = []
    try:
        try:
            for ns in (hub, *parties):
                ip("netns", "add", ns)
                created.append(ns)
            ip("-n", hub, "link", "add", "br0", "type", "bridge")
            ip("-n", hub, "link", "set", "br0", "up")
            for r, ns in enumerate(parties):
                ip(
                    "-n",
                    hub,
                    "link",
                    "add",
                    f"v{r}",
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    ns,
                )
                ip("-n", hub, "link", "set", f"v{r}", "master", "br0")
                ip("-n", hub, "link", "set", f"v{r}", "up")
                ip("-n", ns, "addr", "add", f"10.77.0.{r + 1}/24", "dev", "eth0")
                ip("-n", ns, "link", "set", "eth0", "up")
                ip("-n", ns, "link", "set", "lo", "up")
                ip(
                    "netns",
                    "exec",
                    ns,
                    "tc",
                    "qdisc",
                    "add",
                    "dev",
                    "eth0",
                    "root",
                    "tbf",
                    "rate",
                    f"{RATE_MBIT}mbit",
                    "burst",
                    "32kbit",
                    "latency",
                    "100ms",
                )
        except (subprocess.CalledProcessError, OSError) as e:
            reason = getattr(e, "stderr", None) or str(e)
            pytest.skip(f"network namespaces not permitted here: {reason.strip()}")
        yield parties
    finally:
        for ns in reversed(created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)


def test_three_namespaces_over_tls_with_limited_bandwidth(namespaces, tmp_path):
    addrs = {r: f"10.77.0.{r + 1}" for r in range(3)}
    generate(tmp_path / "certs", days=1, hosts={r: [a] for r, a in addrs.items()})
    lines = ["[session]", "id = 4242", "timeout = 30", 'ca = "certs/ca.pem"']
    for r, a in addrs.items():
        lines += [
            f"[parties.P{r}]",
            f'host = "{a}"',
            f"port = {9400 + r}",
            f'cert = "certs/P{r}.pem"',
            f'key = "certs/P{r}.key"',
        ]
    cfg = tmp_path / "hosts.toml"
    cfg.write_text("\n".join(lines) + "\n")
    assert load_hosts(cfg).tls is True, "LAN configs default to TLS"

    opts = ("--n", str(N), "--rounds", "2", "--marker", "99")
    commands = {
        r: ["ip", "netns", "exec", ns, *tinyjob.party_command(cfg, r, *opts)]
        for r, ns in enumerate(namespaces)
    }
    results = launch(commands, timeout=60, check=False)
    assert all(x.returncode == 0 for x in results.values()), {
        r: x.stderr[-500:] for r, x in results.items()
    }
    outs = {r: json.loads(x.stdout.strip().splitlines()[-1]) for r, x in results.items()}
    assert outs[1]["result"]["matches_plaintext"] is True
    # P2 sends two opens and the reveal share: 3 MB through a 40 Mbit/s (5 MB/s) egress.
    sent = outs[2]["report"]["transport"]["bytes_sent"]["1"]
    assert sent > 3 * 4 * N
    floor = sent / (RATE_MBIT * 1e6 / 8)
    assert outs[2]["seconds"] >= 0.8 * floor, (outs[2]["seconds"], floor)
