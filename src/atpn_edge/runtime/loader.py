"""`load_predictor(path)`: picks the torch-free adapter of an exported artifact from the file and --runtime."""

from __future__ import annotations

import os
from pathlib import Path

from atpn_edge.errors import UserError
from atpn_edge.runtime.base import Predictor

RUNTIMES = ("litert", "tflite-runtime", "onnxruntime", "executorch", "torch")
SUFFIX_RUNTIMES = {".tflite": ("litert", "tflite-runtime"), ".onnx": ("onnxruntime",), ".pte": ("executorch",),
                   ".pt": ("torch",), ".pth": ("torch",)}  # default first


CHECKPOINT_SUFFIXES = (".pt", ".pth")
# Files whose runtime needs torch (PyTorch checkpoints; ExecuTorch programs, whose Python bindings take
# torch tensors): opened by atpn_edge.predictors.open_predictor.
TORCH_SIDE_SUFFIXES = CHECKPOINT_SUFFIXES + (".pte",)


def check_model_file(path: str | os.PathLike, runtime: str | None = None, threads: int = 1) -> Path:
    """Validate a --model file against --runtime and --threads (UserError naming the problem) -> Path."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIX_RUNTIMES:
        raise UserError(f"--model {path}: unknown model file type '{suffix}' (expected .tflite, .onnx, .pte or .pt)")
    if runtime is not None and runtime not in RUNTIMES:
        raise UserError(f"--runtime {runtime}: unknown runtime (one of {', '.join(RUNTIMES)})")
    if runtime is not None and runtime not in SUFFIX_RUNTIMES[suffix]:
        raise UserError(f"--runtime {runtime} cannot run a {suffix} file (use {' or '.join(SUFFIX_RUNTIMES[suffix])})")
    if threads < 1:
        raise UserError(f"--threads {threads}: must be at least 1")
    if not path.is_file():
        raise UserError(f"--model {path}: no such file")
    return path


def load_predictor(path: str | os.PathLike, runtime: str | None = None, threads: int = 1) -> Predictor:
    """An exported artifact -> its torch-free Predictor: .tflite -> LiteRT (or tflite-runtime), .onnx ->
    ONNX Runtime. PyTorch checkpoints open through `atpn_edge.predictors.open_predictor`."""
    path = check_model_file(path, runtime, threads)
    suffix = path.suffix.lower()
    if suffix in CHECKPOINT_SUFFIXES:
        raise UserError(f"--model {path}: a PyTorch checkpoint, not an exported artifact (open it with "
                        "atpn_edge.predictors.open_predictor, which needs torch)")
    if suffix == ".pte":
        raise UserError(f"--model {path}: an ExecuTorch program, whose Python runtime needs torch (open it with "
                        "atpn_edge.predictors.open_predictor)")
    if suffix == ".tflite":
        from atpn_edge.runtime.litert import LiteRTPredictor

        return LiteRTPredictor(path, runtime=runtime, threads=threads)
    from atpn_edge.runtime.onnx import OnnxPredictor

    return OnnxPredictor(path, threads=threads)
