"""Export a float or PT2E-quantized model to TFLite / ONNX, verify it in its runtime, write metadata.

    result = export_model(model, "tflite", "int8", "runs/x/atpn_int8.tflite", calib_images=crops)
    result.path, result.metadata, result.verification   # report also at <artifact>.verify.json

`model` is a float nn.Module (dict outputs), or a quantized GraphModule from
`atpn_edge.compress.pt2e.convert` (then precision must be int8, and `float_model` may be given
so that the report also compares against the float network).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from atpn_edge.errors import UserError
from atpn_edge.export.formats import FORMATS, INT8_QUANTIZERS, PRECISIONS, ExportFormat, get_format
from atpn_edge.export.metadata import build_metadata
from atpn_edge.io import atomic_path, write_json
from atpn_edge.runtime.base import preprocess

log = logging.getLogger(__name__)

SIDECAR_FORMATS = ("tflite", "executorch")  # formats whose metadata is a JSON file beside the artifact

__all__ = ["FORMATS", "PRECISIONS", "ExportFormat", "ExportResult", "default_layout_io", "export_model",
           "verification_path"]


@dataclass
class ExportResult:
    path: Path
    format: str
    precision: str
    metadata: dict[str, Any]
    verification: dict[str, Any]
    size_bytes: int
    extra_paths: list[Path] = field(default_factory=list)  # sidecar, verification report


def verification_path(artifact: str | os.PathLike) -> Path:
    return Path(str(artifact) + ".verify.json")


def _normalised_inputs(images: Any, what: str, input_size: int) -> np.ndarray:
    """uint8 (N, S, S, 3) RGB crops, or float (N, 3, S, S) already normalised -> float32 (N, 3, S, S)."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    images = np.asarray(images)
    if images.dtype == np.uint8:
        x = preprocess(images, layout="NCHW")
    elif images.ndim == 4 and images.shape[1] == 3:
        x = images.astype(np.float32)
    else:
        raise UserError(f"{what}: expected uint8 (N, S, S, 3) crops or float (N, 3, S, S) inputs, got {images.dtype} {images.shape}")
    if x.shape[0] == 0 or x.shape[-1] != input_size:
        raise UserError(f"{what}: expected a non-empty batch of {input_size}x{input_size} crops, got shape {images.shape}")
    return np.ascontiguousarray(x)


def _torch_outputs(model: nn.Module, inputs: np.ndarray) -> dict[str, np.ndarray]:
    from atpn_edge.compress.pt2e import QuantizedModel
    from atpn_edge.train.predict import TorchPredictor

    predictor = TorchPredictor(QuantizedModel(model) if isinstance(model, torch.fx.GraphModule) else model)
    rows = [predictor.run_normalized(inputs[i : i + 1]) for i in range(len(inputs))]
    return {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}


@dataclass(frozen=True)
class _Source:
    """What is exported: a float model, or a PT2E int8 graph (with the float model it came from, if known)."""

    model: nn.Module | None  # the float network (None for a bare PT2E graph)
    graph: torch.fx.GraphModule | None  # the PT2E int8 program
    name: str
    options: dict[str, Any]
    output_names: tuple[str, ...]

    @property
    def input_size(self) -> int:
        return int(self.options.get("input_size", 112))

    def sample(self) -> torch.Tensor:
        return torch.zeros(1, 3, self.input_size, self.input_size)


def export_model(
    model: nn.Module,
    format: str,
    precision: str,
    out_path: str | os.PathLike,
    *,
    calib_images: Any = None,
    verify_images: Any = None,
    nhwc: bool | None = None,
    int8_io: bool | None = None,
    quantizer: str = "pt2e",
    quant_spec=None,
    float_model: nn.Module | None = None,
    source_checkpoint: str | None = None,
    allow_float_ops: tuple[str, ...] = (),
    verify: bool = True,
) -> ExportResult:
    """Export, verify, write metadata; nothing is left under `out_path` if any step fails.

    validate the request -> resolve the source (float model or PT2E graph; PTQ through
    compress.quantize when a float model goes to PT2E int8) -> convert per format -> metadata ->
    verify in the artifact's own runtime. `nhwc` / `int8_io` None take the format's default
    (default_layout_io): a .tflite is channels-last (LiteRT's own layout: no TRANSPOSE at the input),
    and its PT2E int8 has int8 outputs (and an int8 input when its input conv is quantized too).
    """
    from atpn_edge.compress import pt2e

    asked_int8_io = int8_io is True
    nhwc, int8_io = default_layout_io(format, precision, quantizer, nhwc, int8_io)
    out_path = _validate_request(format, precision, out_path, quantizer, int8_io)
    spec = quant_spec or pt2e.QuantSpec()
    source = _resolve_source(model, format, precision, quantizer)
    calib, check_inputs = _inputs(calib_images, verify_images, source, format, precision)
    if _pt2e_int8(format, precision, quantizer) and source.graph is None:
        from atpn_edge.compress.quantize import ptq

        log.info("PTQ: calibrating %s on %d images", source.name, len(calib))
        float_model = float_model or source.model
        source = dataclasses.replace(source, graph=ptq(source.model, calib, spec, progress=False))  # batch-1 graph
    quant_info: dict[str, Any] = {}
    if source.graph is not None:
        info = pt2e.graph_info(source.graph)
        quant_info = {"quantizer": "pt2e-xnnpack", "spec": info.get("quant_spec", spec.to_dict()), "mode": info.get("mode"),
                      "calibration_images": None if calib is None else int(len(calib))}

    lowering: dict[str, Any] = {}
    with atomic_path(out_path) as tmp:
        if format == "tflite":
            io, quant_info = _write_tflite(tmp, source, precision, calib, spec, nhwc, int8_io, quant_info)
        elif format == "executorch":
            io, lowering = _write_executorch(tmp, source)
        else:
            io, quant_info = _write_onnx(tmp, source, precision, calib, spec, nhwc, quant_info)
        counted = float_model if float_model is not None else (source.model if source.graph is None else None)
        metadata = _metadata(source, format, precision, nhwc, int8_io, asked_int8_io, io, quant_info, counted,
                             source_checkpoint)
        if format == "onnx":
            from atpn_edge.export import onnx as onnx_export

            onnx_export.write_metadata(tmp, metadata)
        else:
            # The adapter reads the sidecar of the file it opens: write one for the temporary name too.
            write_json(tmp + ".json", metadata)
        report: dict[str, Any] = {}
        try:
            if verify:
                islands = _float_islands(spec) if source.graph is not None else ()
                budget = _float_compute_budget(source.graph) if source.graph is not None else 0
                report = _verify(tmp, format, precision, source.model, source.graph, float_model, check_inputs,
                                 allow_float_ops + tuple(islands), budget, tuple(quant_info.get("float_nodes", ())),
                                 lowering)
        finally:
            if os.path.exists(tmp + ".json"):
                os.remove(tmp + ".json")
        if format in SIDECAR_FORMATS:
            write_json(str(out_path) + ".json", metadata)
    extra = [Path(str(out_path) + ".json")] if format in SIDECAR_FORMATS else []
    if verify:
        report["artifact"] = out_path.name
        write_json(verification_path(out_path), report)
        extra.append(verification_path(out_path))
    size = out_path.stat().st_size
    log.info("exported %s (%s %s, %d bytes)", out_path, format, precision, size)
    return ExportResult(out_path, format, precision, metadata, report, size, extra)


def _validate_request(format: str, precision: str, out_path: str | os.PathLike, quantizer: str, int8_io: bool) -> Path:
    """UserError for a request no route can serve -> the output path."""
    fmt = get_format(format, precision)
    out_path = Path(out_path)
    if out_path.suffix != fmt.suffix:
        raise UserError(f"--out {out_path}: a {format} artifact must end in {fmt.suffix}")
    if not out_path.parent.is_dir():
        raise UserError(f"--out {out_path}: the folder {out_path.parent} does not exist")
    if quantizer not in INT8_QUANTIZERS:
        raise UserError(f"--quantizer {quantizer}: unknown (one of {', '.join(INT8_QUANTIZERS)})")
    if format == "executorch" and quantizer != "pt2e":
        raise UserError(f"--quantizer {quantizer}: ExecuTorch int8 comes from the PT2E program only (--quantizer pt2e)")
    if int8_io and not (format == "tflite" and precision == "int8" and quantizer == "pt2e"):
        raise UserError("--int8-io: only TFLite int8 from PT2E has int8 input/output tensors")
    return out_path


def _resolve_source(model: nn.Module, format: str, precision: str, quantizer: str) -> _Source:
    from atpn_edge.compress import pt2e

    graph = model.graph if isinstance(model, pt2e.QuantizedModel) else (model if pt2e.is_quantized_graph(model) else None)
    if graph is None:
        model = model.eval()
        options = dict(getattr(model, "options", {}) or {})
        size = int(options.get("input_size", 112))
        names = pt2e.model_output_names(model, torch.zeros(1, 3, size, size))
        return _Source(model, None, getattr(model, "name", type(model).__name__), options, names)
    if not _pt2e_int8(format, precision, quantizer):
        raise UserError(f"a PT2E-quantized model exports only to tflite or executorch int8 (asked for {format} {precision}); "
                        "export the float model for other formats")
    info = pt2e.graph_info(graph)
    return _Source(None, graph, info.get("model_name", "quantized"), dict(info.get("model_options", {})),
                   tuple(info["output_names"]))


def _pt2e_int8(format: str, precision: str, quantizer: str) -> bool:
    """Whether this export lowers a PT2E int8 program (made by PTQ here when a float model is given)."""
    return precision == "int8" and quantizer == "pt2e" and FORMATS[format].int8_from_pt2e


def _inputs(calib_images: Any, verify_images: Any, source: _Source, format: str, precision: str):
    """-> (normalised calibration inputs or None, the inputs the verification runs on)."""
    size = source.input_size
    calib = None
    if calib_images is not None:
        calib = _normalised_inputs(calib_images, "calib_images", size)
    elif precision == "int8" and source.graph is None:
        raise UserError(f"{format} int8 of a float model needs calib_images (representative face crops)")
    if verify_images is not None:
        return calib, _normalised_inputs(verify_images, "verify_images", size)
    if calib is not None:
        return calib, calib[:8]
    return calib, np.random.default_rng(0).uniform(-1, 1, (4, 3, size, size)).astype(np.float32)


def _write_tflite(tmp: str, source: _Source, precision: str, calib, spec, nhwc: bool, int8_io: bool,
                  quant_info: dict) -> tuple[dict, dict]:
    """Convert (litert-torch; ai-edge-quantizer for fp16 / dynamic / its own static int8) -> (io, quant_info)."""
    from atpn_edge.export import tflite

    sample = source.sample()
    if source.graph is not None:
        data = tflite.convert_pt2e(source.graph, source.output_names, sample, per_channel=spec.per_channel,
                                   int8_io=int8_io, nhwc=nhwc)
    else:
        data = tflite.convert_float(source.model, source.output_names, sample, nhwc=nhwc)
        if precision == "fp16":
            data = tflite.quantize_fp16(data)
            quant_info = {"quantizer": "ai-edge-quantizer", "recipe": "fp16 weight casting"}
        elif precision == "dynamic-int8":
            data = tflite.quantize_dynamic_int8(data)
            quant_info = {"quantizer": "ai-edge-quantizer", "recipe": "dynamic_wi8_afp32"}
        elif precision == "int8":
            input_name = tflite.io_details(data)["inputs"][0]["name"]
            data = tflite.quantize_static_int8_aeq(data, calib.transpose(0, 2, 3, 1) if nhwc else calib, input_name)
            quant_info = {"quantizer": "ai-edge-quantizer", "recipe": "static_wi8_ai8", "calibration_images": int(len(calib))}
    with open(tmp, "wb") as f:
        f.write(data)
    return tflite.io_details(data), quant_info


def _write_executorch(tmp: str, source: _Source) -> tuple[dict, dict]:
    """Lower to a .pte with the XNNPACK delegate -> (io, lowering record)."""
    from atpn_edge.export import executorch

    if source.graph is not None:
        data, lowering = executorch.lower_pt2e(source.graph, source.output_names, source.sample())
    else:
        data, lowering = executorch.lower_float(source.model, source.output_names, source.sample())
    with open(tmp, "wb") as f:
        f.write(data)
    io = {"inputs": [{"name": "image", "dtype": "float32"}],
          "outputs": [{"name": n, "dtype": "float32"} for n in pt2e_names(source.output_names)]}
    return io, lowering


def _write_onnx(tmp: str, source: _Source, precision: str, calib, spec, nhwc: bool, quant_info: dict) -> tuple[dict, dict]:
    """torch.onnx export, then ORT's dynamic or static QDQ quantization -> (io, quant_info)."""
    from atpn_edge.export import onnx as onnx_export

    with tempfile.TemporaryDirectory(prefix="atpn_edge_export_") as work:  # never in the user's folder
        float_path = os.path.join(work, "float.onnx")
        onnx_export.export_float(source.model, source.output_names, source.sample(), float_path, nhwc=nhwc)
        if precision == "fp32":
            shutil.move(float_path, tmp)
        elif precision == "dynamic-int8":
            onnx_export.quantize_dynamic_int8(float_path, tmp)
            quant_info = {"quantizer": "onnxruntime", "mode": "dynamic", "weights": "uint8"}
        else:
            keep_float = onnx_export.float_nodes(float_path, spec.skip_modules, spec.float_input_conv)
            calibration = onnx_export.quantize_int8(float_path, tmp, calib.transpose(0, 2, 3, 1) if nhwc else calib,
                                                    observer=spec.observer, keep_float=tuple(keep_float))
            quant_info = {"quantizer": "onnxruntime", "format": "QDQ", "per_channel": True,
                          "activations": "uint8", "weights": "int8", "calibration": calibration,
                          "calibration_images": int(len(calib)), "float_nodes": keep_float}
    io = {"inputs": [{"name": onnx_export.INPUT_NAME, "dtype": "float32"}],
          "outputs": [{"name": n, "dtype": "float32"} for n in pt2e_names(source.output_names)]}
    return io, quant_info


def _metadata(source: _Source, format: str, precision: str, nhwc: bool, int8_io: bool, asked_int8_io: bool, io: dict,
              quant_info: dict, counted: nn.Module | None, source_checkpoint: str | None) -> dict[str, Any]:
    """The artifact's self-description (docs/INTERFACES.md): model, preprocessing, I/O encoding, params, MACs."""
    from atpn_edge.compress import pt2e

    layout = "NHWC" if nhwc else "NCHW"
    metadata = build_metadata(
        model_name=source.name, model_options=source.options, fmt=format, precision=precision, layout=layout,
        output_names=pt2e_names(source.output_names), num_landmarks=int(source.options.get("num_landmarks", 98)),
        source_checkpoint=source_checkpoint, quantization=quant_info, io=io,
    )
    if isinstance(counted, nn.Module):  # weights describe themselves: a torch-free bench reads these
        from atpn_edge.models import count_params_and_macs

        metadata["params"], metadata["macs"] = (int(v) for v in count_params_and_macs(counted, source.input_size))
    # a graph whose input conv stays float (QuantSpec.float_input_conv) has a float32 input even with int8_io
    int8_input = bool(int8_io) and io["inputs"][0]["dtype"] == "int8"
    metadata["int8_io"] = int8_input
    if int8_input:
        metadata["input_encoding"] = (f"int8 q = pixel - 128 (scale 1/127.5, zero point {pt2e.INPUT_ZERO_POINT}), "
                                      f"RGB, {layout}; outputs int8 with the scale and zero point of io.outputs")
    elif int8_io:
        metadata["input_encoding"] = (f"float32 (pixel / 127.5 - 1), RGB, {layout}, into the float input conv; "
                                      "outputs int8 with the scale and zero point of io.outputs")
        if asked_int8_io:
            log.warning("--int8-io: %s keeps its input conv float, so its input is float32 (outputs int8); "
                        "quantize with keep_float_input_conv: false for an int8 input", source.name)
    return metadata


def default_layout_io(format: str, precision: str, quantizer: str = "pt2e", nhwc: bool | None = None,
                      int8_io: bool | None = None) -> tuple[bool, bool]:
    """(nhwc, int8_io) with None replaced by the format's default."""
    if nhwc is None:
        nhwc = format == "tflite"
    if int8_io is None:
        int8_io = format == "tflite" and precision == "int8" and quantizer == "pt2e"
    return nhwc, int8_io


def pt2e_names(output_names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple("face_score" if n == "face_logit" else n for n in output_names)


def _float_islands(spec) -> tuple[str, ...]:
    """Op types a QuantSpec keeps in float on purpose (their DQ -> op -> Q pairs are expected)."""
    tflite_names = {"conv2d": ("CONV_2D", "DEPTHWISE_CONV_2D"), "linear": ("FULLY_CONNECTED",), "add": ("ADD",),
                    "mul": ("MUL",), "cat": ("CONCATENATION",), "adaptive_avg_pool2d": ("MEAN",)}
    names: list[str] = []
    for op in spec.skip_operators:
        names.extend(tflite_names.get(op, ()))
    if spec.skip_modules:
        names.extend(("ADD", "MUL", "SUB", "CONCATENATION", "RESHAPE", "MEAN"))
    return tuple(names)


def _float_compute_budget(quantized_graph) -> int:
    """How many conv / linear layers the PT2E graph keeps float on purpose (the input conv, mixed
    precision): those whose weight is not dequantized from int8. A float op in the .tflite beyond
    these is a lowering failure."""
    import torch

    kinds = (torch.ops.aten.conv2d.default, torch.ops.aten.linear.default)
    return sum(1 for n in quantized_graph.graph.nodes
               if n.op == "call_function" and n.target in kinds
               and "dequantize" not in str(getattr(n.args[1], "target", "")))


def _verify(path: str, format: str, precision: str, model, quantized_graph, float_model, inputs: np.ndarray,
            allow_float_ops: tuple[str, ...], max_float_compute: int = 0,
            onnx_float_nodes: tuple[str, ...] = (), lowering: dict[str, Any] | None = None) -> dict[str, Any]:
    from atpn_edge.export import verify as v

    if format == "executorch":
        from atpn_edge.export import executorch
        from atpn_edge.export.executorch_predictor import ExecuTorchPredictor

        predictor = ExecuTorchPredictor(path, threads=1)
        histogram = executorch.op_histogram(lowering)
        int8_report = executorch.int8_check(lowering, max_float_compute) if precision == "int8" else None
    elif format == "tflite":
        from atpn_edge.runtime.litert import LiteRTPredictor

        predictor = LiteRTPredictor(path, runtime="litert", threads=1)
        ops = v.tflite_ops(path)
        histogram = v.op_histogram(ops)
        int8_report = v.tflite_int8_check(ops, allow_float_ops, max_float_compute) if precision == "int8" else None
    else:
        from atpn_edge.export import onnx as onnx_export
        from atpn_edge.runtime.onnx import OnnxPredictor

        predictor = OnnxPredictor(path, threads=1)
        histogram = onnx_export.op_histogram(path)
        int8_report = onnx_export.int8_check(path, onnx_float_nodes) if precision == "int8" else None
    reference_model = quantized_graph if quantized_graph is not None else model
    reference = _torch_outputs(reference_model, inputs)
    float_reference = None
    if quantized_graph is not None and float_model is not None:
        float_reference = _torch_outputs(float_model, inputs)
    elif precision != "fp32" and quantized_graph is None:
        float_reference = reference
    report = v.verify_artifact(predictor, inputs, reference, precision=precision, float_reference=float_reference,
                               int8_report=int8_report, ops=histogram)
    report["reference"] = "pt2e-quantized pytorch" if quantized_graph is not None else "float pytorch"
    if lowering:
        report["xnnpack_delegates"] = lowering["delegates"]
        report["outside_delegate"] = lowering["outside_delegate"]
    log.info("verified %s: %s", path, json.dumps(report["parity"]["pytorch"].get("landmarks")))
    return report
