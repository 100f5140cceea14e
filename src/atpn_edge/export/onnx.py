"""ONNX export: torch.onnx.export(dynamo=True) + full checker + onnxslim; int8 by ONNX Runtime's quantizer.

int8 is QDQ, per-channel, uint8 activations / int8 weights (on x86 u8s8 was faster than fp32 while
s8s8 was slower in our measurements), calibrated on the same images as PTQ with the calibration method
closest to the recipe's PT2E observer (CALIBRATION_OF_OBSERVER). A PT2E graph is not exported to
ONNX: ORT fuses only part of it and it ran slower than fp32.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from atpn_edge.errors import UserError
from atpn_edge.export.tflite import ExportHead, NHWCInput, exported_output_names
from atpn_edge.runtime.onnx import METADATA_KEY, MODULE_SCOPE_KEY

log = logging.getLogger(__name__)

OPSET = 18
INPUT_NAME = "input"


def export_float(model: nn.Module, output_names: tuple[str, ...], sample: torch.Tensor, path: str,
                 nhwc: bool = False) -> None:
    """Float nn.Module -> checked, simplified fp32 .onnx at `path` (batch 1)."""
    import onnx
    import onnxslim

    module: nn.Module = ExportHead(model.eval(), output_names)
    if nhwc:
        module, sample = NHWCInput(module), sample.permute(0, 2, 3, 1).contiguous()
    names = list(exported_output_names(output_names))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, (sample,), dynamo=True, opset_version=OPSET,
                                        input_names=[INPUT_NAME], output_names=names, verbose=False)
        proto = program.model_proto
    except Exception as e:  # the exporter wraps failures in its own error types
        first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
        raise UserError(f"torch.onnx.export could not export {getattr(model, 'name', type(model).__name__)}: {first[:300]}") from e
    scopes = _module_scopes(proto)
    proto = onnxslim.slim(proto)
    for node in proto.graph.node:  # onnxslim drops the exporter's node metadata; the profiler reads this key
        if scopes.get(node.name):
            entry = node.metadata_props.add()
            entry.key, entry.value = MODULE_SCOPE_KEY, scopes[node.name]
    onnx.checker.check_model(proto, full_check=True)
    got = [o.name for o in proto.graph.output]
    if got != names:
        raise RuntimeError(f"ONNX output names {got} differ from the model's {names}")
    onnx.save(proto, path)


def _module_scopes(proto) -> dict[str, str]:
    """Node name -> the module that made it ("backbone.stage1.0.1"), from torch.onnx's name_scopes
    metadata (['', 'backbone', ..., 'backbone.stage1.0.1', '<op>']); "" for the root module's own ops."""
    scopes = {}
    for node in proto.graph.node:
        text = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), None)
        if text is None:
            continue
        try:
            names = json.loads(text.replace("'", '"'))
        except ValueError:
            continue
        scopes[node.name] = names[-2] if len(names) >= 2 else ""
    return scopes


class _CalibrationReader:
    """onnxruntime.quantization CalibrationDataReader over (N, ...) float inputs."""

    def __init__(self, inputs: np.ndarray):
        self._rows = iter([{INPUT_NAME: inputs[i : i + 1].astype(np.float32)} for i in range(len(inputs))])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._rows, None)


# PT2E activation observer -> ORT calibration method. The histogram observer clips outliers; ORT's
# Percentile (99.999 %) does the same. With MinMax the demo ATPN's pose MAE rose 0.16 deg (0.35 on
# another seed) against LiteRT's 0.07 from the histogram-calibrated PT2E graph; with Percentile 0.03.
CALIBRATION_OF_OBSERVER = {"minmax": "MinMax", "moving_average_minmax": "MinMax", "histogram": "Percentile"}


def float_nodes(path: str, module_names: tuple[str, ...], input_conv: bool) -> list[str]:
    """Names of the nodes of an exported .onnx to leave float: those made inside the named modules
    ("landmark_head.pool") and, with `input_conv`, the Conv that reads the image (through a layout Transpose)."""
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    inputs = {i.name for i in graph.input}
    names = []
    for node in graph.node:
        if node.op_type == "Transpose" and node.input[0] in inputs:
            inputs.update(node.output)
    for node in graph.node:
        scope = next((p.value for p in node.metadata_props if p.key == MODULE_SCOPE_KEY), None)
        in_module = scope and any(f".{module}." in f".{scope}." for module in module_names)
        if in_module or (input_conv and node.op_type == "Conv" and node.input[0] in inputs):
            names.append(node.name)
    return names


def quantize_int8(float_path: str, out_path: str, calibration_inputs: np.ndarray, observer: str = "histogram",
                  keep_float: tuple[str, ...] = ()) -> str:
    """QDQ static int8: per-channel int8 weights, uint8 activations, calibrated like `observer` (see above),
    the nodes named in `keep_float` left float (see float_nodes) -> the calibration method used."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    method = CALIBRATION_OF_OBSERVER[observer]
    with tempfile.TemporaryDirectory(prefix="atpn_edge_onnx_") as tmp:  # never in the user's folder
        prepared = os.path.join(tmp, "prepared.onnx")
        quant_pre_process(float_path, prepared, skip_symbolic_shape=True)

        def run(method: str) -> None:
            quantize_static(prepared, out_path, _CalibrationReader(calibration_inputs), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=getattr(CalibrationMethod, method), nodes_to_exclude=list(keep_float))

        try:
            run(method)
        except ValueError as e:
            # ORT's histogram calibrators cannot bin a tensor whose calibrated range is (almost) a single
            # value ("Too many bins for data range"); such a graph still calibrates on its full range.
            if method == "MinMax" or "bins" not in str(e):
                raise
            log.warning("onnxruntime %s calibration failed (%s); calibrating with MinMax instead", method, e)
            method = "MinMax"
            run(method)
    return method.lower()


def quantize_dynamic_int8(float_path: str, out_path: str) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # ConvInteger on ORT's CPU provider takes uint8 weights.
    quantize_dynamic(float_path, out_path, weight_type=QuantType.QUInt8)


def write_metadata(path: str, metadata: dict[str, Any]) -> None:
    """Store the metadata JSON (and a few flat keys for tools like Netron) in metadata_props."""
    import onnx

    proto = onnx.load(path)
    del proto.metadata_props[:]
    flat = {METADATA_KEY: json.dumps(metadata), "model_name": metadata["model_name"],
            "precision": metadata["precision"], "layout": metadata["layout"],
            "output_names": ",".join(metadata["output_names"]), "atpn_edge_version": metadata["atpn_edge_version"]}
    for key, value in flat.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.save(proto, path)


def op_histogram(path: str) -> dict[str, int]:
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(path).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def int8_check(path: str, float_allowed: tuple[str, ...] = ()) -> dict[str, Any]:
    """Each Conv/Gemm/MatMul reads DequantizeLinear outputs (input and weight): a QDQ graph ORT fuses to int8;
    the nodes in `float_allowed` (kept float on purpose) excepted."""
    import onnx

    graph = onnx.load(path).graph
    producers = {out: node for node in graph.node for out in node.output}
    float_compute = []
    for node in graph.node:
        if node.op_type in ("Conv", "Gemm", "MatMul"):
            sources = [producers.get(name) for name in node.input[:2]]
            if not all(s is not None and s.op_type == "DequantizeLinear" for s in sources):
                float_compute.append(node.name or node.op_type)
    compute = [n.name for n in graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    return {"float_compute_ops": float_compute, "float_compute_allowed": len(set(compute) & set(float_allowed)),
            "ok": set(float_compute) <= set(float_allowed) and len(float_compute) < len(compute)}
