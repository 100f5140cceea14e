"""The one PyTorch predictor: an nn.Module (float, pruned, or a PT2E graph wrapped in
`compress.pt2e.QuantizedModel`) behind the Predictor contract of runtime/base.py.

    predictor = TorchPredictor.from_checkpoint("runs/demo/float/best.pt")
    out = predictor.predict(crops)   # (B, S, S, 3) uint8 RGB -> {"landmarks": (B, P, 2), ...}

Exported artifacts run through the torch-free runtime/ adapters; this is their PyTorch twin, and
the output conventions (names, face_logit -> face_score) come from runtime/ so both agree.
"""

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

    def __init__(self, model: nn.Module, name: str | None = None, threads: int | None = None, batch_size: int = 64,
                 device: torch.device | str = "cpu"):
        if isinstance(model, torch.fx.GraphModule):
            raise ValueError("TorchPredictor: wrap a PT2E GraphModule in compress.pt2e.QuantizedModel first")
        model.eval()
        self.model = model
        self.name = name or getattr(model, "name", type(model).__name__)
        self.threads = threads
        self.batch_size = batch_size
        self.device = torch.device(device)
        size = int((getattr(model, "options", None) or {}).get("input_size", 112))
        probe = self.run_normalized(np.zeros((1, 3, size, size), np.float32))
        self.outputs = tuple(n for n in OUTPUT_NAMES if n in probe)
        self.num_landmarks = int(probe["landmarks"].shape[-2]) if "landmarks" in probe else 0

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, threads: int | None = None) -> "TorchPredictor":
        from atpn_edge.train.checkpoint import load_checkpoint

        model, _ = load_checkpoint(path)
        return cls(model, name=os.path.basename(str(path)), threads=threads)

    def run_normalized(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """(B, 3, S, S) float32 in [-1, 1] -> named outputs (face_score a probability)."""
        with torch.no_grad():
            outputs = self.model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device))
        return finish_outputs({k: v.detach().float().cpu().numpy() for k, v in outputs.items()})

    def inference_call(self, x: np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)

        def forward() -> object:
            with torch.no_grad():
                return self.model(tensor)

        return forward

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        if self.threads:
            torch.set_num_threads(self.threads)
        x = preprocess(images)
        rows = [self.run_normalized(x[i : i + self.batch_size]) for i in range(0, x.shape[0], self.batch_size)]
        return {name: np.concatenate([r[name] for r in rows]) for name in self.outputs}


def torch_predict_fn(model: nn.Module, device: torch.device | str = "cpu"):
    """(B, S, S, 3) uint8 RGB -> named numpy outputs, in eval mode without gradients."""
    return TorchPredictor(model, device=device).predict
