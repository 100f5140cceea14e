"""The bench table's rows: one per entry and thread count (docs/INTERFACES.md's `bench --json` schema plus
extra fields), the NME drop against the same network's float entry."""

from __future__ import annotations

from typing import Any

from atpn_edge.bench.entries import BenchConfig, Entry, one_line

def _precision_kind(variant: str) -> str:
    return "int8" if "int8" in variant else "fp32"


def row_of(entry: Entry, threads: int, timing: Any, peak: dict, config: BenchConfig) -> dict[str, Any]:
    from atpn_edge.bench.host import PEAK_RUNTIME, peak_share
    from atpn_edge.bench.parsers import ToolResult
    from atpn_edge.bench.timing import LatencyStats

    acc, real = entry.result, entry.real
    row: dict[str, Any] = {
        "model": entry.model, "variant": entry.variant, "format": entry.format, "runtime": entry.runtime,
        "threads": threads, "params": entry.params, "macs": entry.macs, "size_bytes": entry.size_bytes,
        "latency_ms": {"median": None, "p90": None, "runs": 0},
        "nme": acc and acc.nme, "nme_drop_rel": None, "pose_mae": acc and acc.pose_mae_mean,
        "fr_10": acc and acc.fr_10, "auc_10": acc and acc.auc_10, "face_score_acc": acc and acc.face_score_acc,
        "n_images": acc and acc.n_images, "pose_mae_detail": (acc.pose_mae or None) if acc else None,
        "real_nme": real and real.nme, "real_fr_10": real and real.fr_10, "real_n_images": real and real.n_images,
        "macs_converter": entry.macs_converter, "macs_converter_source": entry.macs_converter_source,
        "macs_diff_rel": (entry.macs_converter / entry.macs - 1) if entry.macs and entry.macs_converter else None,
        "peak_memory_mb": entry.peak_memory_mb, "gmacs_per_s": None, "peak_share": None,
        "target": config.target, "path": entry.path, "group": entry.group, "approximate": entry.approximate,
        "status": entry.status, "error": entry.error, "notes": list(entry.notes), "reference": entry.reference,
    }
    if entry.status != "ok":
        return row
    if isinstance(timing, LatencyStats):
        row["latency_ms"] = timing.to_json()
    elif isinstance(timing, ToolResult):
        row["latency_ms"] = {"median": timing.median_ms if timing.median_ms is not None else timing.avg_ms,
                             "p90": timing.p90_ms, "runs": timing.runs, "mean": timing.avg_ms, "p95": timing.p95_ms,
                             "min": timing.min_ms, "tool": timing.tool,
                             "median_is_avg": timing.median_ms is None}
        if timing.peak_memory_mb is not None:
            row["peak_memory_mb"] = timing.peak_memory_mb
            row["notes"].append("peak memory: the tool's footprint figure")
        if timing.fully_delegated is not None:
            row["fully_delegated"] = timing.fully_delegated
        if timing.partitions is not None:
            row["delegate_partitions"] = timing.partitions
    elif isinstance(timing, BaseException):
        row["status"], row["error"] = "failed", f"timing: {one_line(timing)}"
        return row
    elif config.target != "host" and entry.format != "tflite":
        row["status"] = "skipped"
        row["error"] = f"target {config.target} runs .tflite files only"
        return row
    macs = entry.macs if entry.macs else entry.macs_converter
    achieved, share = peak_share(macs, row["latency_ms"]["median"], peak, _precision_kind(entry.variant), threads)
    # the peak is ONNX Runtime's matmul: a share of it says nothing about LiteRT/XNNPACK or torch kernels
    row["gmacs_per_s"], row["peak_share"] = achieved, (share if entry.runtime == PEAK_RUNTIME else None)
    return row


def fill_drops(rows: list[dict[str, Any]], entries: list[Entry]) -> None:
    """nme_drop_rel = NME / float NME - 1 within a group (same network): float = the checkpoint's
    NME, else the fp32 artifact's."""
    float_nme: dict[str, float] = {}
    for entry in sorted(entries, key=lambda e: 0 if e.format == "pytorch" else 1):
        if entry.variant == "float" and entry.result is not None:
            float_nme.setdefault(entry.group, entry.result.nme)
    for row in rows:
        reference = float_nme.get(row["group"])
        if reference and row["nme"] is not None:
            row["nme_drop_rel"] = row["nme"] / reference - 1
