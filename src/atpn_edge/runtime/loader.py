"""`load_predictor(path)`: the one entry point that picks an adapter from the file and --runtime. No torch."""

from __future__ import annotations

import os
from pathlib import Path

from atpn_edge.errors import UserError
from atpn_edge.runtime.base import Predictor

RUNTIMES = ("litert", "tflite-runtime", "onnxruntime", "torch")
_SUFFIX_RUNTIMES = {".tflite": ("litert", "tflite-runtime"), ".onnx": ("onnxruntime",), ".pt": ("torch",), ".pth": ("torch",)}


def load_predictor(path: str | os.PathLike, runtime: str | None = None, threads: int = 1) -> Predictor:
    """.tflite -> LiteRT (or tflite-runtime), .onnx -> ONNX Runtime, .pt checkpoint -> torch."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _SUFFIX_RUNTIMES:
        raise UserError(f"--model {path}: unknown model file type '{suffix}' (expected .tflite, .onnx or .pt)")
    if runtime is not None and runtime not in RUNTIMES:
        raise UserError(f"--runtime {runtime}: unknown runtime (one of {', '.join(RUNTIMES)})")
    if runtime is not None and runtime not in _SUFFIX_RUNTIMES[suffix]:
        raise UserError(f"--runtime {runtime} cannot run a {suffix} file (use {' or '.join(_SUFFIX_RUNTIMES[suffix])})")
    if threads < 1:
        raise UserError(f"--threads {threads}: must be at least 1")
    if not path.is_file():
        raise UserError(f"--model {path}: no such file")
    if suffix == ".tflite":
        from atpn_edge.runtime.litert import LiteRTPredictor

        return LiteRTPredictor(path, runtime=runtime, threads=threads)
    if suffix == ".onnx":
        from atpn_edge.runtime.onnx import OnnxPredictor

        return OnnxPredictor(path, threads=threads)
    try:
        from atpn_edge.runtime.torch_predictor import TorchPredictor
    except ImportError as e:
        raise UserError(f"--runtime torch: torch is not installed, cannot run checkpoint {path}") from e
    return TorchPredictor.from_checkpoint(path, threads=threads)
