"""No secret input shows up in what the parties print, report or raise.

P1's secret input is a recognisable 32-bit marker; every byte the parties write to stdout
and stderr (successful 3-party and 2-party runs, a failing run), the merged report, and
the messages of errors raised in-process are searched for its decimal and hex forms.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from mpc.ring import ring
from net.accounting import merge_reports
from net.hosts import local_hosts
from net.local import run_local

sys.path.insert(0, str(Path(__file__).parent))
import tinyjob  # noqa: E402

MARKER = 0x5EC12E75
FORMS = [
    str(MARKER),  # 1589784181
    str(MARKER - 2**32),  # as a signed 32-bit value
    f"{MARKER:08x}",  # 5ec12e75
    MARKER.to_bytes(4, "little").hex(),  # 752ec15e, the packed wire order
    str(MARKER >> 8),  # the marker right-shifted (truncation)
]
FORMS_RE = re.compile("|".join(re.escape(f) for f in FORMS), re.IGNORECASE)


def assert_clean(text: str, where: str) -> None:
    m = FORMS_RE.search(text)
    if m is not None:
        context = text[max(m.start() - 60, 0) : m.end() + 20]
        raise AssertionError(f"{where} leaks the secret marker: ...{context}...")


def outputs(results) -> dict[str, str]:
    return {
        f"P{r} {name}": getattr(res, name)
        for r, res in results.items()
        for name in ("stdout", "stderr")
    }


def test_cli_runs_print_and_report_no_secret(tmp_path):
    common = ("--marker", hex(MARKER), "--n", "64", "--rounds", "3")
    hosts = {name: local_hosts(timeout=20) for name in ("live", "dealt", "fail")}
    cfgs = {}
    for name, h in hosts.items():
        cfgs[name] = tmp_path / f"{name}.toml"
        cfgs[name].write_text(h.to_toml())
    mat = tmp_path / "material"
    deal_cmd = [
        sys.executable,
        tinyjob.SCRIPT,
        "deal",
        "--job",
        "tiny",
        "--out",
        str(mat),
        "--json",
        *common,
    ]
    with ThreadPoolExecutor(3) as pool:
        live = pool.submit(tinyjob.launch_tiny, cfgs["live"], *common, timeout=60)
        fail = pool.submit(tinyjob.launch_tiny, cfgs["fail"], *common, "--fail", "spec", timeout=60)
        dealt = subprocess.run(deal_cmd, capture_output=True, text=True, timeout=60)
        live, fail = live.result(), fail.result()
    assert dealt.returncode == 0, dealt.stderr
    two = tinyjob.launch_tiny(
        cfgs["dealt"], *common, "--material", str(mat), ranks=(1, 2), timeout=60
    )
    assert all(r.returncode == 0 for r in live.values()), outputs(live)
    assert all(r.returncode == 0 for r in two.values()), outputs(two)
    assert fail[1].returncode != 0 and "SpecMismatch" in fail[1].stderr, outputs(fail)

    texts = {"deal stdout": dealt.stdout, "deal stderr": dealt.stderr}
    for name, res in (("live", live), ("dealt", two), ("failing", fail)):
        texts.update({f"{name} {k}": v for k, v in outputs(res).items()})
    for name, res in (("live", live), ("dealt", two)):
        outs = {r: json.loads(x.stdout.strip().splitlines()[-1]) for r, x in res.items()}
        assert outs[1]["result"]["matches_plaintext"] is True
        reports = {r: o["report"] for r, o in outs.items()}
        texts[f"{name} merged report"] = json.dumps(merge_reports(reports))
    for where, text in texts.items():
        assert_clean(text, where)
    assert any(len(t) > 1000 for t in texts.values()), "the scan saw real output"


def test_errors_and_reprs_show_no_secret():
    r = ring(32)
    secret = np.full(4, MARKER, dtype=np.uint64)
    seen: list[str] = []

    def program(rt):
        x = rt.input(1, r, (4,), secret if rt.rank == 1 else None)
        seen.extend([repr(x), str(x), repr(rt), repr(rt.prg(0 if rt.rank else 1))])
        for bad in (
            lambda: rt.input(1, r, (5,), secret),  # wrong declared shape
            lambda: x + rt.input(1, ring(16), (4,), secret[:4]),
        ):  # ring mismatch
            if rt.rank == 1:
                with pytest.raises(Exception) as info:  # noqa: PT011 - any error, no leak
                    bad()
                seen.append(f"{type(info.value).__name__}: {info.value}")
        opened = rt.open(x)
        return None if opened is None else bool((opened == secret).all())

    run = run_local(program, mode="live")
    assert run.results[1] is True  # the marker really was the input
    seen.append(json.dumps(merge_reports(run.reports)))
    for text in seen:
        assert_clean(text, "in-process text")
    assert_clean(FORMS[0].replace("5", "6"), "self-check")
    with pytest.raises(AssertionError):
        assert_clean(f"x = {MARKER}", "self-check")


def test_private_weight_shows_no_secret(caplog):
    """P2's private weight holds the marker: prepared, used in a linear layer, misused
    (errors on P2); no log record (DEBUG), report, repr or error message shows it."""
    from mpc.shares import Shared
    from protocols.beaver import linear, prepare_weight

    caplog.set_level(logging.DEBUG)
    r = ring(32)
    weight = np.full((4, 3), MARKER, dtype=np.uint64)
    x = np.arange(8, dtype=np.uint64).reshape(2, 4) % 3 + 1  # P1's input, public here
    want = r.reduce(x @ weight)
    seen: list[str] = []

    def program(rt):
        xs = rt.input(1, r, x.shape, x if rt.rank == 1 else None)
        pw = prepare_weight(rt, weight if rt.rank == 2 else None, r, weight.shape, owner=2)
        if rt.rank == 2:
            assert (pw.w == MARKER).all()  # the owner really holds the marker
            for bad in (
                lambda: prepare_weight(rt, weight[:3], r, weight.shape),  # wrong shape
                lambda: linear(rt, Shared(ring(16), xs.data, 2), pw),  # ring mismatch
                lambda: linear(rt, Shared(r, np.zeros((2, 5), np.uint64), 2), pw),  # shape
            ):
                with pytest.raises(Exception) as info:  # noqa: PT011 - any error, no leak
                    bad()
                seen.append(f"{type(info.value).__name__}: {info.value}")
        y = linear(rt, xs, pw)
        seen.extend([repr(pw), str(pw), repr(y), repr(rt)])
        opened = rt.open(y) if not rt.is_dealer else None
        return None if opened is None else bool((opened == want).all())

    run = run_local(program, mode="live")
    assert run.results[1] is True and run.results[2] is True
    assert len(seen) == 3 + 4 * 3
    seen.append(json.dumps(merge_reports(run.reports)))
    seen.extend(json.dumps(rep) for rep in run.reports.values())
    seen.extend(repr(rt) for rt in run.runtimes.values())
    seen.append(caplog.text)
    for text in seen:
        assert_clean(text, "in-process text")
