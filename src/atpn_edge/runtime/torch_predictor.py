"""The Predictor over a PyTorch model: a checkpoint, an nn.Module, or a PT2E-quantized GraphModule."""

from __future__ import annotations

import logging
import os

import numpy as np
import torch
from torch import nn

from atpn_edge.runtime._common import finish_outputs
from atpn_edge.runtime.base import OUTPUT_NAMES, preprocess

log = logging.getLogger(__name__)


class TorchPredictor:
    runtime = "torch"

    def __init__(self, model: nn.Module, name: str | None = None, threads: int | None = None, batch_size: int = 64):
        if isinstance(model, torch.fx.GraphModule):
            from atpn_edge.compress.pt2e import QuantizedModel

            model = QuantizedModel(model)
        else:
            model.eval()  # QuantizedModel.eval() only flips its own flag
        self.model = model
        self.name = name or getattr(model, "name", type(model).__name__)
        self.threads = threads
        self.batch_size = batch_size
        size = int((getattr(model, "options", None) or {}).get("input_size", 112))
        with torch.no_grad():
            probe = self._forward(torch.zeros(1, 3, size, size))
        self.outputs = tuple(n for n in OUTPUT_NAMES if n in probe)
        self.num_landmarks = int(probe["landmarks"].shape[-2]) if "landmarks" in probe else 0

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, threads: int | None = None) -> "TorchPredictor":
        from atpn_edge.train.checkpoint import load_checkpoint

        model, _ = load_checkpoint(path)
        return cls(model, name=os.path.basename(str(path)), threads=threads)

    def _forward(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        outputs = self.model(x)
        return finish_outputs({k: v.detach().float().numpy() for k, v in outputs.items()})

    def run_normalized(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """(B, 3, S, S) float32 in [-1, 1] -> named outputs (face_score a probability)."""
        with torch.no_grad():
            return self._forward(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        if self.threads:
            torch.set_num_threads(self.threads)
        x = preprocess(images)
        rows = [self.run_normalized(x[i : i + self.batch_size]) for i in range(0, x.shape[0], self.batch_size)]
        return {name: np.concatenate([r[name] for r in rows]) for name in self.outputs}
