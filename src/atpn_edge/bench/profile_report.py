"""Profile outputs: profile.json, profile.md (blocks side by side, fp32 and int8, the speed-up per
block) and profile.png (a bar per block and artifact)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from atpn_edge.bench.profile import Profile
from atpn_edge.bench.report import fmt
from atpn_edge.io import atomic_path, write_json, write_text

log = logging.getLogger(__name__)

TOP_OPS = 15  # per-op rows shown in the Markdown for each artifact that has per-op times


def label(profile: Profile) -> str:
    return f"{Path(profile.path).name} ({profile.runtime}, {profile.precision})"


def block_rows(profiles: list[Profile]) -> list[str]:
    """Every block once, in the order the artifacts run them."""
    return list(dict.fromkeys(b.block for p in profiles for b in p.blocks))


def speedup_pairs(profiles: list[Profile]) -> list[tuple[int, int]]:
    """(fp32 index, int8 index): each int8 artifact with the nearest fp32 artifact of the same runtime
    listed before it (list them as pairs: a_fp32 a_int8 b_fp32 b_int8)."""
    pairs = []
    for i, p in enumerate(profiles):
        if p.precision != "int8":
            continue
        fp32 = next((j for j in range(i - 1, -1, -1) if profiles[j].runtime == p.runtime and profiles[j].precision == "fp32"), None)
        if fp32 is not None:
            pairs.append((fp32, i))
    return pairs


def blocks_table(profiles: list[Profile]) -> str:
    pairs = speedup_pairs(profiles)
    times = [p.block_ms() for p in profiles]
    head = ["block"] + [label(p) + " ms" for p in profiles] + [f"speed-up {Path(profiles[i].path).name}" for _, i in pairs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def speedup(fp32_ms, int8_ms):
        # a block under the timing noise (near zero or negative after differencing) has no meaningful ratio
        return fmt(fp32_ms / int8_ms, ".2f") + "x" if fp32_ms and int8_ms and min(fp32_ms, int8_ms) > 0.005 else "-"

    for block in block_rows(profiles):
        cells = [block] + [fmt(t.get(block), ".3f") for t in times]
        cells += [speedup(times[f].get(block), times[i].get(block)) for f, i in pairs]
        lines.append("| " + " | ".join(cells) + " |")
    total = ["**total**"] + [f"**{p.total_ms:.3f}**" for p in profiles]
    total += [speedup(profiles[f].total_ms, profiles[i].total_ms) for f, i in pairs]
    lines.append("| " + " | ".join(total) + " |")
    return "\n".join(lines)


def delegation_lines(profiles: list[Profile]) -> list[str]:
    lines = []
    for p in profiles:
        if p.partitions is None:
            continue
        outside = ", ".join(p.outside_delegate) or "none"
        lines.append(f"- {label(p)}: {p.partitions} XNNPACK partition(s); ops outside the delegate: {outside}")
    return lines


def kernels_table(profile: Profile) -> str:
    top = sorted(profile.kernels, key=lambda k: -k.ms)[:TOP_OPS]
    lines = ["| op | kind | block | ms |", "|---|---|---|---|"]
    lines += [f"| {k.name} | {k.op} | {k.block} | {k.ms:.4f} |" for k in top]
    return "\n".join(lines)


def plot_profiles(profiles: list[Profile], path: str | Path, title: str) -> bool:
    """Grouped horizontal bars: one group per block, one bar per artifact."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no %s", path)
        return False
    blocks = block_rows(profiles)
    times = [p.block_ms() for p in profiles]
    height = 0.8 / max(len(profiles), 1)
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(blocks) * max(1, len(profiles) / 2) + 1.5))
    for k, (profile, t) in enumerate(zip(profiles, times)):
        ys = [b + k * height for b in range(len(blocks))]
        ax.barh(ys, [max(t.get(block, 0.0), 0.0) for block in blocks], height=height, label=label(profile))
    ax.set_yticks([b + height * (len(profiles) - 1) / 2 for b in range(len(blocks))], blocks)
    ax.invert_yaxis()
    ax.set_xlabel("ms per call (batch 1)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return True


def write_profile_outputs(profiles: list[Profile], host: dict[str, Any], out_dir: str | Path,
                          stem: str = "profile") -> dict[str, str]:
    out_dir = Path(out_dir)
    files = {"json": str(out_dir / f"{stem}.json"), "md": str(out_dir / f"{stem}.md")}
    threads = sorted({p.threads for p in profiles})
    flags = ", ".join(host.get("cpu_flags", [])) or "-"
    host_text = f"{host.get('cpu')} ({host.get('machine')}, {host.get('cores')} cores, flags {flags}), " \
                f"{'/'.join(map(str, threads))} thread(s), batch 1"
    png = out_dir / f"{stem}.png"
    if plot_profiles(profiles, png, f"per-block latency: {host_text}"):
        files["png"] = str(png)
    write_json(files["json"], {"host": host, "profiles": [p.to_json() for p in profiles], "files": files})
    lines = ["# atpn-edge profile", "", f"Host: {host_text}.", "", "## Per block", "", blocks_table(profiles), ""]
    delegation = delegation_lines(profiles)
    if delegation:
        lines += ["## Delegation", ""] + delegation + [""]
    for p in profiles:
        if p.kernels:
            lines += [f"## Slowest ops: {label(p)}", "", kernels_table(p), ""]
    lines += ["## How it is measured", ""] + [f"- {label(p)}: {p.method}" for p in profiles]
    lines += [f"- {label(p)}: {note}" for p in profiles for note in p.notes] + [""]
    if "png" in files:
        lines += [f"![{png.name}]({png.name})", ""]
    write_text(files["md"], "\n".join(lines))
    log.info("wrote %s and %s", files["json"], files["md"])
    return files
