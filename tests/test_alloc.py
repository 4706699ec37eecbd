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


def test_only_parties_on_dealt_material_prefault(monkeypatch):
    import net.party as party

    calls = []
    monkeypatch.setattr(party, "prefault_heap", lambda n: calls.append(n) or True)
    job = type("Job", (), {"heap_bytes": staticmethod(lambda args: 123)})()
    assert not party.warm_heap(job, None, None) and calls == []  # live 3-party
    assert party.warm_heap(job, None, "material/") and calls == [123]
    job.heap_bytes = None
    assert not party.warm_heap(job, None, "material/")
