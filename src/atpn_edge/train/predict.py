"""Run a PyTorch model (float or quantized) as a numpy predictor (the Predictor output contract)."""

from __future__ import annotations

import numpy as np
import torch

from atpn_edge.runtime.base import preprocess


def outputs_to_numpy(outputs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Model outputs -> Predictor outputs: the face logit becomes a probability named face_score."""
    result = {}
    for name, value in outputs.items():
        if name == "face_logit":
            result["face_score"] = torch.sigmoid(value).reshape(-1).float().cpu().numpy()
        else:
            result[name] = value.float().cpu().numpy()
    return result


def torch_predict_fn(model: torch.nn.Module, device: torch.device | str = "cpu"):
    """(B, S, S, 3) uint8 RGB -> named numpy outputs, in eval mode without gradients."""

    def predict(images: np.ndarray) -> dict[str, np.ndarray]:
        x = torch.from_numpy(preprocess(images)).to(device)
        with torch.no_grad():
            return outputs_to_numpy(model(x))

    return predict
