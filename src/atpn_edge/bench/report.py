"""Bench/compare outputs: JSON, a Markdown table, and PNG plots (latency vs NME, size vs NME,
Pareto front marked: the models no other model beats on both axes)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from atpn_edge.io import write_json, write_text

log = logging.getLogger(__name__)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points (cost, error) not dominated by another point (<= on both, < on one)."""
    front = []
    for i, (c, e) in enumerate(points):
        dominated = any((c2 <= c and e2 <= e) and (c2 < c or e2 < e) for j, (c2, e2) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return front


def fmt(value: Any, spec: str, empty: str = "-") -> str:
    if value is None:
        return empty
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def host_line(result: dict[str, Any]) -> str:
    h = result["host"]
    rt = h.get("runtimes", {})
    peak = h.get("peak_gmacs") or {}
    text = (f"Host: {h.get('cpu')} ({h.get('machine')}, {h.get('cores')} cores, flags {', '.join(h.get('cpu_flags', [])) or '-'}), "
            f"load {h.get('load_average_1m')}; torch {rt.get('torch', '-')}, ai-edge-litert {rt.get('ai-edge-litert', '-')}, "
            f"onnxruntime {rt.get('onnxruntime', '-')}, executorch {rt.get('executorch', '-')}.")
    if peak:
        def per_threads(values: dict | None) -> str:
            return ", ".join(f"{v} GMAC/s at {t} thread(s)" for t, v in (values or {}).items()) or "-"

        text += f" Measured peak ({peak.get('method')}): fp32 {per_threads(peak.get('fp32'))}; int8 {per_threads(peak.get('int8'))}."
    return text


def artifact_name(row: dict[str, Any]) -> str:
    """The file a row measured when the user named one ("" for rows exported on the fly: `checkpoint -> spec`):
    three int8 .tflite files of one network are otherwise three identical `atpn int8` rows."""
    path = str(row.get("path") or "")
    named = " -> " not in path and Path(path).suffix in (".tflite", ".onnx", ".pte") and Path(path).stem != row.get("model")
    return Path(path).name if named else ""


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = ("| model | variant | format | runtime | threads | params | MACs (ours) | MACs (TFLite) | diff | size | "
            "median ms | p90 ms | runs | peak MB | GMAC/s (% peak) | NME | NME drop | FR@0.1 | AUC@0.1 | pose MAE | face acc | "
            "real-photo NME | status |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lat = r.get("latency_ms") or {}
        share = r.get("peak_share")
        gmacs = fmt(r.get("gmacs_per_s"), ".2f") + (f" ({share:.0%})" if share is not None else "")
        status = r.get("status", "ok")
        if r.get("error") and status != "ok":
            status += f": {r['error']}"
        name = r["model"] + (" (approx.)" if r.get("approximate") else "") + (" (untrained latency reference)" if r.get("reference") else "")
        name += f" `{artifact_name(r)}`" if artifact_name(r) and not r.get("reference") else ""
        median = fmt(lat.get("median"), ".3f") + ("*" if lat.get("median_is_avg") else "")
        lines.append("| " + " | ".join([
            name, str(r["variant"]), str(r["format"]), str(r["runtime"]), str(r["threads"]),
            fmt(r.get("params") and r["params"] / 1e3, ".1f") + ("k" if r.get("params") else ""),
            fmt(r.get("macs") and r["macs"] / 1e6, ".2f") + ("M" if r.get("macs") else ""),
            fmt(r.get("macs_converter") and r["macs_converter"] / 1e6, ".2f") + ("M" if r.get("macs_converter") else ""),
            fmt(r.get("macs_diff_rel"), "+.1%"),
            fmt(r.get("size_bytes") and r["size_bytes"] / 1024, ".0f") + (" KiB" if r.get("size_bytes") else ""),
            median, fmt(lat.get("p90"), ".3f"), fmt(lat.get("runs"), "d"), fmt(r.get("peak_memory_mb"), ".1f"), gmacs,
            fmt(r.get("nme"), ".2%"), fmt(r.get("nme_drop_rel"), "+.1%"), fmt(r.get("fr_10"), ".1%"),
            fmt(r.get("auc_10"), ".3f"), fmt(r.get("pose_mae"), ".2f"), fmt(r.get("face_score_acc"), ".3f"),
            fmt(r.get("real_nme"), ".2%") + (f" ({r['real_n_images']})" if r.get("real_n_images") else ""),
            status.replace("|", "/"),
        ]) + " |")
    return "\n".join(lines)


RUNTIME_NAMES = {"litert": "LiteRT + XNNPACK", "onnxruntime": "ONNX Runtime CPU", "executorch": "ExecuTorch + XNNPACK",
                 "torch": "PyTorch eager"}
_RUNTIME_MARKERS = {"litert": "o", "onnxruntime": "s", "executorch": "D", "torch": "^"}


def plot_tradeoffs(rows: list[dict[str, Any]], path: str | Path, x_key: str, x_label: str, title: str) -> bool:
    """Scatter of `x_key` against NME for rows with both; the Pareto front joined and ringed.

    Points are numbered and named in a legend beside the axes (model, variant, runtime) instead of
    being labelled in place: near-identical models (float vs int8 of one network) sit on top of each
    other and in-place labels overlap. Colour = model, marker = runtime, hollow = int8.
    """
    import textwrap

    try:
        import matplotlib
    except ImportError:  # a runtime-only install: the tables stand without the plots
        log.warning("matplotlib is not installed: no %s", path)
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from atpn_edge.io import atomic_path

    def x_of(r):
        return (r.get("latency_ms") or {}).get("median") if x_key == "latency" else (r.get("size_bytes") or 0) / 1024

    chosen = [r for r in rows if r.get("status") == "ok" and r.get("nme") is not None and x_of(r)]
    if not chosen:
        return False
    points = [(float(x_of(r)), float(r["nme"]) * 100) for r in chosen]
    front = sorted(pareto_front(points), key=lambda i: points[i][0])
    models = list(dict.fromkeys(r["model"] for r in chosen))
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(models)}
    fig, ax = plt.subplots(figsize=(11, 5.5))
    for number, (r, (x, y)) in enumerate(zip(chosen, points), start=1):
        int8 = "int8" in str(r["variant"])
        colour = colours[r["model"]]
        name = (f"{number}: {r['model']} {r['variant']}, {RUNTIME_NAMES.get(r['runtime'], r['runtime'])}"
                + (f" ({artifact_name(r)})" if artifact_name(r) else "") + (" (approx. NME)" if r.get("approximate") else ""))
        ax.scatter(x, y, marker=_RUNTIME_MARKERS.get(r["runtime"], "D"), s=55, linewidths=1.5, label=name,
                   facecolors="none" if int8 else colour, edgecolors=colour)
        # float/int8 twins sit on top of each other: odd numbers above-right, even below-right
        ax.annotate(str(number), (x, y), fontsize=7, xytext=(5, 4) if number % 2 else (5, -11), textcoords="offset points")
    ax.plot([points[i][0] for i in front], [points[i][1] for i in front], "--", color="tab:red", lw=1, label="Pareto front")
    ax.scatter([points[i][0] for i in front], [points[i][1] for i in front], s=190, facecolors="none", edgecolors="tab:red")
    xs = [p[0] for p in points]
    if min(xs) > 0 and max(xs) / min(xs) > 10:  # a 1 ms and a 50 ms model on one axis: log keeps both readable
        from matplotlib.ticker import FuncFormatter

        ax.set_xscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain)
        ax.tick_params(axis="x", which="minor", labelsize=7)
        x_label += " (log scale)"
    ax.set_xlabel(x_label)
    ax.set_ylabel("NME (%)")
    ax.set_title("\n".join(textwrap.wrap(title, 90)), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return True


def primary_rows(rows: list[dict[str, Any]], threads: int = 1) -> list[dict[str, Any]]:
    return [r for r in rows if r["threads"] == threads]


def write_bench_outputs(result: dict[str, Any], out_dir: str | Path, title: str = "atpn-edge bench",
                        stem: str = "bench", verdict: list[str] | None = None) -> dict[str, str]:
    out_dir = Path(out_dir)
    rows = result["rows"]
    threads = sorted({r["threads"] for r in rows}) or [1]
    files = {"json": str(out_dir / f"{stem}.json"), "md": str(out_dir / f"{stem}.md")}
    plotted = []
    for key, label, name in (("latency", "median latency (ms)", "latency_nme"), ("size", "file size (KiB)", "size_nme")):
        png = out_dir / f"{stem}_{name}.png"
        t = threads[0]
        runtimes = ", ".join(RUNTIME_NAMES.get(rt, rt) for rt in dict.fromkeys(r["runtime"] for r in primary_rows(rows, t)))
        subtitle = (f"{title}: {label} vs NME; {t} thread(s), batch 1, {runtimes}; "
                    f"target {result['config'].get('target', 'host')}, {result['host'].get('cpu')}")
        if plot_tradeoffs(primary_rows(rows, t), png, key, label, subtitle):
            files[name + "_png"] = str(png)
            plotted.append(png.name)
    result["files"] = files
    write_json(files["json"], result)
    lines = [f"# {title}", "", host_line(result), ""]
    config = result.get("config", {})
    if config:
        tc = config.get("timing", {})
        lines += [f"Data: {config.get('data')} {config.get('split')} ({config.get('num_images')} images). Target: "
                  f"{config.get('target')}. Timing: {tc.get('warmup_runs')} warm-up calls, then {tc.get('rounds')} rounds of "
                  f">= {tc.get('runs_per_round')} calls interleaved across models; batch 1.", ""]
    for t in threads:
        lines += [f"## {t} thread(s)", "", markdown_table(primary_rows(rows, t)), ""]
    if verdict:
        lines += ["## Verdict", ""] + [f"- {v}" for v in verdict] + [""]
    profiled = (result.get("profile") or {}).get("files")
    if profiled:
        lines += [f"Per-block latency, fp32 and int8 side by side: [{Path(profiled['md']).name}]({Path(profiled['md']).name}).", ""]
    for png in plotted:
        lines += [f"![{png}]({png})", ""]
    lines += ["Notes:", ""] + [f"- {n}" for n in result.get("notes", [])] + [""]
    write_text(files["md"], "\n".join(lines))
    log.info("wrote %s and %s", files["json"], files["md"])
    return files
