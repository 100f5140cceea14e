"""Where the trainer's samples come from: the cached synthetic set (augmented on the fly) or a real
data set through the `--data` registry (augmented by its loader)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING

from atpn_edge.data.registry import synthetic_split
from atpn_edge.data.sample import Sample
from atpn_edge.errors import UserError
from atpn_edge.train.config import TrainConfig

if TYPE_CHECKING:
    from atpn_edge.train.batching import AugmentFn

log = logging.getLogger(__name__)


def load_training_data(config: TrainConfig, num_points: int, input_size: int, ctx) -> tuple[Sequence[Sample], Sequence[Sample], AugmentFn | None]:
    from atpn_edge.data.augment import AugmentConfig, augment_crop
    from atpn_edge.data.registry import open_dataset, parse_data_spec

    if str(config.data).strip().lower() == "real":
        raise UserError("--data real: the built-in real photographs are for evaluation only; train on synthetic or KIND:PATH")
    spec = parse_data_spec(config.data)
    if spec.kind == "synthetic":
        import torch.distributed as dist

        # Rank 0 renders the caches; the other ranks wait and then read them.
        if ctx.enabled and not ctx.is_main:
            dist.barrier()
        train = synthetic_split("train", config.train_samples, num_points, input_size, config.cache_dir)
        val = synthetic_split("val", config.val_samples, num_points, input_size, config.cache_dir)
        if ctx.enabled and ctx.is_main:
            dist.barrier()
        return train, val, partial(augment_crop, config=AugmentConfig())
    train = open_dataset(spec, split="train", size=input_size, num_points=num_points, augment=config.augment, seed=config.seed)
    val = open_dataset(spec, split="val", size=input_size, num_points=num_points, augment=False, seed=config.seed,
                       limit=config.val_samples or None)
    return train, val, None
