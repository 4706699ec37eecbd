"""Shared helpers for benchmark scripts: timing, machine description, JSON + Markdown output.

Typical use::

    from benchmarks._report import machine_info, time_call, time_calls, write_results

    rows = [{"section": "matmul", "case": "128x768x768", "ms": time_call(f)["median_ms"]}]
    md = write_results("bench_x", rows, "benchmarks/results", ["case", "ms"])
    print(md)

``write_results`` writes ``<out_dir>/<name>.json`` (machine info, columns, rows, extra) and
``<out_dir>/<name>.md`` (one Markdown table per ``section`` value of the rows, in order of
first appearance; columns that a section never fills are left out of its table).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return None
    return getattr(mod, "__version__", "unknown")


def _blas() -> str | None:
    try:
        import numpy as np

        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - older numpy: no dict mode
        return None


def machine_info() -> dict[str, Any]:
    """CPU model, core counts, OS, Python and library versions, timestamp (UTC)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "numpy": _version("numpy"),
        "numba": _version("numba"),
        "blas": _blas(),
        "timestamp_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def time_call(fn: Callable[[], Any], repeats: int = 7, warmup: int = 1) -> dict[str, float]:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times; times in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return {
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "max_ms": max(times),
        "repeats": len(times),
    }


def time_calls(
    fns: dict[str, Callable[[], Any]], repeats: int = 7, warmup: int = 1
) -> dict[str, dict[str, float]]:
    """Like ``time_call`` for several functions, interleaved round by round.

    Interleaving exposes all candidates to the same background load, which makes their
    ratios far more stable on a shared machine than timing them one after the other.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(max(1, repeats)):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {
        name: {
            "median_ms": statistics.median(ts),
            "min_ms": min(ts),
            "max_ms": max(ts),
            "repeats": len(ts),
        }
        for name, ts in times.items()
    }


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        if v == 0:
            return "0"
        mag = abs(v)
        if mag >= 1000:
            return f"{v:,.0f}"
        if mag >= 100:
            return f"{v:.1f}"
        if mag >= 1:
            return f"{v:.2f}"
        return f"{v:.3g}"
    return str(v).replace("|", "\\|")


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Markdown table of ``rows`` restricted to ``columns`` (missing cells are blank)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def format_sections(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> str:
    """One table per ``section`` (first-appearance order), dropping columns a section lacks."""
    groups: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row.get("section"), []).append(row)
    parts = []
    for section, group in groups.items():
        cols = [c for c in columns if c != "section" and any(r.get(c) is not None for r in group)]
        if section is not None:
            parts.append(f"### {section}\n")
        parts.append(format_table(group, cols) + "\n")
    return "\n".join(parts)


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item") and callable(v.item):  # numpy scalars
        return v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def write_results(
    name: str,
    rows: Sequence[dict[str, Any]],
    out_dir: str | os.PathLike,
    columns: Sequence[str],
    *,
    title: str | None = None,
    extra: dict[str, Any] | None = None,
    machine: dict[str, Any] | None = None,
) -> str:
    """Write ``<out_dir>/<name>.json`` and ``<out_dir>/<name>.md``; return the Markdown text."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    machine = machine or machine_info()
    doc = {
        "name": name,
        "machine": machine,
        "columns": list(columns),
        "rows": list(rows),
        "extra": extra or {},
    }
    (out / f"{name}.json").write_text(json.dumps(_jsonable(doc), indent=2) + "\n")
    head = [f"# {title or name}", ""]
    head.append(
        f"Machine: {machine.get('cpu_model')}, {machine.get('cores_usable')} usable core(s); "
        f"Python {machine.get('python')}, numpy {machine.get('numpy')}, "
        f"numba {machine.get('numba')}, BLAS {machine.get('blas')}; {machine.get('timestamp_utc')}"
    )
    head.append("")
    md = "\n".join(head) + "\n" + format_sections(rows, columns)
    (out / f"{name}.md").write_text(md)
    return md
