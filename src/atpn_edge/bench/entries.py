"""What each benchmarked model file is (`describe`), how a checkpoint is exported for the bench
(`export_checkpoint`, the untrained `reference_entries`) and how an entry is opened and run
(`open_entry`, `load_runner`). bench/harness.py runs them; bench/rows.py turns them into table rows."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from atpn_edge.bench.timing import TimingConfig
from atpn_edge.data.registry import DEFAULT_CACHE_DIR
from atpn_edge.errors import UserError
from atpn_edge.evaluate import EvalResult
from atpn_edge.export.formats import FORMATS
from atpn_edge.runtime.loader import SUFFIX_RUNTIMES

log = logging.getLogger(__name__)

DEFAULT_EXPORTS = ("tflite:fp32", "tflite:int8", "onnx:fp32", "onnx:int8", "executorch:fp32", "executorch:int8")
PEER_MEDIAPIPE = "mediapipe:face_landmark"  # a model "path" that names the MediaPipe peer
RUNTIME_OF_SUFFIX = {suffix: runtimes[0] for suffix, runtimes in SUFFIX_RUNTIMES.items()}  # the default runtime
FORMAT_OF_SUFFIX = {".pt": "pytorch", ".pth": "pytorch", **{f.suffix: name for name, f in FORMATS.items()}}


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
        raise UserError(f"--model {path}: unknown model file type '{suffix}' (expected .pt, .tflite, .onnx or .pte)")
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
        entry.status, entry.error = "failed", one_line(e)
    return entry


def _artifact_metadata(path: Path) -> dict[str, Any]:
    if path.suffix.lower() in (".tflite", ".pte"):
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


def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


# --------------------------------------------------------------------------- exports of checkpoints
def parse_exports(spec: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """'default' | 'all' | 'none' | 'tflite:fp32,onnx:int8' -> validated ('FORMAT:PRECISION', ...)."""
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
    """Validation crops to calibrate int8 on: face crops for PT2E (.tflite, .pte), faces and non-faces for ORT's
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
                                  faces_only=fmt.int8_from_pt2e)
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
                          status="failed", error=f"export: {one_line(e)}")
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
