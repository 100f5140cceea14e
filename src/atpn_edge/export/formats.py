"""The one table of export formats: export and benchmark both read it (ultralytics exporter style)."""

from __future__ import annotations

from dataclasses import dataclass

from atpn_edge.errors import UserError


@dataclass(frozen=True)
class ExportFormat:
    name: str  # the --format value
    suffix: str  # artifact file suffix
    precisions: tuple[str, ...]  # the --precision values it supports
    runtimes: tuple[str, ...]  # runtimes that run it, default first
    description: str
    # int8 is the PT2E program lowered (calibrated on face crops); else the format's own quantizer (ORT QDQ)
    int8_from_pt2e: bool = False


PRECISIONS = {
    "fp32": "float32 weights and activations",
    "fp16": "float16 weights (dequantized to float32 at load), float32 compute",
    "dynamic-int8": "int8 weights, activations quantized on the fly (float I/O)",
    "int8": "full-integer static int8: int8 weights and activations, calibrated",
}

FORMATS: dict[str, ExportFormat] = {
    "tflite": ExportFormat(
        "tflite", ".tflite", ("fp32", "fp16", "dynamic-int8", "int8"), ("litert", "tflite-runtime"),
        "LiteRT flatbuffer via litert-torch (int8: PT2E XNNPACK quantizer, or ai-edge-quantizer)",
        int8_from_pt2e=True,
    ),
    "onnx": ExportFormat(
        "onnx", ".onnx", ("fp32", "dynamic-int8", "int8"), ("onnxruntime",),
        "ONNX via torch.onnx.export(dynamo=True), onnxslim; int8: ONNX Runtime QDQ (u8 activations, s8 weights)",
    ),
    "executorch": ExportFormat(
        "executorch", ".pte", ("fp32", "int8"), ("executorch",),
        "ExecuTorch program with the XNNPACK delegate (int8: the PT2E program of the .tflite, lowered)",
        int8_from_pt2e=True,
    ),
}

INT8_QUANTIZERS = ("pt2e", "ai-edge-quantizer")  # TFLite int8 routes


def get_format(name: str, precision: str) -> ExportFormat:
    if name not in FORMATS:
        raise UserError(f"--format {name}: unknown export format (one of {', '.join(FORMATS)})")
    fmt = FORMATS[name]
    if precision not in fmt.precisions:
        raise UserError(f"--precision {precision}: not available for {name} (one of {', '.join(fmt.precisions)})")
    return fmt
