"""The launcher starts three small ``python -c`` children and always reaps them."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

import net.launcher as launcher
from net.errors import ConfigError, LaunchError
from net.launcher import LaunchTimeout, PartyFailed, launch

PY = sys.executable


def py(code: str, *args: str) -> list[str]:
    return [PY, "-c", code, *args]


def _proc_stat(pid: int) -> tuple[str, int] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return fields[0], int(fields[1])  # state, parent pid


def reaped(pid: int) -> bool:
    """A direct child of this process is gone: no zombie left behind."""
    stat = _proc_stat(pid)
    return stat is None or stat[1] != os.getpid()


def dead(pid: int) -> bool:
    """Not running any more (a grandchild may linger as a zombie of init)."""
    stat = _proc_stat(pid)
    return stat is None or stat[0] in "ZX"


def wait_for_files(paths, timeout=10.0):
    end = time.monotonic() + timeout
    while not all(os.path.exists(p) and os.path.getsize(p) > 0 for p in paths):
        assert time.monotonic() < end, "children did not start"
        time.sleep(0.01)


# A child that records its pid (once it is ready) and then sleeps.
SLEEPER = """
import os, signal, sys, time
if sys.argv[2] == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(60)
"""

# Fails once the given files exist (so the sleepers are ready before it dies).
FAILER = """
import os, sys, time
while not all(os.path.exists(p) for p in sys.argv[1:]):
    time.sleep(0.01)
sys.stderr.write("boom: something went wrong\\n")
sys.exit(3)
"""


def test_three_children_succeed():
    code = "import sys; print('hello from', sys.argv[1]); print('note', file=sys.stderr)"
    results = launch({r: py(code, f"P{r}") for r in range(3)}, timeout=30)
    assert sorted(results) == [0, 1, 2]
    for r, res in results.items():
        assert res.rank == r and res.returncode == 0
        assert res.stdout == f"hello from P{r}\n"
        assert res.stderr == "note\n"
        assert not res.killed and not res.first_failure


def test_large_output_does_not_block():
    code = "import sys; sys.stdout.write('o' * 2_000_000); sys.stderr.write('e' * 2_000_000)"
    results = launch({r: py(code) for r in range(3)}, timeout=30)
    assert all(len(res.stdout) == len(res.stderr) == 2_000_000 for res in results.values())


def test_env_is_added_to_the_environment():
    code = "import os; print(os.environ['QB_TEST'], 'PATH' in os.environ)"
    results = launch({0: py(code)}, timeout=30, env={"QB_TEST": "yes"})
    assert results[0].stdout == "yes True\n"


def test_failing_child_stops_the_others(tmp_path):
    pid0, pid2 = str(tmp_path / "p0"), str(tmp_path / "p2")
    commands = {
        0: py(SLEEPER, pid0, "normal"),
        1: py(FAILER, pid0, pid2),
        2: py(SLEEPER, pid2, "ignore-term"),  # needs SIGKILL after the grace period
    }
    start = time.monotonic()
    with pytest.raises(PartyFailed) as info:
        launch(commands, timeout=30, grace=0.5)
    assert time.monotonic() - start < 15
    err = info.value
    assert err.rank == 1
    assert str(err).startswith("P1 failed first with exit status 3")
    assert "boom: something went wrong" in str(err)
    assert "stopped P0, P2" in str(err)
    res = err.results
    assert res[1].returncode == 3 and res[1].first_failure and not res[1].killed
    assert res[0].returncode == -signal.SIGTERM and res[0].killed
    assert res[2].returncode == -signal.SIGKILL and res[2].killed
    for path in (pid0, pid2):
        assert reaped(int(open(path).read()))


def test_check_false_returns_results(tmp_path):
    pid0 = str(tmp_path / "p0")
    commands = {0: py(SLEEPER, pid0, "normal"), 1: py(FAILER, pid0), 2: py("pass")}
    results = launch(commands, timeout=30, check=False)
    assert results[1].first_failure and results[1].returncode == 3
    assert results[0].killed and results[0].returncode == -signal.SIGTERM
    assert not results[2].first_failure


def test_child_killed_by_a_signal_counts_as_failure(tmp_path):
    pid0 = str(tmp_path / "p0")
    suicide = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    with pytest.raises(PartyFailed) as info:
        launch({0: py(SLEEPER, pid0, "normal"), 2: py(suicide)}, timeout=30)
    assert info.value.rank == 2 and "exit status -9" in str(info.value)


def test_overall_timeout_kills_everyone(tmp_path):
    pids = [str(tmp_path / f"p{r}") for r in (1, 2)]
    commands = {0: py("pass"), 1: py(SLEEPER, pids[0], "normal"), 2: py(SLEEPER, pids[1], "x")}
    start = time.monotonic()
    with pytest.raises(LaunchTimeout) as info:
        launch(commands, timeout=1.0, grace=0.5)
    assert time.monotonic() - start < 6
    assert info.value.running == [1, 2]
    assert str(info.value).startswith("P1, P2 still running after 1 s")
    assert isinstance(info.value, LaunchError)
    assert info.value.results[0].returncode == 0 and not info.value.results[0].killed
    for p in pids:
        assert reaped(int(open(p).read()))


def test_keyboard_interrupt_reaps_children(tmp_path, monkeypatch):
    pids = [str(tmp_path / f"p{r}") for r in range(3)]

    def interrupt_once_ready(_seconds):
        if all(os.path.exists(p) for p in pids):
            raise KeyboardInterrupt
        time.sleep(0.01)

    monkeypatch.setattr(launcher, "_sleep", interrupt_once_ready)
    with pytest.raises(KeyboardInterrupt):
        launch({r: py(SLEEPER, pids[r], "normal") for r in range(3)}, timeout=30)
    for p in pids:
        assert reaped(int(open(p).read()))


def test_grandchildren_die_with_their_group(tmp_path):
    gpid = tmp_path / "grandchild"
    shell = f"sleep 60 & echo $! > {gpid}; wait"
    commands = {0: ["sh", "-c", shell], 1: py(FAILER, str(gpid))}
    with pytest.raises(PartyFailed):
        launch(commands, timeout=30, grace=0.5)
    wait_for_files([gpid])
    pid = int(gpid.read_text())
    end = time.monotonic() + 5
    while not dead(pid) and time.monotonic() < end:
        time.sleep(0.01)
    assert dead(pid)


def test_start_failure_reaps_started_children(tmp_path):
    pid0 = str(tmp_path / "p0")
    commands = {0: py(SLEEPER, pid0, "normal"), 1: [str(tmp_path / "no-such-program")]}
    with pytest.raises(LaunchError, match="P1: cannot start"):
        launch(commands, timeout=30)
    if os.path.exists(pid0):  # P0 may have been killed before it wrote its pid
        assert reaped(int(open(pid0).read()))


@pytest.mark.parametrize(
    "commands, timeout",
    [({}, 1), ({0: []}, 1), ({0: "python"}, 1), ({0: [PY, 1]}, 1), ({0: [PY]}, 0)],
)
def test_bad_arguments(commands, timeout):
    with pytest.raises(ConfigError):
        launch(commands, timeout=timeout)
