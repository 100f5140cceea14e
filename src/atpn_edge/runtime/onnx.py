"""Run a .onnx artifact with ONNX Runtime on the CPU. No torch."""

from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from atpn_edge.errors import UserError
from atpn_edge.runtime._common import BatchOneAdapter, finish_outputs, map_output_names
from atpn_edge.runtime.base import OUTPUT_NAMES

log = logging.getLogger(__name__)

METADATA_KEY = "atpn_edge"  # metadata_props key holding the JSON metadata
MODULE_SCOPE_KEY = "atpn_edge.module"  # node metadata the ONNX export writes: the module path of the op
# Attributes of the wrappers the exporters put around a network (ExportHead.core, NHWCInput.inner,
# pt2e's NamedOutputs.model): dropped from module paths so that they name the network's own modules.
WRAPPER_ATTRIBUTES = ("core", "model", "inner")


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError as e:
        raise UserError("--runtime onnxruntime: onnxruntime is not installed (pip install onnxruntime)") from e
    return onnxruntime


class OnnxPredictor(BatchOneAdapter):
    """A Predictor over a .onnx artifact (fp32 or QDQ int8; int8 I/O is never used for ONNX)."""

    def __init__(self, path: str | os.PathLike, threads: int = 1):
        ort = _onnxruntime()
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: no such .onnx file")
        self.runtime = "onnxruntime"
        self.name = path.name
        self.path = path
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own exception types (InvalidGraph, Fail, ...)
            raise UserError(f"{path}: onnxruntime cannot load this model: {str(e).splitlines()[0]}") from e
        custom = self.session.get_modelmeta().custom_metadata_map
        self.metadata: dict[str, Any] = json.loads(custom[METADATA_KEY]) if METADATA_KEY in custom else {}
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise UserError(f"{path}: expected one input, found {[i.name for i in inputs]}")
        self.input_name = inputs[0].name
        shape = inputs[0].shape
        self.layout = self.metadata.get("layout") or ("NHWC" if shape[-1] == 3 else "NCHW")
        outputs = self.session.get_outputs()
        self.raw_names = [o.name for o in outputs]
        self.output_map = map_output_names(
            self.raw_names, [tuple(d if isinstance(d, int) else 1 for d in o.shape) for o in outputs], self.metadata
        )
        named = {"face_score" if n == "face_logit" else n for n in self.output_map.values()}
        self.outputs = tuple(n for n in OUTPUT_NAMES if n in named)
        landmark = [o for o in outputs if self.output_map[o.name] == "landmarks"]
        self.num_landmarks = int(landmark[0].shape[-2]) if landmark else 0

    def inference_call(self, x: np.ndarray):
        if self.layout == "NHWC":
            x = x.transpose(0, 2, 3, 1)
        binding = self.session.io_binding()
        binding.bind_cpu_input(self.input_name, np.ascontiguousarray(x, dtype=np.float32))
        for name in self.raw_names:
            binding.bind_output(name, "cpu")
        return functools.partial(self.session.run_with_iobinding, binding)

    def run_normalized(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if self.layout == "NHWC":
            x = x.transpose(0, 2, 3, 1)  # (1, 3, S, S) -> (1, S, S, 3)
        values = self.session.run(self.raw_names, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})
        return finish_outputs({self.output_map[n]: np.asarray(v) for n, v in zip(self.raw_names, values)})
