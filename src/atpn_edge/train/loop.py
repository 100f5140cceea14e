"""The one optimisation loop that training (train/trainer.py) and fine-tuning (compress/finetune.py) share:
AdamW, linear warm-up then cosine decay, gradient clipping, and a loss that must stay finite."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

CLIP_NORM = 10.0  # max gradient norm: the heatmap and pose losses spike on the first batches


def lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Linear warm-up, then cosine decay to 1 % of the peak."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def adamw_cosine(parameters, lr: float, weight_decay: float, total_steps: int, warmup_steps: int):
    """-> (AdamW, its per-step LambdaLR schedule of `lr_factor`)."""
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total_steps, warmup_steps))
    return optimizer, scheduler


def run_epoch(batches: Iterable, loss_of: Callable[[dict], tuple[torch.Tensor, dict[str, float]]], optimizer, scheduler,
              clipped: list[torch.nn.Parameter], where: str) -> tuple[dict[str, float], int]:
    """One pass over `batches` (a tqdm bar gets the loss and lr as postfix): loss_of(batch) -> (loss, parts);
    backward, clip, step. -> (sums of the loss and its parts, number of batches). `where` names the run in
    the error raised when the loss stops being finite."""
    sums: dict[str, float] = {}
    count = 0
    for batch in batches:
        loss, parts = loss_of(batch)
        if not torch.isfinite(loss):
            raise RuntimeError(f"{where} diverged: loss {float(loss)} ({parts})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(clipped, CLIP_NORM)
        optimizer.step()
        scheduler.step()
        for name, value in {"loss": float(loss.detach()), **parts}.items():
            sums[name] = sums.get(name, 0.0) + value
        count += 1
        if hasattr(batches, "set_postfix"):
            batches.set_postfix(loss=f"{float(loss.detach()):.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
    return sums, count
