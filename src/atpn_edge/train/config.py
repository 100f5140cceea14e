"""Typed training configuration, loaded from a YAML recipe and overridden from the command line."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from atpn_edge.data.registry import DEFAULT_CACHE_DIR
from atpn_edge.errors import UserError
from atpn_edge.io import read_yaml, recipe_path
from atpn_edge.typed_config import build_config, option


@dataclass(frozen=True)
class LossWeights:
    landmarks: float = option(1.0, min=0)  # wing loss in crop pixels
    pose: float = option(0.1, min=0)  # smooth L1 in degrees
    face: float = option(1.0, min=0)  # binary cross-entropy on the face logit
    box: float = option(0.1, min=0)  # smooth L1 in crop pixels


@dataclass(frozen=True)
class TrainConfig:
    model: str = "atpn"
    model_options: dict[str, Any] = field(default_factory=dict)
    data: str = "synthetic"  # "synthetic" or KIND:PATH (see data/registry.py)
    train_samples: int = option(12000, min=1)  # synthetic data: size of the training set (rendered once, cached)
    val_samples: int = option(1000, min=0)  # validation set size (synthetic: seed 1; real: a limit, 0 = all)
    epochs: int = option(12, min=1)
    batch_size: int = option(64, min=1)
    lr: float = option(3e-3, min=0, min_exclusive=True)
    weight_decay: float = option(5e-5, min=0)
    warmup_epochs: float = option(0.5, min=0)
    loss_weights: LossWeights = field(default_factory=LossWeights)
    wing_w: float = option(10.0, min=0, min_exclusive=True)  # wing loss width, crop pixels
    wing_epsilon: float = option(2.0, min=0, min_exclusive=True)  # wing loss curvature, crop pixels
    augment: bool = True
    threads: int = option(2, min=1)  # torch intra-op threads per process
    num_workers: int = option(0, min=0)  # DataLoader workers (0: load in the training process)
    seed: int = option(0, min=0)
    cache_dir: str = DEFAULT_CACHE_DIR

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Settings that change speed, not what is trained: runs that differ only in these are the same run.
SPEED_ONLY_KEYS = ("threads", "num_workers", "cache_dir")


def same_training(logged: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """True when a run's logged TrainConfig dict and a wanted one train the same model the same way
    (ignoring SPEED_ONLY_KEYS). Model options are compared resolved: the log's as the run built
    them (an option it predates takes its old value), the wanted one's with today's defaults."""
    from atpn_edge.models import resolve_options

    def key(d: dict[str, Any], stored: bool) -> dict[str, Any]:
        d = {k: v for k, v in d.items() if k not in SPEED_ONLY_KEYS}
        try:
            d["model_options"] = resolve_options(d.get("model", ""), d.get("model_options") or {}, stored=stored)
        except UserError:
            pass  # an unknown model or option: compare as written
        return d

    return key(logged, True) == key(wanted, False)


def config_from_dict(values: dict, source: str = "config") -> TrainConfig:
    return build_config(TrainConfig, values, source)


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """YAML recipe (safe_load) + overrides (None values are ignored) -> validated TrainConfig."""
    values: dict[str, Any] = {}
    source = "command line"
    if path is not None:
        path = recipe_path(path)
        source = str(path)
        loaded = read_yaml(path, "config")
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise UserError(f"{path}: expected a mapping of config keys at the top level")
        values.update(loaded.get("train", loaded) if "train" in loaded else loaded)
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
    return config_from_dict(values, source)
