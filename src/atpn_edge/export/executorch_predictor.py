"""Run a .pte artifact in ExecuTorch's runtime (XNNPACK delegate) on the CPU.

Unlike the .tflite and .onnx adapters of runtime/, this one needs torch: ExecuTorch's Python
bindings take and return torch tensors (the torch-free executorch-numpy-runtime requires
Python >= 3.12). On a phone the same .pte runs in ExecuTorch's C++ runtime.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from atpn_edge.errors import UserError
from atpn_edge.runtime._common import BatchOneAdapter, finish_outputs, read_sidecar
from atpn_edge.runtime.base import OUTPUT_NAMES

def _set_threads(threads: int) -> None:
    """ExecuTorch's XNNPACK threadpool is one per process: size it for the predictor about to run."""
    from executorch.extension.pybindings import portable_lib

    if portable_lib._threadpool_get_thread_count() != threads:
        portable_lib._unsafe_reset_threadpool(threads)


class ExecuTorchPredictor(BatchOneAdapter):
    """A Predictor over a .pte artifact (fp32 or int8 inside the XNNPACK delegate; float32 I/O, NCHW)."""

    def __init__(self, path: str | os.PathLike, threads: int = 1):
        try:
            import torch
            from executorch.runtime import Runtime
        except ImportError as e:
            raise UserError("--runtime executorch: executorch is not installed (pip install -e '.[executorch]')") from e
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: no such .pte file")
        self._torch = torch
        self.runtime = "executorch"
        self.name = path.name
        self.path = path
        self.threads = threads
        self.layout = "NCHW"
        _set_threads(threads)
        try:
            self.method = Runtime.get().load_program(path).load_method("forward")
        except Exception as e:  # the bindings raise RuntimeError / ValueError with the runtime's code
            raise UserError(f"{path}: ExecuTorch cannot load this program: {str(e).splitlines()[0]}") from e
        self.metadata: dict[str, Any] = read_sidecar(path)
        meta = self.method.metadata
        names = list(self.metadata.get("output_names") or OUTPUT_NAMES[: meta.num_outputs()])
        if len(names) != meta.num_outputs() or meta.num_inputs() != 1:
            raise UserError(f"{path}: expected 1 input and the {len(names)} outputs of its sidecar, found "
                            f"{meta.num_inputs()} and {meta.num_outputs()}")
        self.raw_names = names
        self.outputs = tuple(n for n in OUTPUT_NAMES if n in names)
        shapes = [tuple(meta.output_tensor_meta(i).sizes()) for i in range(meta.num_outputs())]
        self.num_landmarks = next((int(s[-2]) for n, s in zip(names, shapes) if n == "landmarks"), 0)

    def _tensor(self, x: np.ndarray):
        return self._torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    def inference_call(self, x: np.ndarray):
        inputs = [self._tensor(x)]

        def run():
            _set_threads(self.threads)
            return self.method.execute(inputs)

        return run

    def run_normalized(self, x: np.ndarray) -> dict[str, np.ndarray]:
        _set_threads(self.threads)
        values = self.method.execute([self._tensor(x)])
        return finish_outputs({n: np.asarray(v.detach().numpy()) for n, v in zip(self.raw_names, values)})
