"""Multitask loss: each sample supervises only the tasks it has labels for (masks from the batch)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from atpn_edge.train.config import TrainConfig


def wing_loss(error: torch.Tensor, w: float, epsilon: float) -> torch.Tensor:
    """Wing loss (Feng et al. 2018) of non-negative errors, elementwise."""
    c = w - w * math.log(1 + w / epsilon)
    return torch.where(error < w, w * torch.log1p(error / epsilon), error - c)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # values (B, ...) summed per sample; mask (B,) or matching; a batch with no labels gives 0.
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def multitask_loss(outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], config: TrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """-> (total loss, {task: float}) for logging."""
    size = batch["image"].shape[-1]
    weights = config.loss_weights
    parts: dict[str, torch.Tensor] = {}
    if "landmarks" in outputs:
        # (B, P, 2) normalised -> point distance in crop pixels, masked per point.
        distance = torch.linalg.norm((outputs["landmarks"] - batch["landmarks"]) * size, dim=-1)
        parts["landmarks"] = _masked_mean(wing_loss(distance, config.wing_w, config.wing_epsilon), batch["landmark_mask"])
    if "pose" in outputs:
        per_sample = F.smooth_l1_loss(outputs["pose"], batch["pose"], reduction="none", beta=1.0).mean(dim=1)
        parts["pose"] = _masked_mean(per_sample, batch["pose_mask"])
    if "face_logit" in outputs:
        per_sample = F.binary_cross_entropy_with_logits(outputs["face_logit"], batch["face_score"], reduction="none")
        parts["face"] = _masked_mean(per_sample, batch["face_mask"])
    if "face_box" in outputs:
        per_sample = F.smooth_l1_loss(outputs["face_box"] * size, batch["face_box"] * size, reduction="none", beta=1.0).mean(dim=1)
        parts["box"] = _masked_mean(per_sample, batch["box_mask"])
    total = sum(getattr(weights, name) * value for name, value in parts.items())
    return total, {name: float(value.detach()) for name, value in parts.items()}
