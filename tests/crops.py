"""Helpers the export tests share: random crops, and a float or PT2E model's outputs as a Predictor names them."""

from __future__ import annotations

import numpy as np


def random_crops(n: int, seed: int) -> np.ndarray:
    """(n, 112, 112, 3) uint8 noise crops."""
    return np.random.default_rng(seed).integers(0, 256, (n, 112, 112, 3), dtype=np.uint8)


def torch_outputs(model, images: np.ndarray) -> dict[str, np.ndarray]:
    """PyTorch outputs on the crops, face_logit turned into face_score like every artifact's."""
    import torch

    from atpn_edge.runtime.base import preprocess

    with torch.no_grad():
        out = {k: v.numpy() for k, v in model(torch.from_numpy(preprocess(images))).items()}
    out["face_score"] = 1 / (1 + np.exp(-out.pop("face_logit")))
    return out
