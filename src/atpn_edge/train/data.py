"""Where the trainer's samples come from: the cached synthetic set (augmented on the fly) or a real
data set through the `--data` registry (augmented by its loader)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial

import torch.distributed as dist

from atpn_edge.data.sample import Sample
from atpn_edge.train.batching import AugmentFn
from atpn_edge.train.config import TrainConfig

log = logging.getLogger(__name__)


def synthetic_split(split: str, num_samples: int, num_points: int, input_size: int, cache_dir: str):
    """The cached synthetic set of a split (train: seed 0, val: seed 1, test: seed 2) as samples."""
    from atpn_edge.data.synthetic import SyntheticConfig, SyntheticFaces

    seed = {"train": 0, "val": 1, "test": 2}[split]
    faces = SyntheticFaces(num_samples=num_samples, seed=seed, config=SyntheticConfig(size=input_size, num_points=num_points))
    return faces.cached(cache_dir)


def load_training_data(config: TrainConfig, num_points: int, input_size: int, ctx) -> tuple[Sequence[Sample], Sequence[Sample], AugmentFn | None]:
    from atpn_edge.data.augment import AugmentConfig, augment_crop
    from atpn_edge.data.registry import open_dataset, parse_data_spec

    spec = parse_data_spec(config.data)
    if spec.kind == "synthetic":
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
