"""`open_predictor(path)`: any model file the commands accept -> a Predictor (runtime/base.py).

Exported artifacts (.tflite, .onnx) run through the torch-free adapters of runtime/; PyTorch
checkpoints (.pt) through train/predict.py's TorchPredictor, and ExecuTorch programs (.pte) through
export/executorch_predictor.py, imported only then, so that running .tflite / .onnx never needs torch.
"""

from __future__ import annotations

import os

from atpn_edge.errors import UserError
from atpn_edge.runtime.base import Predictor
from atpn_edge.runtime.loader import TORCH_SIDE_SUFFIXES, check_model_file, load_predictor


def open_predictor(path: str | os.PathLike, runtime: str | None = None, threads: int = 1) -> Predictor:
    path = check_model_file(path, runtime, threads)
    if path.suffix.lower() not in TORCH_SIDE_SUFFIXES:
        return load_predictor(path, runtime=runtime, threads=threads)
    if path.suffix.lower() == ".pte":
        from atpn_edge.export.executorch_predictor import ExecuTorchPredictor

        return ExecuTorchPredictor(path, threads=threads)
    try:
        from atpn_edge.train.predict import TorchPredictor
    except ImportError as e:
        raise UserError(f"--runtime torch: torch is not installed, cannot run checkpoint {path}") from e
    return TorchPredictor.from_checkpoint(path, threads=threads)
