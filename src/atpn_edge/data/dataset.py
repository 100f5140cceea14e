"""What every real data set loader shares: the base Sequence, image reading, label checks, splits.

A loader lists its items at construction (parsing annotations strictly: a bad line is a
UserError naming the file and line), and loads one image per `__getitem__`. Items whose image
file is missing are dropped at construction with a count and the first few paths logged, or
raise with `strict=True`. An image that exists but cannot be decoded raises a UserError naming
it when loaded; `iter_samples` turns those into counted skips for a whole-data-set pass.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from atpn_edge.data.augment import AugmentConfig, make_eval_sample, make_training_sample
from atpn_edge.data.crop import DEFAULT_CROP_SCALE
from atpn_edge.data.sample import Sample
from atpn_edge.data.schemes import to_68
from atpn_edge.errors import UserError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
_SHOW_FIRST = 5  # how many skipped paths a log line names


@dataclass
class RawFace:
    """One face (or non-face window) in original-image pixels, before cropping."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    box: np.ndarray  # (4,) x1, y1, x2, y2 pixels: the face box (or the negative window)
    landmarks: np.ndarray | None = None  # (P, 2) float pixels, 0-based, pixel centres at integers
    pose: np.ndarray | None = None  # (3,) yaw, pitch, roll degrees
    face_score: float | None = None
    crop_scale: float = DEFAULT_CROP_SCALE
    attributes: dict[str, bool] = field(default_factory=dict)
    source: str = ""


@dataclass
class SkipReport:
    """Items dropped for a reason, with the first few paths for the log line."""

    reason: str
    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, path: str | os.PathLike) -> None:
        self.count += 1
        if len(self.examples) < _SHOW_FIRST:
            self.examples.append(str(path))

    def log(self, where: str) -> None:
        if self.count:
            log.warning(
                "%s: skipped %d item(s): %s (first: %s)",
                where,
                self.count,
                self.reason,
                ", ".join(self.examples),
            )


def read_image_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image with OpenCV as (H, W, 3) uint8 RGB; UserError naming the file otherwise."""
    path = str(path)
    if not os.path.isfile(path):
        raise UserError(f"{path}: image file not found")
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise UserError(f"{path}: cannot decode image (corrupt or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def check_points(points: np.ndarray, expected: int, where: str) -> np.ndarray:
    """(P, 2) finite float32 landmarks with P == expected, or a UserError naming `where`."""
    points = np.asarray(points, np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] != expected:
        raise UserError(f"{where}: expected {expected} landmarks (x, y), got shape {points.shape}")
    if not np.all(np.isfinite(points)):
        raise UserError(f"{where}: landmarks contain NaN or inf")
    return points.astype(np.float32)


def check_finite(values: np.ndarray, what: str, where: str) -> np.ndarray:
    values = np.asarray(values, np.float64)
    if not np.all(np.isfinite(values)):
        raise UserError(f"{where}: {what} contains NaN or inf")
    return values


def hash_fraction(key: str) -> float:
    """A stable number in [0, 1) from a string: deterministic splits across machines and runs."""
    digest = hashlib.sha1(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_val_split(key: str, val_fraction: float) -> bool:
    return hash_fraction(key) < val_fraction


def check_split(kind: str, split: str, allowed: Sequence[str]) -> None:
    if split not in allowed:
        raise UserError(f"{kind}: split '{split}' is not available (choose from {', '.join(allowed)})")


class FaceDataset(Sequence[Sample]):
    """A Sequence of Samples: len, getitem (int), subsets, set_epoch.

    Subclasses set `self.kind`, `self.root`, fill `self._items` (anything they need per
    item) and implement `_raw(item) -> RawFace`. With `augment=True` a sample is drawn with an
    rng seeded by (seed, epoch, index), so it is deterministic yet differs between epochs
    once the trainer calls `set_epoch`.
    """

    kind = "base"
    native_points: int | None = None  # landmark count the data set carries (None: no landmarks)

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        size: int = 112,
        num_points: int = 98,
        augment: bool = False,
        seed: int = 0,
        limit: int | None = None,
        strict: bool = False,
        augment_config: AugmentConfig | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.size = size
        self.num_points = num_points
        self.augment = augment
        self.seed = seed
        self.limit = limit
        self.strict = strict
        self.augment_config = augment_config or AugmentConfig()
        self.epoch = 0
        self._items: list = []
        self._subsets: dict[str, np.ndarray] = {}
        self.skipped: list[SkipReport] = []

    # -- for subclasses -------------------------------------------------------------------
    def _raw(self, item) -> RawFace:  # pragma: no cover - abstract
        raise NotImplementedError

    def _finish(self, items: list, attributes: list[dict[str, bool]] | None = None) -> None:
        """Apply `limit`, compute subsets from per-item attribute flags, log skip counts."""
        if self.limit is not None:
            items = items[: self.limit]
            if attributes is not None:
                attributes = attributes[: self.limit]
        self._items = items
        if attributes is not None:
            names = sorted({k for a in attributes for k in a})
            self._subsets = {
                name: np.array([i for i, a in enumerate(attributes) if a.get(name)], np.int64)
                for name in names
            }
        for report in self.skipped:
            report.log(f"{self.kind}:{self.root} ({self.split})")
        log.info("%s:%s (%s): %d items", self.kind, self.root, self.split, len(items))

    def _missing_images(self, reason: str = "image file not found") -> SkipReport:
        report = SkipReport(reason)
        self.skipped.append(report)
        return report

    def _drop_or_raise(self, report: SkipReport, path: str | os.PathLike) -> None:
        if self.strict:
            raise UserError(f"{path}: {report.reason}")
        report.add(path)

    # -- public -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        if isinstance(index, slice):
            raise TypeError("FaceDataset does not support slicing; use indices")
        n = len(self._items)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {n} items")
        raw = self._raw(self._items[index])
        return self._to_sample(raw, index)

    def _to_sample(self, raw: RawFace, index: int) -> Sample:
        landmarks = raw.landmarks
        if landmarks is not None and self.num_points == 68 and landmarks.shape[0] == 98:
            landmarks = to_68(landmarks)
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            sample = make_training_sample(
                raw.image, landmarks, raw.box, raw.pose, rng, self.augment_config,
                size=self.size, crop_scale=raw.crop_scale,
                with_face_box=raw.face_score != 0.0,
            )
        else:
            sample = make_eval_sample(
                raw.image, landmarks, raw.box, raw.pose, size=self.size,
                crop_scale=raw.crop_scale, with_face_box=raw.face_score != 0.0,
            )
        sample.face_score = raw.face_score
        sample.attributes = dict(raw.attributes)
        sample.source = raw.source
        return sample

    def raw(self, index: int) -> RawFace:
        """The uncropped image and labels of item `index` (for predict/track style evaluation)."""
        return self._raw(self._items[index])

    def subsets(self) -> dict[str, np.ndarray]:
        """Named subsets as index arrays into this data set (WFLW: pose, expression, ...)."""
        return dict(self._subsets)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def skip_counts(self) -> dict[str, int]:
        return {r.reason: r.count for r in self.skipped}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.kind}:{self.root}, split={self.split}, n={len(self)})"


def iter_samples(dataset: Sequence[Sample], strict: bool = False) -> Iterator[Sample]:
    """Iterate a whole data set; undecodable images are counted and logged (strict: raise)."""
    report = SkipReport("image could not be read")
    for i in range(len(dataset)):
        try:
            yield dataset[i]
        except UserError as error:
            if strict:
                raise
            report.add(str(error))
    report.log(repr(dataset))
