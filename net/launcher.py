"""Start the parties as separate OS processes on this machine and supervise them.

``launch({0: cmd0, 1: cmd1, 2: cmd2}, timeout=60)`` starts every command in its own
process group (``start_new_session``), with stdin closed and stdout/stderr going to
temporary files (a chatty child can never block on a full pipe), then polls them:

* all exit 0: a dict rank -> PartyResult is returned;
* one exits non-zero (or dies of a signal): the launcher sends SIGTERM to the process
  groups of the others, SIGKILL after ``grace`` seconds, reaps them and raises
  PartyFailed naming the party that failed first (``check=False`` returns the results
  instead; the first failure is marked ``first_failure``);
* the overall ``timeout`` passes: everything is killed the same way and LaunchTimeout
  names the parties still running.

Whatever happens, including KeyboardInterrupt or another exception in the parent, every
child is terminated and reaped in a ``finally`` before the launcher returns or raises.
Signals go to the whole process group, so grandchildren (e.g. behind a shell) die too;
at the end every group is sent SIGKILL, also those whose leader exited cleanly, so no
stray grandchild outlives the launch. Children are not reaped until then (exit is
observed with ``waitid(WNOWAIT)``), so a group id can never have been reused by the time
it is signalled. Only a SIGKILL of the parent itself can leave children behind.

Failure order is observed by polling every ``poll`` seconds: two parties that fail within
one poll interval are ordered by rank.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass

from net.errors import ConfigError, LaunchError

_sleep = time.sleep  # indirection so tests can interrupt the supervision loop
_TAIL = 400  # characters of a failed party's stderr quoted in the error message


@dataclass
class PartyResult:
    rank: int
    returncode: int
    stdout: str
    stderr: str
    elapsed: float  # seconds from start until the launcher saw it exit
    killed: bool = False  # terminated by the launcher (after another failure or timeout)
    first_failure: bool = False


class PartyFailed(LaunchError):
    """A party exited with a non-zero status; the others were stopped."""

    def __init__(self, rank: int, results: dict[int, PartyResult]):
        self.rank = rank
        self.results = results
        res = results[rank]
        tail = res.stderr.strip()[-_TAIL:].replace("\n", " | ")
        msg = f"P{rank} failed first with exit status {res.returncode}"
        stopped = sorted(r for r, x in results.items() if x.killed)
        if stopped:
            msg += f"; stopped {', '.join(f'P{r}' for r in stopped)}"
        if tail:
            msg += f"; its stderr ends: {tail}"
        super().__init__(msg)


class LaunchTimeout(LaunchError):
    """The parties did not all finish within the overall timeout; all were killed."""

    def __init__(self, running: list[int], timeout: float, results: dict[int, PartyResult]):
        self.running = running
        self.results = results
        names = ", ".join(f"P{r}" for r in running)
        super().__init__(f"{names} still running after {timeout:g} s; killed all parties")


def _status(proc: subprocess.Popen) -> int | None:
    """Exit status if the child has exited, without reaping it.

    An exited but unreaped child keeps its pid, so its process group id cannot be reused
    and signalling the group (to catch grandchildren) stays safe until ``_stop`` reaps.
    """
    if proc.returncode is not None:
        return proc.returncode
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:  # reaped elsewhere
        return proc.poll()
    if info is None or info.si_pid == 0:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    if proc.returncode is not None:  # already reaped: the group id may be reused
        return
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop(procs: dict[int, subprocess.Popen], grace: float) -> list[int]:
    """Stop every process group and reap every child; ranks that were still running.

    SIGTERM to all groups, SIGKILL after ``grace`` seconds (or once every child has
    exited, to catch leftover grandchildren), then ``wait``. A KeyboardInterrupt only
    skips the grace period; it is re-raised once everything is reaped.
    """
    running = [r for r, p in procs.items() if _status(p) is None]
    interrupted: BaseException | None = None
    try:
        for p in procs.values():
            _signal_group(p, signal.SIGTERM)
        end = time.monotonic() + grace
        while time.monotonic() < end and any(_status(procs[r]) is None for r in running):
            time.sleep(0.01)
    except KeyboardInterrupt as e:
        interrupted = e
    for p in procs.values():
        _signal_group(p, signal.SIGKILL)
    for p in procs.values():
        while True:
            try:
                p.wait()
                break
            except KeyboardInterrupt as e:
                interrupted = e
    if interrupted is not None:
        raise interrupted
    return running


def launch(
    commands: dict[int, list[str]],
    timeout: float,
    env: dict[str, str] | None = None,
    *,
    grace: float = 2.0,
    cwd: str | None = None,
    check: bool = True,
    poll: float = 0.02,
) -> dict[int, PartyResult]:
    """Run one command per party; see the module docstring. ``env`` adds to os.environ."""
    if not commands:
        raise ConfigError("no commands to launch")
    for rank, cmd in commands.items():
        if (
            not isinstance(cmd, (list, tuple))
            or not cmd
            or not all(isinstance(a, str) for a in cmd)
        ):
            raise ConfigError(f"command of P{rank} must be a non-empty list of strings")
    if not timeout > 0:
        raise ConfigError("timeout must be positive")
    child_env = None
    if env is not None:
        child_env = dict(os.environ)
        child_env.update(env)

    procs: dict[int, subprocess.Popen] = {}
    files: dict[int, tuple] = {}
    ended: dict[int, float] = {}
    killed: list[int] = []
    first: int | None = None
    timed_out: list[int] = []
    start = time.monotonic()
    try:
        for rank in sorted(commands):
            out = tempfile.TemporaryFile()
            err = tempfile.TemporaryFile()
            files[rank] = (out, err)
            try:
                procs[rank] = subprocess.Popen(
                    list(commands[rank]),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    env=child_env,
                    cwd=cwd,
                    start_new_session=True,
                )
            except OSError as e:
                raise LaunchError(f"P{rank}: cannot start {commands[rank][0]!r}: {e}") from None
        deadline = start + timeout
        while True:
            for rank in sorted(procs):
                if rank not in ended and (code := _status(procs[rank])) is not None:
                    ended[rank] = time.monotonic() - start
                    if code != 0 and first is None:
                        first = rank
            if first is not None or len(ended) == len(procs):
                break
            if time.monotonic() >= deadline:
                timed_out = sorted(r for r in procs if r not in ended)
                break
            _sleep(poll)
    finally:
        # Runs on success, failure, timeout and KeyboardInterrupt alike: nobody survives.
        killed = _stop(procs, grace)
        now = time.monotonic() - start
        results: dict[int, PartyResult] = {}
        for rank, proc in procs.items():
            out, err = files[rank]
            results[rank] = PartyResult(
                rank=rank,
                returncode=proc.returncode,
                stdout=_read(out),
                stderr=_read(err),
                elapsed=ended.get(rank, now),
                killed=rank in killed,
                first_failure=rank == first,
            )
        for out, err in files.values():
            out.close()
            err.close()
    if timed_out:
        raise LaunchTimeout(timed_out, timeout, results)
    if first is not None and check:
        raise PartyFailed(first, results)
    return results


def _read(f) -> str:
    f.seek(0)
    return f.read().decode("utf-8", errors="replace")
