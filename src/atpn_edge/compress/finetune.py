"""Fine-tuning for compression steps: the trainer's loss and batching, with a per-epoch atomic state file.

    model = finetune(model, samples, TrainParams(epochs=3), loss_config, state_path="x/finetune_state.pt")

The state file holds weights, optimizer, scheduler, RNG and the finished epoch count, written with
torch.save to a temporary name and renamed, so a run killed at any moment resumes from the last
finished epoch with the same batches (the sampler and augmentation depend only on seed and epoch).
The caller rebuilds the same model structure before resuming (a re-pruned or re-prepared model).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from atpn_edge.compress.recipe import TrainParams
from atpn_edge.io import atomic_path

log = logging.getLogger(__name__)

EpochHook = Callable[[nn.Module, int], None]


def _as_dict(outputs, output_names: tuple[str, ...] | None) -> dict[str, torch.Tensor]:
    if isinstance(outputs, dict):
        return outputs
    assert output_names is not None and len(outputs) == len(output_names), "tuple outputs need output_names"
    return dict(zip(output_names, outputs))


def training_loader(samples: Sequence, num_points: int, params: TrainParams, epoch: int):
    from atpn_edge.data.augment import AugmentConfig, augment_crop
    from atpn_edge.train.batching import EpochSampler, TrainingSet, collate

    augment = None
    if params.augment:
        from functools import partial

        augment = partial(augment_crop, config=AugmentConfig())
    dataset = TrainingSet(samples, num_points, augment, params.seed)
    sampler = EpochSampler(len(dataset), params.seed)
    dataset.epoch = sampler.epoch = epoch
    return torch.utils.data.DataLoader(dataset, batch_size=params.batch_size, sampler=sampler, collate_fn=collate,
                                       drop_last=True)


def teacher_targets(teacher: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch with its labels replaced by the teacher's outputs (soft targets for distillation).
    The masks stay the labels': a crop without a face gives no landmark, pose or box target."""
    with torch.no_grad():
        out = teacher(batch["image"])
    soft = dict(batch)
    for name in ("landmarks", "pose", "face_box"):
        if name in out:
            soft[name] = out[name].detach()
    if "face_logit" in out:
        soft["face_score"] = torch.sigmoid(out["face_logit"]).detach()
    return soft


def read_state(path: str | os.PathLike | None) -> dict | None:
    if path is None or not Path(path).is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def _resume(state_path, extra_state: dict | None, model: nn.Module, optimizer, scheduler) -> int:
    """Load a finished epoch's state written by the same run (same `extra_state`) -> epochs done (0: none)."""
    state = read_state(state_path)
    if state is None:
        return 0
    if state.get("extra", {}) != (extra_state or {}):
        log.warning("%s belongs to another run (%s): starting over", state_path, state.get("extra"))
        return 0
    model.load_state_dict(state["state_dict"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["epoch"])


def finetune(
    model: nn.Module,
    samples: Sequence,
    params: TrainParams,
    loss_config,
    *,
    num_points: int,
    state_path: str | os.PathLike | None = None,
    output_names: tuple[str, ...] | None = None,
    set_train: Callable[[nn.Module], None] | None = None,
    set_eval: Callable[[nn.Module], None] | None = None,
    epoch_hook: EpochHook | None = None,
    extra_state: dict | None = None,
    progress: bool = True,
    description: str = "finetune",
    teacher: nn.Module | None = None,
) -> nn.Module:
    """Train `model` in place for params.epochs with AdamW + cosine; returns it (in eval mode).

    `epoch_hook(model, epoch)` runs before each epoch (QAT freezes observers / BN there; it must
    depend only on the epoch so that resuming replays it). With `state_path`, a finished epoch is
    saved atomically and an existing state file is resumed from. With `teacher` and params.distill > 0
    the loss adds params.distill times the same multitask loss against the teacher's outputs.
    """
    from atpn_edge.train.losses import multitask_loss
    from atpn_edge.train.loop import adamw_cosine, run_epoch

    set_train = set_train or (lambda m: m.train())
    set_eval = set_eval or (lambda m: m.eval())
    if params.epochs == 0:
        set_eval(model)
        return model
    if len(samples) < params.batch_size:
        from atpn_edge.errors import UserError

        raise UserError(f"fine-tuning needs at least one batch: {len(samples)} samples < batch_size {params.batch_size}")
    distill = teacher is not None and params.distill > 0
    if distill:
        teacher.eval()
    torch.manual_seed(params.seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    steps_per_epoch = len(samples) // params.batch_size
    optimizer, scheduler = adamw_cosine(trainable, params.lr, params.weight_decay, steps_per_epoch * params.epochs,
                                        max(1, steps_per_epoch // 10))
    start = _resume(state_path, extra_state, model, optimizer, scheduler)
    if start:
        log.info("%s: resuming after epoch %d of %d", description, start, params.epochs)
    for epoch in range(start, params.epochs):
        set_train(model)
        if epoch_hook is not None:  # after set_train: switching modes may undo a frozen batch norm
            epoch_hook(model, epoch)
        loader = training_loader(samples, num_points, params, epoch)
        bar = tqdm(loader, desc=f"{description} {epoch + 1}/{params.epochs}", unit="batch", disable=not progress,
                   leave=False)

        def loss_of(batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
            outputs = _as_dict(model(batch["image"]), output_names)
            loss, parts = multitask_loss(outputs, batch, loss_config)
            if distill:
                loss = loss + params.distill * multitask_loss(outputs, teacher_targets(teacher, batch), loss_config)[0]
            return loss, parts

        sums, count = run_epoch(bar, loss_of, optimizer, scheduler, trainable, f"{description} at epoch {epoch + 1}")
        log.info("%s epoch %d/%d: loss %.4f", description, epoch + 1, params.epochs, sums.get("loss", 0.0) / max(1, count))
        if state_path is not None:
            with atomic_path(state_path) as tmp:
                torch.save({"epoch": epoch + 1, "state_dict": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                            "extra": extra_state or {}}, tmp)
    set_eval(model)
    return model
