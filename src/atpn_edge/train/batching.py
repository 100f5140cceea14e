"""Samples -> masked training batches, with deterministic per-sample augmentation and DDP sharding."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from atpn_edge.data.sample import Sample
from atpn_edge.data.schemes import WFLW98_TO_IBUG68
from atpn_edge.runtime.base import preprocess

AugmentFn = Callable[[Sample, np.random.Generator], Sample]


def sample_to_arrays(sample: Sample, num_points: int) -> dict[str, np.ndarray]:
    """One Sample -> fixed-shape arrays and masks (a missing label has mask 0)."""
    landmarks = np.zeros((num_points, 2), np.float32)
    landmark_mask = np.zeros(num_points, np.float32)
    if sample.landmarks is not None:
        n = sample.landmarks.shape[0]
        if n == num_points:
            landmarks[:] = sample.landmarks
            landmark_mask[:] = 1.0
        elif n == 68 and num_points == 98:  # 68-point data supervises the 68 matching outputs
            landmarks[WFLW98_TO_IBUG68] = sample.landmarks
            landmark_mask[WFLW98_TO_IBUG68] = 1.0
        else:
            raise ValueError(f"{sample.source}: {n} landmarks cannot supervise a {num_points}-point model")
    return {
        "image": preprocess(sample.image)[0],
        "landmarks": landmarks,
        "landmark_mask": landmark_mask,
        "pose": np.zeros(3, np.float32) if sample.pose is None else np.asarray(sample.pose, np.float32),
        "pose_mask": np.float32(sample.pose is not None),
        "face_score": np.float32(0.0 if sample.face_score is None else sample.face_score),
        "face_mask": np.float32(sample.face_score is not None),
        "face_box": np.zeros(4, np.float32) if sample.face_box is None else np.asarray(sample.face_box, np.float32),
        "box_mask": np.float32(sample.face_box is not None),
    }


class TrainingSet(torch.utils.data.Dataset):
    """Wraps a Sequence[Sample]; augmentation randomness depends only on (seed, epoch, index),
    so a resumed run and a DataLoader with any number of workers see the same batches."""

    def __init__(self, samples: Sequence[Sample], num_points: int, augment: AugmentFn | None, seed: int):
        self.samples = samples
        self.num_points = num_points
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        sample = self.samples[index]
        if self.augment is not None:
            sample = self.augment(sample, np.random.default_rng([self.seed, self.epoch, index]))
        return sample_to_arrays(sample, self.num_points)


class EpochSampler(torch.utils.data.Sampler):
    """A fresh permutation per epoch from (seed, epoch), split across DDP ranks (equal shares)."""

    def __init__(self, n: int, seed: int, rank: int = 0, world_size: int = 1):
        self.n, self.seed, self.rank, self.world_size = n, seed, rank, world_size
        self.epoch = 0

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch, 7919]).permutation(self.n)
        per_rank = self.n // self.world_size
        return iter(order[self.rank :: self.world_size][:per_rank].tolist())

    def __len__(self) -> int:
        return self.n // self.world_size


def collate(items: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    return {key: torch.from_numpy(np.stack([item[key] for item in items])) for key in items[0]}
