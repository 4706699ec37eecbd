"""net.alloc: large blocks from a heap that is never trimmed, pre-faulted before a run."""

import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(
    """
    import resource
    import numpy as np
    from net.alloc import keep_freed_memory, prefault_heap
    assert not prefault_heap(1 << 20)  # no effect before the allocator setting
    assert keep_freed_memory()
    assert not prefault_heap(0)
    assert prefault_heap(256 << 20)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.ones(200 << 20, np.uint8)  # served from the pre-faulted, freed block
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_prefaulted_heap_serves_a_large_array_without_page_faults():
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) < 50  # without: >= 100 even in 2 MB pages (600 here)


@pytest.mark.parametrize(
    "argv,applied",
    [
        (["party", "--config", "/nonexistent.toml", "--role", "P1"], False),  # live 3-party
        (["party", "--config", "/nonexistent.toml", "--role", "P1", "--material", "m"], True),
        (["deal", "--out", "/nonexistent/dir", "--runs", "0"], True),
    ],
)
def test_cli_keeps_freed_memory_except_in_live_parties(monkeypatch, argv, applied):
    import net.cli as cli

    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(1))
    assert cli.main(argv) != 0  # each fails on its bad path, after the allocator choice
    assert bool(calls) == applied
