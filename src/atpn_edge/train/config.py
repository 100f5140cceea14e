"""Typed training configuration, loaded from a YAML recipe and overridden from the command line."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from atpn_edge.errors import UserError
from atpn_edge.io import read_yaml, recipe_path
from atpn_edge.data.registry import DEFAULT_CACHE_DIR


@dataclass(frozen=True)
class LossWeights:
    landmarks: float = 1.0  # wing loss in crop pixels
    pose: float = 0.1  # smooth L1 in degrees
    face: float = 1.0  # binary cross-entropy on the face logit
    box: float = 0.1  # smooth L1 in crop pixels


@dataclass(frozen=True)
class TrainConfig:
    model: str = "atpn"
    model_options: dict[str, Any] = field(default_factory=dict)
    data: str = "synthetic"  # "synthetic" or KIND:PATH (see data/registry.py)
    train_samples: int = 12000  # synthetic data: size of the training set (rendered once, cached)
    val_samples: int = 1000  # validation set size (synthetic: seed 1; real: a limit, 0 = all)
    epochs: int = 12
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 5e-5
    warmup_epochs: float = 0.5
    loss_weights: LossWeights = field(default_factory=LossWeights)
    wing_w: float = 10.0  # wing loss width, crop pixels
    wing_epsilon: float = 2.0  # wing loss curvature, crop pixels
    augment: bool = True
    threads: int = 2  # torch intra-op threads per process
    num_workers: int = 0  # DataLoader workers (0: load in the training process)
    seed: int = 0
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


def _build(cls, values: dict, source: str, prefix: str = ""):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise UserError(f"{source}: unknown key '{prefix}{key}' (known: {', '.join(fields)})")
        default = getattr(cls(), key)
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise UserError(f"{source}: '{prefix}{key}' must be a mapping")
            value = _build(type(default), value, source, f"{prefix}{key}.")
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise UserError(f"{source}: '{prefix}{key}' must be true or false, got {value!r}")
        elif isinstance(default, (int, float)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UserError(f"{source}: '{prefix}{key}' must be a number, got {value!r}")
            if isinstance(default, int) and not isinstance(value, int):
                raise UserError(f"{source}: '{prefix}{key}' must be a whole number, got {value!r}")
            if value < 0:
                raise UserError(f"{source}: '{prefix}{key}' must not be negative, got {value!r}")
        elif isinstance(default, str):
            if not isinstance(value, str):
                raise UserError(f"{source}: '{prefix}{key}' must be a string, got {value!r}")
        elif isinstance(default, dict):
            if not isinstance(value, dict):
                raise UserError(f"{source}: '{prefix}{key}' must be a mapping")
        kwargs[key] = value
    config = cls(**kwargs)
    if isinstance(config, TrainConfig):
        for key in ("epochs", "batch_size", "train_samples", "threads"):
            if getattr(config, key) < 1:
                raise UserError(f"{source}: '{key}' must be at least 1")
        if config.lr <= 0:
            raise UserError(f"{source}: 'lr' must be positive")
    return config


def config_from_dict(values: dict, source: str = "config") -> TrainConfig:
    return _build(TrainConfig, values, source)


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
