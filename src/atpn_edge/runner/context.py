"""What every step of a recipe run shares: the run's context, its training pool, fingerprints."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from atpn_edge.compress.recipe import Recipe



class Head(Sequence):
    """The first n items of a sequence (the cached training set is rendered once at its full size)."""

    def __init__(self, items: Sequence, n: int):
        self.items, self.n = items, min(n, len(items))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self.items[j] for j in range(*i.indices(self.n))]
        if not -self.n <= i < self.n:
            raise IndexError(i)
        return self.items[i % self.n]


@dataclasses.dataclass
class RunContext:
    recipe: Recipe
    out: Path
    data: str
    num_points: int
    input_size: int
    loss_config: object
    cache_dir: str
    progress: bool
    train_pool: int
    resume: bool = True
    _train: Sequence | None = None

    def train_samples(self, n: int) -> Sequence:
        from atpn_edge.data.registry import open_dataset, parse_data_spec
        from atpn_edge.data.registry import synthetic_split

        spec = parse_data_spec(self.data)
        # Synthetic: a step asking for more crops than the pool holds gets a larger pool (seeded per index, so
        # its first crops are the same ones); the count must not depend on which earlier steps ran or were reused.
        if self._train is None or (spec.kind == "synthetic" and len(self._train) < n):
            if spec.kind == "synthetic":
                self._train = synthetic_split("train", max(n, self.train_pool), self.num_points, self.input_size, self.cache_dir)
            else:
                self._train = open_dataset(spec, split="train", size=self.input_size, num_points=self.num_points,
                                           augment=False, seed=0)
        return Head(self._train, n)


def calibration_images(ctx: "RunContext", n: int, faces_only: bool = True, augment: bool = False) -> np.ndarray:
    """(n, S, S, 3) uint8 int8-calibration crops from the training pool: its first n face crops (or first n crops)."""
    from atpn_edge.data.registry import face_samples

    samples = face_samples(ctx.train_samples(2 * n), n) if faces_only else ctx.train_samples(n)
    return stack_images(samples, augment=augment)


def eval_set(data: str, split: str, n: int, num_points: int, size: int, cache_dir: str):
    from atpn_edge.data.registry import open_eval_set

    return open_eval_set(data, split, n, num_points, size, cache_dir)


def stack_images(samples: Sequence, augment: bool = False, seed: int = 0) -> np.ndarray:
    if augment:
        from atpn_edge.data.augment import AugmentConfig, augment_crop

        return np.stack([augment_crop(samples[i], np.random.default_rng([seed, 0, i]), config=AugmentConfig()).image
                         for i in range(len(samples))])
    return np.stack([samples[i].image for i in range(len(samples))])


def fingerprint(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def weights_sum(model) -> float:
    """A cheap fingerprint of a model's weights (part of a finished step's resume key)."""
    return float(sum(float(p.detach().double().sum()) for p in model.parameters()))
