"""SyntheticFaces: the embedded default data set (face crops with exact labels, and non-face crops)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np

from atpn_edge.data.crop import box_from_landmarks, crop_face
from atpn_edge.data.sample import Sample
from atpn_edge.data.schemes import WFLW98_TO_IBUG68
from atpn_edge.data.synthetic.render import render_face, sample_face_params, sample_view
from atpn_edge.data.synthetic.scene import background, degrade, hair_clutter, occlude
from atpn_edge.errors import UserError

log = logging.getLogger(__name__)

# Bump whenever rendering changes what a (seed, index, config) produces: it keys the caches.
GENERATOR_VERSION = "4"


@dataclass(frozen=True)
class SyntheticConfig:
    size: int = 112  # crop side in pixels
    num_points: int = 98  # 98 (WFLW) or 68 (ibug subset)
    nonface_fraction: float = 0.1  # share of non-face crops (face_score 0, no other labels)
    crop_scale: float = 1.25  # crop window = crop_scale x the landmark box's longer side (data/crop.py)
    crop_scale_jitter: float = 0.1  # log-normal sigma of the crop window's size
    crop_shift_jitter: float = 0.06  # normal sigma of the crop centre's shift, fraction of the window
    occlusion_prob: float = 0.25
    clutter_prob: float = 0.5
    degrade: bool = True  # colour cast, blur, noise, JPEG

    def __post_init__(self) -> None:
        if self.num_points not in (98, 68):
            raise UserError(f"synthetic data: num_points must be 98 or 68, got {self.num_points}")
        if not 0.0 <= self.nonface_fraction <= 1.0:
            raise UserError(f"synthetic data: nonface_fraction must be in [0, 1], got {self.nonface_fraction}")
        if self.size < 16:
            raise UserError(f"synthetic data: size must be at least 16, got {self.size}")


@dataclass(frozen=True)
class SyntheticArrays:
    """All samples of a SyntheticFaces as arrays (what `SyntheticFaces.cached` returns).

    images      (N, S, S, 3) uint8 RGB crops
    landmarks   (N, P, 2) float32 normalised crop coordinates; zeros where has_face is False
    pose        (N, 3) float32 yaw, pitch, roll in degrees; zeros where has_face is False
    face_score  (N,) float32 1.0 face / 0.0 non-face
    face_box    (N, 4) float32 normalised x1, y1, x2, y2 (landmark box); zeros where has_face is False
    has_face    (N,) bool, == face_score > 0.5; mask every face label with it
    """

    images: np.ndarray
    landmarks: np.ndarray
    pose: np.ndarray
    face_score: np.ndarray
    face_box: np.ndarray
    has_face: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, i: int) -> Sample:
        if not self.has_face[i]:
            return Sample(image=self.images[i], face_score=0.0, source=f"synthetic-cache:{i}")
        return Sample(image=self.images[i], landmarks=self.landmarks[i], pose=self.pose[i],
                      face_score=1.0, face_box=self.face_box[i], source=f"synthetic-cache:{i}")

    __getitem__ = sample  # a Sequence[Sample], like every other data source


def face_scene(rng: np.random.Generator, canvas_size: int, face_px: float):
    """Render a random face on a random background; returns canvas, (98, 2) px landmarks, pose, params."""
    canvas = background(rng, canvas_size, canvas_size)
    params = sample_face_params(rng)
    centre = (canvas_size / 2 + rng.normal(0, 2), canvas_size / 2 + rng.normal(0, 2))
    view = sample_view(rng, centre, face_px)
    landmarks = render_face(canvas, params, view, rng)
    return canvas, landmarks, np.array([view.yaw, view.pitch, view.roll], np.float32), params


def render_sample(seed: int, index: int, config: SyntheticConfig) -> Sample:
    """The sample `index` of the data set `seed`: depends only on (seed, index, config)."""
    rng = np.random.default_rng([seed, index, 0x5F4CE])
    size = config.size
    canvas_size = int(round(size * 1.75))
    face_px = size * 0.72  # pixels per model unit: a frontal landmark box is about 0.9 * size wide
    source = f"synthetic:{seed}:{index}"
    is_face = rng.random() >= config.nonface_fraction
    if not is_face:
        return Sample(image=_nonface(rng, config, canvas_size, face_px), face_score=0.0, source=source)

    canvas, landmarks98, pose, params = face_scene(rng, canvas_size, face_px)
    attributes = {"pose": bool(abs(pose[0]) > 45 or abs(pose[1]) > 25),
                  "expression": bool(params.mouth_open > 0.05 or params.smile > 0.6 or params.eye_closure > 0.5),
                  "occlusion": bool(params.glasses == 2), "make-up": False}
    box = box_from_landmarks(landmarks98)
    if rng.random() < config.clutter_prob:
        hair_clutter(canvas, rng, int(rng.integers(3, 15)), colour=params.hair if rng.random() < 0.6 else None)
    if rng.random() < config.occlusion_prob:
        occlude(canvas, rng, box, params.skin)
        attributes["occlusion"] = True
    scale = config.crop_scale * float(np.exp(rng.normal(0, config.crop_scale_jitter)))
    shift = tuple(float(v) for v in rng.normal(0, config.crop_shift_jitter, 2))
    crop = crop_face(canvas, box, size, scale=scale, shift=shift)
    image = crop.image
    if config.degrade:
        image, flags = degrade(image, rng)
        attributes.update(flags)
    else:
        attributes.update(blur=False, illumination=False)
    points = crop.to_crop_normalised(landmarks98)
    face_box = crop.to_crop_normalised(box.reshape(2, 2)).reshape(4)
    if config.num_points == 68:
        points = points[WFLW98_TO_IBUG68]
    return Sample(image=np.ascontiguousarray(image), landmarks=points.astype(np.float32), pose=pose,
                  face_score=1.0, face_box=face_box.astype(np.float32), attributes=attributes, source=source)


def _nonface(rng: np.random.Generator, config: SyntheticConfig, canvas_size: int, face_px: float) -> np.ndarray:
    """A crop that must score 0: texture, a face mostly outside the window, a zoomed patch, a face-like blob."""
    size = config.size
    kind = int(rng.integers(4))
    if kind == 1 or kind == 2:
        canvas, landmarks, _, _ = face_scene(rng, canvas_size, face_px)
        box = box_from_landmarks(landmarks)
        if kind == 1:  # the face mostly out of the window
            angle = rng.uniform(0, 2 * np.pi)
            dist = rng.uniform(0.62, 0.9)
            shift = (float(np.cos(angle) * dist), float(np.sin(angle) * dist))
            crop = crop_face(canvas, box, size, scale=float(rng.uniform(1.0, 1.5)), shift=shift)
        else:  # a small patch of the face (skin, hair, one eye): not a whole face
            shift = tuple(float(v) for v in rng.uniform(-0.3, 0.3, 2))
            crop = crop_face(canvas, box, size, scale=float(rng.uniform(0.25, 0.4)), shift=shift)
        image = crop.image
    else:
        image = background(rng, size, size)
        hair_clutter(image, rng, int(rng.integers(0, 20)))
        if kind == 3:  # face-like but wrong: a skin-toned blob with misplaced dark spots
            skin = rng.uniform(60, 240, 3) * np.array([1.0, 0.8, 0.65])
            c = (int(size * rng.uniform(0.3, 0.7)), int(size * rng.uniform(0.3, 0.7)))
            axes = (int(size * rng.uniform(0.2, 0.4)), int(size * rng.uniform(0.25, 0.45)))
            cv2.ellipse(image, c, axes, rng.uniform(-30, 30), 0, 360, tuple(float(v) for v in skin), -1, cv2.LINE_AA)
            for _ in range(int(rng.integers(0, 4))):
                p = (int(c[0] + rng.normal(0, axes[0] * 0.5)), int(c[1] + rng.normal(0, axes[1] * 0.5)))
                cv2.circle(image, p, int(rng.integers(2, 8)), tuple(float(v) for v in skin * 0.3), -1, cv2.LINE_AA)
    if config.degrade:
        image, _ = degrade(image, rng)
    return np.ascontiguousarray(image)


def _render_chunk(args: tuple[int, list[int], SyntheticConfig]) -> list[Sample]:
    seed, indices, config = args
    cv2.setNumThreads(1)
    return [render_sample(seed, i, config) for i in indices]


class SyntheticFaces:
    """A deterministic, indexable set of synthetic face crops (see module docs for the labels)."""

    def __init__(self, num_samples: int, seed: int = 0, config: SyntheticConfig | None = None) -> None:
        if num_samples < 0:
            raise UserError(f"synthetic data: num_samples must be >= 0, got {num_samples}")
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.config = config or SyntheticConfig()

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> Sample:
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} synthetic samples")
        return render_sample(self.seed, index % self.num_samples, self.config)

    def cache_key(self) -> str:
        payload = json.dumps({"seed": self.seed, "num_samples": self.num_samples,
                              "config": dataclasses.asdict(self.config), "version": GENERATOR_VERSION},
                             sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def cached(self, cache_dir: str | os.PathLike, workers: int | None = None,
               progress: bool = True) -> SyntheticArrays:
        """Render every sample once into `cache_dir/synthetic-<key>.npz` (atomic write); then load it."""
        cache_dir = Path(cache_dir)
        path = cache_dir / f"synthetic-{self.cache_key()}.npz"
        if path.exists():
            try:
                with np.load(path) as data:
                    arrays = SyntheticArrays(**{f.name: data[f.name] for f in dataclasses.fields(SyntheticArrays)})
            except (OSError, ValueError, KeyError) as exc:
                raise UserError(f"{path}: unreadable synthetic cache ({exc}); delete it to re-render") from exc
            log.info("loaded %d synthetic samples from %s", len(arrays), path)
            return arrays
        cache_dir.mkdir(parents=True, exist_ok=True)
        arrays = self._render_all(workers, progress)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **{f.name: getattr(arrays, f.name) for f in dataclasses.fields(SyntheticArrays)})
        os.replace(tmp, path)
        log.info("wrote %d synthetic samples to %s", len(arrays), path)
        return arrays

    def _render_all(self, workers: int | None, progress: bool) -> SyntheticArrays:
        from tqdm import tqdm

        n, cfg = self.num_samples, self.config
        s, p = cfg.size, cfg.num_points
        images = np.zeros((n, s, s, 3), np.uint8)
        landmarks = np.zeros((n, p, 2), np.float32)
        pose = np.zeros((n, 3), np.float32)
        face_score = np.zeros(n, np.float32)
        face_box = np.zeros((n, 4), np.float32)
        workers = workers or min(2, os.cpu_count() or 1)
        chunk = 64
        jobs = [(self.seed, list(range(a, min(a + chunk, n))), cfg) for a in range(0, n, chunk)]
        start = time.perf_counter()
        bar = tqdm(total=n, desc="rendering synthetic faces", unit="img", disable=not progress)
        if n < 4 * chunk:
            workers = 1  # a worker pool costs more than it saves on a few hundred samples
        # "spawn", not "fork": forking a process that already runs torch/OpenMP threads can deadlock.
        pool = get_context("spawn").Pool(workers) if workers > 1 else None
        try:
            results = pool.imap(_render_chunk, jobs) if pool else map(_render_chunk, jobs)
            for (_, indices, _), samples in zip(jobs, results):
                for i, smp in zip(indices, samples):
                    images[i] = smp.image
                    face_score[i] = smp.face_score
                    if smp.face_score:
                        landmarks[i], pose[i], face_box[i] = smp.landmarks, smp.pose, smp.face_box
                bar.update(len(indices))
        finally:
            bar.close()
            if pool:
                pool.close()
                pool.join()
        log.info("rendered %d synthetic samples in %.1f s with %d worker(s)", n, time.perf_counter() - start, workers)
        return SyntheticArrays(images, landmarks, pose, face_score, face_box, face_score > 0.5)
