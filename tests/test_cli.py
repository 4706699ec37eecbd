"""The CLI end to end: real three-process runs on localhost, and its error handling."""

import json
import subprocess
import sys

import pytest

SMALL = ["--job", "demo", "--rows", "4", "--dim", "16", "--out-dim", "8", "--bits", "24"]


def cli(*argv, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "net.cli", *argv], capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("mode", ["3party", "2party"])
def test_run_three_processes(mode, tmp_path):
    report = tmp_path / "r.json"
    p = cli("run", "--mode", mode, "--json", "--report", str(report), *SMALL)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["result"]["matches_plaintext"] is True
    total = out["merged"]["total"]
    assert total["rounds"] > 0 and min(total["online_bytes"]) > 0
    full = json.loads(report.read_text())
    assert set(full["reports"]) == ({"0", "1", "2"} if mode == "3party" else {"1", "2"})


def test_same_result_live_and_dealt():
    outs = [
        json.loads(cli("run", "--mode", m, "--json", *SMALL).stdout) for m in ("3party", "2party")
    ]
    assert outs[0]["result"] == outs[1]["result"]
    assert outs[0]["merged"]["total"]["online_bytes"] == outs[1]["merged"]["total"]["online_bytes"]


def test_help_explains_commands():
    p = cli("--help")
    assert p.returncode == 0
    for cmd in ("run", "party", "deal"):
        assert cmd in p.stdout
    p = cli("party", "--help")
    assert "--config" in p.stdout and "--role" in p.stdout


def test_bad_host_config_is_one_line(tmp_path):
    bad = tmp_path / "hosts.toml"
    bad.write_text("[session]\nid = 1\n[parties.P0]\nhost = 'x'\nport = 0\n")
    p = cli("party", "--config", str(bad), "--role", "P1", *SMALL)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_peer_never_connects_times_out(tmp_path):
    from net.hosts import local_hosts

    cfg = tmp_path / "hosts.toml"
    cfg.write_text(local_hosts(timeout=1.5).to_toml())
    p = cli("party", "--config", str(cfg), "--role", "P2", *SMALL, timeout=60)
    assert p.returncode == 2
    assert "P0" in p.stderr or "P1" in p.stderr
    assert "Traceback" not in p.stderr
