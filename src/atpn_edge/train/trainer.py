"""The multitask trainer: AdamW + warm-up/cosine, per-epoch validation, atomic checkpoints, exact
resume, and DDP through torchrun (gloo on CPU, nccl on GPUs).

    out_dir/last.pt     every epoch, with optimizer/scheduler/RNG state (what --resume reads)
    out_dir/best.pt     the epoch with the lowest validation NME (weights, config, metrics)
    out_dir/log.json    one entry per epoch: losses, validation metrics, images/s
"""

from __future__ import annotations

import logging
import os
import time
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from atpn_edge.errors import UserError
from atpn_edge.evaluate import evaluate
from atpn_edge.io import write_json
from atpn_edge.models import build_model, rebuild_model
from atpn_edge.train.batching import EpochSampler, TrainingSet, collate
from atpn_edge.train.checkpoint import load_weights, read_checkpoint, save_checkpoint
from atpn_edge.train.config import TrainConfig, config_from_dict
from atpn_edge.train.loop import adamw_cosine, run_epoch
from atpn_edge.train.data import load_training_data
from atpn_edge.train.losses import multitask_loss
from atpn_edge.train.predict import torch_predict_fn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed() -> DistributedContext:
    """Join the process group torchrun describes in the environment (no-op without torchrun)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    ctx = DistributedContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    log.info("DDP: rank %d of %d (%s)", ctx.rank, ctx.world_size, backend)
    return ctx


def train(config: TrainConfig, out_dir: str | Path, resume: bool = False, progress: bool = True) -> dict:
    """Train (or continue training) and return the final log entry."""
    ctx = init_distributed()
    out_dir = Path(out_dir)
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    device = torch.device(f"cuda:{ctx.local_rank}" if torch.cuda.is_available() else "cpu")

    last_path = out_dir / "last.pt"
    state = None
    if resume:
        if not last_path.is_file():
            raise UserError(f"{last_path}: nothing to resume (no last.pt in {out_dir})")
        state = read_checkpoint(last_path)
        if "train_state" not in state:
            raise UserError(f"{last_path}: checkpoint has no training state to resume from")
        config = config_from_dict(state["train_config"], source=str(last_path))
        log.info("resuming %s from the end of epoch %d", out_dir, state["train_state"]["epoch"])

    if state is not None:  # the architecture the checkpoint was built with, not today's defaults
        model = rebuild_model(config.model, config.model_options)
    else:
        model = build_model(config.model, **config.model_options)
    # the log and checkpoints record the resolved options, so that a later change of a default
    # is seen as a different run (train.config.same_training)
    config = dataclasses.replace(config, model_options=dict(model.options))
    num_points = int(model.options.get("num_landmarks", 98))
    input_size = int(model.options.get("input_size", 112))
    train_samples, val_samples, augment = load_training_data(config, num_points, input_size, ctx)

    dataset = TrainingSet(train_samples, num_points, augment if config.augment else None, config.seed)
    sampler = EpochSampler(len(dataset), config.seed, ctx.rank, ctx.world_size)
    per_rank_batch = max(1, config.batch_size // ctx.world_size)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=per_rank_batch, sampler=sampler, collate_fn=collate,
        num_workers=config.num_workers, drop_last=True, persistent_workers=False,
    )
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise UserError(f"{config.data}: {len(dataset)} training samples is fewer than one batch of {config.batch_size}")
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = max(1, int(config.warmup_epochs * steps_per_epoch))

    if state is None:
        _init_template_from_data(model, train_samples)
    model.to(device)
    optimizer, scheduler = adamw_cosine(model.parameters(), config.lr, config.weight_decay, total_steps, warmup_steps)
    history: list[dict] = []
    start_epoch = 0
    best_nme = float("inf")
    if state is not None:
        load_weights(model, state["state_dict"], source=str(last_path))
        optimizer.load_state_dict(state["train_state"]["optimizer"])
        scheduler.load_state_dict(state["train_state"]["scheduler"])
        torch.set_rng_state(state["train_state"]["torch_rng"])
        history = list(state["train_state"]["history"])
        start_epoch = int(state["train_state"]["epoch"])
        best_nme = float(state["train_state"]["best_nme"])

    train_model = model
    if ctx.enabled:
        train_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    for epoch in range(start_epoch, config.epochs):
        dataset.epoch = sampler.epoch = epoch
        train_model.train()
        started = time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", disable=not (progress and ctx.is_main), leave=False)

        def loss_of(batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            return multitask_loss(train_model(batch["image"]), batch, config)

        sums, _ = run_epoch(bar, loss_of, optimizer, scheduler, list(model.parameters()),
                            f"training at epoch {epoch + 1}")
        elapsed = time.perf_counter() - started
        entry = {
            "epoch": epoch + 1,
            "train": {k: v / steps_per_epoch for k, v in sums.items()},
            "lr": scheduler.get_last_lr()[0],
            "images_per_s": steps_per_epoch * per_rank_batch * ctx.world_size / elapsed,
            "epoch_seconds": elapsed,
        }
        if ctx.enabled:
            entry["replica_checksums"] = _replica_checksums(model)
        if ctx.is_main:
            model.eval()
            val = evaluate(torch_predict_fn(model, device), val_samples, progress=False)[0].to_json()
            entry["val"] = val
            history.append(entry)
            log.info(
                "epoch %d/%d  loss %.3f  val NME %.2f%%  FR %.1f%%  pose MAE %s  %.0f img/s",
                epoch + 1, config.epochs, entry["train"]["loss"], 100 * val["nme"], 100 * val["fr_10"],
                f"{val['pose_mae'].get('mean', float('nan')):.2f}" if val.get("pose_mae") else "-",
                entry["images_per_s"],
            )
            if val["nme"] < best_nme:
                best_nme = val["nme"]
                save_checkpoint(out_dir / "best.pt", model, metrics={"val": val, "epoch": epoch + 1, "data": config.data},
                                train_config=config.to_dict())
            train_state = {
                "epoch": epoch + 1,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "history": history,
                "best_nme": best_nme,
            }
            save_checkpoint(last_path, model, metrics={"val": val, "epoch": epoch + 1, "data": config.data},
                            train_config=config.to_dict(), train_state=train_state)
            write_json(out_dir / "log.json", {"config": config.to_dict(), "world_size": ctx.world_size, "epochs": history})
        if ctx.enabled:
            dist.barrier()
    if ctx.enabled:
        dist.barrier()
        dist.destroy_process_group()
    return history[-1] if history else {}


def _init_template_from_data(model: torch.nn.Module, samples) -> None:
    """Start the landmark regressor at the training set's mean shape (cached synthetic sets expose
    their label arrays; other sources keep the model's built-in template)."""
    from atpn_edge.models import landmark_regressor, set_landmark_template

    landmarks, has_face = getattr(samples, "landmarks", None), getattr(samples, "has_face", None)
    if landmarks is None or has_face is None or not has_face.any() or landmark_regressor(model) is None:
        return
    set_landmark_template(model, np.asarray(landmarks[has_face], np.float64).mean(axis=0))


def _replica_checksums(model: torch.nn.Module) -> list[float]:
    """Each rank's parameter sum, gathered: DDP keeps replicas identical, so these must agree."""
    with torch.no_grad():
        checksum = torch.tensor([float(sum(p.double().sum() for p in model.parameters()))], dtype=torch.float64)
    gathered = [torch.zeros_like(checksum) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, checksum)
    return [float(t) for t in gathered]
