"""Output of ``benchmarks.vs_crypten``: JSON, Markdown tables, plots and RESULTS.md.

``write(data, out)`` writes ``vs_crypten.json`` (machine, versions, every number, which are
measured / emulated / projected), ``vs_crypten.md`` (the tables), ``RESULTS.md`` (the
README's Results section) and, when matplotlib is installed, ``vs_crypten_time.png``,
``vs_crypten_bytes.png``, ``vs_crypten_layers.png`` and ``vs_crypten_networks.png``.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks._report import _jsonable, format_table, machine_info

SYSTEMS = ("ours", "crypten")


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for p in ("qbert-mpc", "crypten", "torch", "numpy", "numba", "matplotlib"):
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = None
    return out


def _git() -> dict:
    import os
    import subprocess

    # a run from a snapshot (vs_crypten.in_snapshot) names the source tree it copied
    root = Path(os.environ.get("QBERT_VS_SNAPSHOT") or Path(__file__).resolve().parent.parent)

    def git(*a):
        p = subprocess.run(["git", *a], cwd=root, capture_output=True, text=True)
        return p.stdout.strip() if p.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty": bool(status)}


def _div(a, b):
    if a is None or b is None or not b:
        return None
    return a / b


def side_by_side(results: dict) -> list[dict]:
    """One flat row per workload (the main table)."""
    rows = []
    for name, r in results.items():
        o, c = r.get("ours", {}), r.get("crypten", {})
        row = {
            "workload": name,
            "ours_s": o.get("seconds"),
            "ours_e2e_s": o.get("e2e_seconds"),
            "crypten_s": c.get("seconds"),
            "speedup_online": _div(c.get("seconds"), o.get("seconds")),
            "speedup_e2e": _div(c.get("e2e_seconds"), o.get("e2e_seconds")),
            "ours_live_s": o.get("live_seconds"),
            "speedup_live": _div(c.get("e2e_seconds"), o.get("live_seconds")),
            "ours_MB": _div(o.get("bytes"), 1e6),
            "crypten_MB": _div(c.get("bytes"), 1e6),
            "bytes_ratio": _div(c.get("bytes"), o.get("bytes")),
            "ours_rounds": o.get("rounds"),
            "crypten_rounds": c.get("rounds"),
            "ours_err": o.get("max_err"),
            "crypten_err": c.get("max_err"),
            "ours_offline_MB": _div(o.get("offline_bytes"), 1e6),
            "ours_status": o.get("status"),
            "crypten_status": c.get("status"),
        }
        rows.append(row)
    return rows


COLUMNS = [
    "workload",
    "ours_s",
    "ours_e2e_s",
    "crypten_s",
    "speedup_online",
    "speedup_e2e",
    "ours_live_s",
    "speedup_live",
    "ours_MB",
    "crypten_MB",
    "bytes_ratio",
    "ours_rounds",
    "crypten_rounds",
    "ours_err",
    "crypten_err",
    "ours_offline_MB",
]


def network_rows(results: dict, emulated: dict) -> list[dict]:
    from benchmarks.vs_crypten import NETWORKS, project

    rows = []
    for name, r in results.items():
        o, c = r.get("ours", {}), r.get("crypten", {})
        rows.append(
            {
                "workload": name,
                "network": "loopback (measured)",
                "ours_s": o.get("seconds"),
                "crypten_s": c.get("seconds"),
                "speedup": _div(c.get("seconds"), o.get("seconds")),
            }
        )
        for net in NETWORKS:
            po = project(o, net) if o.get("bytes") is not None else None
            pc = project(c, net) if c.get("bytes") is not None else None
            em = (emulated.get(name) or {}).get(net)
            rows.append(
                {
                    "workload": name,
                    "network": net,
                    "ours_projected_s": po,
                    "ours_emulated_s": em.get("seconds") if em else None,
                    "crypten_projected_s": pc,
                    "speedup": _div(pc, po),
                    "speedup_vs_emulated": _div(pc, em.get("seconds")) if em else None,
                }
            )
    return rows


NET_COLUMNS = [
    "workload",
    "network",
    "ours_s",
    "crypten_s",
    "ours_projected_s",
    "ours_emulated_s",
    "crypten_projected_s",
    "speedup",
    "speedup_vs_emulated",
]


STEPS = ["embed", "qkv", "scores", "softmax", "context", "attn_out", "ln1", "ffn1_gelu"]
STEPS += ["ffn2", "ln2", "pooler", "classifier", "reveal"]


def _order(scope: str) -> tuple:
    """Pipeline order: embed, layer0..N (numerically), the layer steps, head, reveal."""
    if scope.startswith("layer") and scope[5:].isdigit():
        return (1, int(scope[5:]))
    i = STEPS.index(scope) if scope in STEPS else len(STEPS)
    return (0 if scope == "embed" else 2, i)


def _plots(results: dict, emulated: dict, out: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    import numpy as np

    names = list(results)
    files = []
    for key, label, fname in (
        ("seconds", "online wall time (s, log)", "vs_crypten_time.png"),
        ("bytes", "bytes sent per party (log)", "vs_crypten_bytes.png"),
    ):
        fig, ax = plt.subplots(figsize=(9, 4))
        x = np.arange(len(names))
        for i, (sys_, color) in enumerate((("ours", "tab:blue"), ("crypten", "tab:orange"))):
            vals = [results[n].get(sys_, {}).get(key) or np.nan for n in names]
            hatch = [
                "//" if "PROJECT" in str(results[n].get(sys_, {}).get("status", "")) else ""
                for n in names
            ]
            bars = ax.bar(x + (i - 0.5) * 0.4, vals, 0.4, color=color, label=sys_)
            for b, h in zip(bars, hatch, strict=True):
                b.set_hatch(h)
        ax.set_yscale("log")
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.set_ylabel(label)
        ax.set_title(f"qbert-mpc vs CrypTen: {label.split(' (')[0]} (hatched: projected)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / fname, dpi=120)
        plt.close(fig)
        files.append(fname)
    layer_plots = []
    for name, prefix in (("minilm", "bert."), ("bert_layer", "bert.")):
        scopes = (results.get(name, {}).get("ours") or {}).get("scopes") or {}
        parts = {k[len(prefix) :]: v for k, v in scopes.items() if k.startswith(prefix)}
        parts = {k: v for k, v in parts.items() if "." not in k}
        if not parts and name == "minilm":
            parts = {k: v for k, v in scopes.items() if "." not in k and k not in ("weights",)}
        if parts:
            layer_plots.append((name, dict(sorted(parts.items(), key=lambda kv: _order(kv[0])))))
    if layer_plots:
        fig, axes = plt.subplots(1, len(layer_plots), figsize=(6 * len(layer_plots), 4))
        axes = np.atleast_1d(axes)
        for ax, (name, parts) in zip(axes, layer_plots, strict=True):
            ks = list(parts)
            ax.bar(ks, [parts[k]["seconds"] for k in ks], color="tab:blue")
            ax2 = ax.twinx()
            ax2.plot(ks, [parts[k]["bytes"] / 1e6 for k in ks], "o-", color="tab:red")
            ax2.set_ylabel("MB sent (larger party)", color="tab:red")
            ax.set_ylabel("online s (median)")
            ax.set_title(f"qbert-mpc {name}: per-scope breakdown")
            ax.tick_params(axis="x", rotation=45)
        fig.tight_layout()
        fig.savefig(out / "vs_crypten_layers.png", dpi=120)
        plt.close(fig)
        files.append("vs_crypten_layers.png")
    rows = [r for r in network_rows(results, emulated) if r["workload"] == "bert_layer"]
    if rows:
        fig, ax = plt.subplots(figsize=(7, 4))
        nets = ["loopback", "lan", "wan"]
        o = [rows[0]["ours_s"]] + [r["ours_projected_s"] for r in rows[1:]]
        e = [rows[0]["ours_s"]] + [r["ours_emulated_s"] for r in rows[1:]]
        c = [rows[0]["crypten_s"]] + [r["crypten_projected_s"] for r in rows[1:]]
        x = np.arange(3)
        for i, (vals, lab) in enumerate(
            ((o, "ours (projected)"), (e, "ours (emulated)"), (c, "CrypTen (projected)"))
        ):
            ax.bar(x + (i - 1) * 0.27, [v or np.nan for v in vals], 0.27, label=lab)
        ax.set_yscale("log")
        ax.set_xticks(x, nets)
        ax.set_ylabel("s (log)")
        ax.set_title("one BERT-base encoder layer: loopback measured, LAN/WAN")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "vs_crypten_networks.png", dpi=120)
        plt.close(fig)
        files.append("vs_crypten_networks.png")
    return files


# issue 6; the end-to-end goal is read against both end-to-end measures
GOALS = {"speedup_e2e": 25, "speedup_live": 25, "speedup_online": 50, "bytes_ratio": 45}


def headline(rows: list[dict]) -> list[str]:
    """BERT rows against the goals of issue 6 (which numbers are projected is said)."""
    out = []
    for r in rows:
        if r["workload"] not in ("bert_layer", "bert_base"):
            continue
        kind = "measured"
        if "PROJECT" in str(r.get("ours_status")) or "PROJECT" in str(r.get("crypten_status")):
            kind = "ours PROJECTED" if "PROJECT" in str(r.get("ours_status")) else "measured"
            if "PROJECT" in str(r.get("crypten_status")):
                kind += ", CrypTen PROJECTED"
        parts = []
        for k, goal in GOALS.items():
            v = r.get(k)
            if v is not None:
                ok = "met" if v >= goal else "not met"
                parts.append(f"{k} {v:.1f}× (goal ≥ {goal}×: {ok})")
        out.append(f"- **{r['workload']}** ({kind}): " + "; ".join(parts))
    return out


def _notes(data: dict) -> list[str]:
    res = data["results"]
    notes = [
        "- **Measured** (loopback, this machine, one invocation, ours and CrypTen interleaved "
        "per workload): every `ours_*` and `crypten_*` column unless a status below says "
        "otherwise. Times are medians of the runs of the operation on already-shared inputs, "
        "after one unmeasured warm-up in both systems (CrypTen: one run of the operation; "
        "qbert-mpc: one call, or for the BERT rows one encoder layer: Numba cache loads, "
        "limb plans and heap growth are once per process).",
        "- `ours_s`: qbert-mpc's online phase (P1, P2 as TCP processes on material the helper "
        "dealt beforehand); `ours_e2e_s` adds the helper's dealing time per call (its share "
        "of the dealt bytes). CrypTen "
        "(trusted first party) makes its correlations inside the timed run, so `crypten_s` "
        "is end to end; `speedup_online` = crypten_s / ours_s, `speedup_e2e` = crypten_s / "
        "ours_e2e_s. `ours_live_s` (BERT rows): one query as three processes with the helper "
        "dealing its material live, starting with the query (no head start), all three on "
        "the same 2 cores: the query's end-to-end latency in the 3-party deployment; "
        "`speedup_live` = crypten_s / ours_live_s.",
        "- Bytes: MB SENT per party. qbert-mpc: frame bytes of the busier party. CrypTen: its "
        "counter (sent + received per party) normalised to the mean sent per party, "
        "(c0 + c1) / 4. Helper material (`ours_offline_MB`, P0 to P1/P2) is not in the "
        "online bytes; CrypTen's TFP has no offline traffic.",
        "- Rounds: qbert-mpc's measured critical path (Lamport clock in every frame); "
        "CrypTen's count of communication calls per party.",
        "- Max error against the float function of the same real inputs (output units: "
        "softmax probability, GELU and matmul values, LayerNorm int8 output LSBs). qbert-mpc "
        "computes in its quantized formats (e.g. softmax to 1/255, GELU to 1/8) and its "
        "output equals its integer reference bit for bit; the BERT rows' `ours_err` is "
        "against that integer reference (0 = exact), CrypTen's against float torch.",
    ]
    for extra in data.get("merged_from", []):
        notes.append(
            f"- Merged from a further invocation (`{extra.get('command', '?')}`) on the same "
            "machine: the workloads it ran replace the first run's; each row's qbert-mpc and "
            "CrypTen numbers still come from one invocation, interleaved."
        )
    for name, r in res.items():
        for s in SYSTEMS:
            st = str((r.get(s) or {}).get("status", ""))
            if st and st != "measured":
                notes.append(f"- **{name}, {s}: {st}**")
            if (r.get(s) or {}).get("projection"):
                notes.append(f"  ({r[s]['projection']})")
    acc = (res.get("minilm") or {}).get("accuracy")
    if acc:
        notes.append(
            f"- MiniLM sentiment accuracy on the same {acc['sentences']} UCI sentences "
            f"(seq {acc['seq_len']}): float {acc['float']:.1%}, qbert-mpc W8A8 "
            f"{acc['ours']:.1%} (agrees with float on {acc['ours_agree_float']:.1%}), CrypTen "
            f"fixed point {acc['crypten']:.1%} (agrees with float on "
            f"{acc['crypten_agree_float']:.1%}; max logit error "
            f"{acc['crypten_max_logit_err']:.3g})."
            " qbert-mpc's predictions come from its integer reference, which the secure "
            "model reproduces exactly; the minilm timing row is one sentence."
        )
    notes.append(
        "- LAN (1 Gbit/s, 0.5 ms RTT) and WAN (100 Mbit/s, 40 ms RTT): `*_projected_s` = "
        "loopback time + rounds × RTT + bytes per party / bandwidth, the same formula for "
        "both systems; `ours_emulated_s` = qbert-mpc measured with bandwidth and latency "
        "shaping in its transport (net/shaping.py). CrypTen is projected only."
    )
    return notes


def write(data: dict, out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    machine = data.get("machine") or machine_info()  # re-rendering keeps the run's machine
    machine.setdefault("versions", _versions())
    if not (machine.get("git") or {}).get("commit"):
        machine["git"] = {**_git(), "note": "read when the report was written"}
    rows = side_by_side(data["results"])
    nets = network_rows(data["results"], data.get("emulated", {}))
    files = _plots(data["results"], data.get("emulated", {}), out)
    doc = {
        **data,
        "name": "vs_crypten",
        "machine": machine,
        "columns": COLUMNS,
        "rows": rows,
        "network_rows": nets,
        "plots": files,
    }
    (out / "vs_crypten.json").write_text(json.dumps(_jsonable(doc), indent=1) + "\n")
    m = machine
    head = (
        f"Machine: {m['cpu_model']}, {m['cores_usable']} usable core(s) shared with other "
        f"jobs (timings noisy); Python {m['python']}, torch {m['versions']['torch']}, CrypTen "
        f"{m['versions']['crypten']}, numpy {m['numpy']}; {m['timestamp_utc']}; "
        f"{'--quick (small shapes)' if data['settings']['quick'] else 'full sizes'}, "
        f"{data['settings']['repeats']} run(s) per workload; code at {m['git']['commit']}"
        f"{' plus uncommitted changes' if m['git']['dirty'] else ''}."
    )
    if not data.get("complete", True):
        head += " **PARTIAL: the run was still in progress when this was written.**"
    md = [
        "## Results: qbert-mpc vs CrypTen",
        "",
        "Generated by `python -m benchmarks.vs_crypten` (`make bench-crypten`); numbers from "
        "`benchmarks/results/vs_crypten.json`.",
        "",
        head,
        "",
        *headline(rows),
        "",
        format_table(rows, COLUMNS),
        "",
        *_notes(data),
        "",
        "### Network settings",
        "",
        format_table(nets, NET_COLUMNS),
        "",
    ]
    md += [f"![{f}]({f})" for f in files]
    text = "\n".join(md) + "\n"
    (out / "RESULTS.md").write_text(text)
    (out / "vs_crypten.md").write_text(text)
    if data.get("complete", True) and not data["settings"]["quick"]:
        rel = "benchmarks/results"
        section = [
            *md[:6],  # title, source, machine
            *headline(rows),
            "",
            format_table(rows, COLUMNS),
            "",
            "Every number's meaning, the LAN/WAN table (emulated and projected) and all plots: "
            f"[{rel}/RESULTS.md]({rel}/RESULTS.md).",
            "",
            *[f"![{f}]({rel}/{f})" for f in files[:1]],
        ]
        splice_readme(out, "\n".join(section))
    return text


README_BEGIN = "<!-- vs_crypten results: begin (written by python -m benchmarks.vs_crypten) -->"
README_END = "<!-- vs_crypten results: end -->"


def splice_readme(out: Path, section: str) -> bool:
    """Replace the README's Results section (between ``README_BEGIN`` and ``README_END``)
    when ``out`` is this repository's ``benchmarks/results``; False if it is not."""
    root = Path(out).resolve().parent.parent
    readme = root / "README.md"
    if Path(out).resolve() != root / "benchmarks" / "results" or not readme.exists():
        return False
    s = readme.read_text()
    i, j = s.find(README_BEGIN), s.find(README_END)
    if i < 0 or j < i:
        return False
    readme.write_text(s[: i + len(README_BEGIN)] + "\n" + section.rstrip() + "\n" + s[j:])
    return True
