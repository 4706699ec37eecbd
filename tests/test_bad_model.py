"""Damaged model folders beyond those of test_bert_cli: the owner's parameter file missing,
truncated, of another shape or with a corrupt header; the client's files missing; the
same through ``qbert-mpc party`` (a LAN run, where every party checks its folder before
connecting). Each is a one-line error naming the file, exit 2, no traceback unless
``--debug``."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from models.qmodel import preset
from models.qrandom import random_qbert
from net.hosts import local_hosts


def cli(*argv):
    return subprocess.run(
        [sys.executable, "-m", "net.cli", *argv], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """name -> a model folder (config.json + params.safetensors, no client files)."""
    base = tmp_path_factory.mktemp("bad")
    tiny = random_qbert(replace(preset("tiny"), layers=1), seed=1)
    narrow = random_qbert(replace(preset("tiny"), layers=1, hidden=16, heads=2), seed=1)
    out = {}
    for name in ("truncated", "missing", "header", "other shape", "no client"):
        out[name] = base / name.replace(" ", "_")
        tiny.save(out[name])
    params = out["truncated"] / "params.safetensors"
    params.write_bytes(params.read_bytes()[: params.stat().st_size // 2])
    (out["missing"] / "params.safetensors").unlink()
    raw = bytearray((out["header"] / "params.safetensors").read_bytes())
    raw[8:16] = b"\xff" * 8  # inside the JSON header
    (out["header"] / "params.safetensors").write_bytes(bytes(raw))
    narrow.save(base / "narrow")
    (out["other shape"] / "params.safetensors").write_bytes(
        (base / "narrow" / "params.safetensors").read_bytes()
    )
    return out


EXPECT = {  # folder -> fragments of the one-line error
    "truncated": ["params.safetensors is corrupt"],
    "missing": ["params.safetensors is missing", "qbert-mpc quantize"],
    "header": ["params.safetensors is corrupt"],
    "other shape": ["params.safetensors is corrupt", "shapes do not match"],
    "no client": ["embeddings.safetensors is missing", "qbert-mpc quantize"],
}


def one_line(p) -> str:
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    return lines[0]


def test_damaged_folders_are_one_line_errors(folders, tmp_path):
    hosts = tmp_path / "hosts.toml"
    hosts.write_text(local_hosts(timeout=5).to_toml())
    runs = {}
    for name, folder in folders.items():
        runs[("run", name)] = ["run", "--model", str(folder), "--text", "good movie"]
    # the LAN path: one party, before connecting, checking what it holds: P2 the owner's
    # parameters, P1 (the client) its tokenizer and embeddings
    for name, role in (("truncated", "P2"), ("no client", "P1")):
        runs[("party", name)] = ["party", "--config", str(hosts), "--role", role]
        runs[("party", name)] += ["--model", str(folders[name]), "--text", "good movie"]
    runs[("debug", "truncated")] = runs[("run", "truncated")] + ["--debug"]
    # the helper never reads the owner's parameters: a damaged params file on its host is
    # not its error (it goes on to connect and times out waiting for the others)
    runs[("not mine", "P0")] = ["party", "--config", str(hosts), "--role", "P0"]
    runs[("not mine", "P0")] += ["--model", str(folders["truncated"])]
    with ThreadPoolExecutor(3) as pool:
        done = dict(zip(runs, pool.map(lambda a: cli(*a), runs.values()), strict=True))
    for (how, name), p in done.items():
        if how == "debug":
            assert p.returncode != 0 and "Traceback" in p.stderr and "ModelError" in p.stderr
            continue
        if how == "not mine":
            assert p.returncode != 0 and "PeerTimeout" in one_line(p), (name, one_line(p))
            continue
        line = one_line(p)
        assert line.startswith(f"qbert-mpc {how}: error: ModelError: "), line
        assert all(f in line for f in EXPECT[name]), (how, name, line)
