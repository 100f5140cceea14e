"""Run a .tflite artifact with LiteRT (ai-edge-litert, XNNPACK) or the old tflite-runtime. No torch."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from atpn_edge.errors import UserError
from atpn_edge.runtime._common import (
    BatchOneAdapter,
    dequantize,
    finish_outputs,
    map_output_names,
    quantize,
    read_sidecar,
)
from atpn_edge.runtime.base import OUTPUT_NAMES

log = logging.getLogger(__name__)

TFLITE_RUNTIMES = ("litert", "tflite-runtime")


def interpreter_class(runtime: str):
    """The Interpreter class of `runtime`; a one-line UserError when it is not installed."""
    if runtime == "litert":
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:
            raise UserError("--runtime litert: ai-edge-litert is not installed (pip install ai-edge-litert)") from e
        return Interpreter
    if runtime == "tflite-runtime":
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError as e:
            raise UserError("--runtime tflite-runtime: tflite-runtime is not installed (pip install tflite-runtime)") from e
        return Interpreter
    raise UserError(f"--runtime {runtime}: not a TFLite runtime (one of {', '.join(TFLITE_RUNTIMES)})")


def default_tflite_runtime() -> str:
    """litert when installed, else tflite-runtime when that is the only one installed."""
    import importlib.util

    if importlib.util.find_spec("ai_edge_litert") is not None:
        return "litert"
    if importlib.util.find_spec("tflite_runtime") is not None:
        return "tflite-runtime"
    raise UserError("no TFLite runtime installed: pip install ai-edge-litert (or tflite-runtime on a small board)")


def _quant_params(detail: dict) -> tuple[float, int] | None:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if detail["dtype"] in (np.int8, np.uint8, np.int16) and scale:
        return float(scale), int(zero_point)
    return None


class LiteRTPredictor(BatchOneAdapter):
    """A Predictor over a .tflite artifact, outputs looked up by signature name."""

    def __init__(self, path: str | os.PathLike, runtime: str | None = None, threads: int = 1):
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: no such .tflite file")
        self.runtime = runtime or default_tflite_runtime()
        self.name = path.name
        self.path = path
        self.threads = threads
        self.metadata: dict[str, Any] = read_sidecar(path)
        Interpreter = interpreter_class(self.runtime)
        try:
            # The default op resolver applies the XNNPACK delegate (keep it: without it int8 is ~10x slower).
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        except ValueError as e:
            raise UserError(f"{path}: {self.runtime} cannot load this model: {e}") from e
        signatures = self.interpreter.get_signature_list()
        if not signatures:
            raise UserError(f"{path}: the .tflite has no signature (export it with atpn-edge export)")
        self.signature_key = "serving_default" if "serving_default" in signatures else next(iter(signatures))
        self.runner = self.interpreter.get_signature_runner(self.signature_key)
        input_details = self.runner.get_input_details()
        if len(input_details) != 1:
            raise UserError(f"{path}: expected one input, found {list(input_details)}")
        self.input_name, self.input_detail = next(iter(input_details.items()))
        shape = tuple(int(d) for d in self.input_detail["shape"])
        self.layout = self.metadata.get("layout") or ("NHWC" if shape[-1] == 3 else "NCHW")
        self.input_quant = _quant_params(self.input_detail)
        output_details = self.runner.get_output_details()
        raw_names = list(output_details)
        self.output_map = map_output_names(
            raw_names, [tuple(output_details[n]["shape"]) for n in raw_names], self.metadata
        )
        self.output_quant = {raw: _quant_params(output_details[raw]) for raw in raw_names}
        named = {self.output_map[r] for r in raw_names}
        named = {"face_score" if n == "face_logit" else n for n in named}
        self.outputs = tuple(n for n in OUTPUT_NAMES if n in named)
        landmark_raw = [r for r, n in self.output_map.items() if n == "landmarks"]
        self.num_landmarks = int(output_details[landmark_raw[0]]["shape"][-2]) if landmark_raw else 0
        log.info("loaded %s in %s (%d threads): input %s %s, outputs %s", path, self.runtime, threads,
                 self.layout, self.input_detail["dtype"].__name__, self.output_map)

    def _input_tensor(self, x: np.ndarray) -> np.ndarray:
        """(1, 3, S, S) normalised float -> the input tensor's layout and dtype."""
        if self.layout == "NHWC":
            x = x.transpose(0, 2, 3, 1)  # (1, 3, S, S) -> (1, S, S, 3)
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.input_quant is not None:
            x = quantize(x, *self.input_quant, self.input_detail["dtype"])
        return x

    def inference_call(self, x: np.ndarray):
        # A second interpreter of the same file: the signature runner resizes, allocates and copies the
        # outputs on every call, and while it exists the interpreter's own invoke() refuses to run.
        interpreter = interpreter_class(self.runtime)(model_path=str(self.path), num_threads=self.threads)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], self._input_tensor(x))
        return interpreter.invoke

    def run_normalized(self, x: np.ndarray) -> dict[str, np.ndarray]:
        raw = self.runner(**{self.input_name: self._input_tensor(x)})
        outputs = {}
        for raw_name, value in raw.items():
            q = self.output_quant[raw_name]
            outputs[self.output_map[raw_name]] = dequantize(value, *q) if q else np.asarray(value, np.float32)
        return finish_outputs(outputs)
