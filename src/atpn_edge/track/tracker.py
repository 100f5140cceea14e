"""The tracking loop: detect once, then follow the face with ATPN's own output.

Per frame:
1. If there is no track, run the face detector; no face -> the frame has no prediction.
2. Crop 1.25x the tight landmark box of the previous frame (or the detection), as in training,
   and run the model on the 112x112 crop.
3. The face score says whether the crop still holds a face. Below `score_threshold` the track is
   lost: on a tracked frame the detector runs again on the same frame and the model on its crop;
   on a fresh detection the frame has no prediction (the detection was not a face, or not one the
   model recognises).
4. The next crop follows the landmarks (`follow="landmarks"`, the training-crop convention) or the
   predicted face box mapped back to the image (`follow="face_box"`).
5. Optional One Euro smoothing of landmarks and pose (reset at every new detection); the next crop
   always comes from the unsmoothed landmarks, so smoothing adds no lag to the tracking itself.

`DetectEveryFrame` is the baseline: detector + model on every frame, same crop, same threshold.
Both take a `predict_fn` (uint8 crops -> named outputs, see runtime/base.py) and a `detect_fn`
(RGB frame -> boxes, largest first), so the loop logic runs without a network in tests. Stage
times (detect, crop, infer, post) are measured with time.perf_counter; drawing and decoding are
not part of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from atpn_edge.data.crop import DEFAULT_CROP_SCALE, box_from_landmarks, crop_face
from atpn_edge.track.smoothing import OneEuroConfig, OneEuroFilter

PredictFn = Callable[[np.ndarray], dict]
DetectFn = Callable[[np.ndarray], list]
STAGES = ("detect", "crop", "infer", "post")


@dataclass(frozen=True)
class TrackerConfig:
    score_threshold: float = 0.5  # face_score below this: the track is lost
    follow: str = "landmarks"  # next crop from "landmarks" or the predicted "face_box"
    crop_scale: float = DEFAULT_CROP_SCALE
    input_size: int = 112
    redetect_same_frame: bool = True  # on a lost track, detect again on the frame that lost it
    min_face_px: float = 12.0  # a tracked box smaller than this (pixels) counts as lost
    smooth: bool = True
    # landmark speed is measured in face sides per second (value_scale = box side)
    smoothing: OneEuroConfig = field(default_factory=lambda: OneEuroConfig(min_cutoff=1.5, beta=1.0))
    pose_smoothing: OneEuroConfig = field(default_factory=lambda: OneEuroConfig(min_cutoff=1.0, beta=0.02))
    fps: float = 30.0  # timestamps for the smoothing filters when the source gives none

    def __post_init__(self) -> None:
        if self.follow not in ("landmarks", "face_box"):
            raise ValueError(f"TrackerConfig.follow must be 'landmarks' or 'face_box', got {self.follow!r}")
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"TrackerConfig.score_threshold must be in [0, 1], got {self.score_threshold}")
        if self.fps <= 0:
            raise ValueError(f"TrackerConfig.fps must be > 0, got {self.fps}")


@dataclass
class FrameResult:
    index: int
    landmarks: np.ndarray | None = None  # (P, 2) image pixels (smoothed when smoothing is on)
    pose: np.ndarray | None = None  # (3,) yaw, pitch, roll degrees (smoothed when on)
    score: float | None = None  # face score of the crop that produced the output
    box: np.ndarray | None = None  # (4,) tight landmark box in pixels (x1, y1, x2, y2)
    detector_ran: bool = False
    detector_found: int = 0  # boxes the detector returned (0 when it did not run or found none)
    lost: bool = False  # the track was lost on this frame (score fell / box degenerate)
    ms: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    @property
    def has_face(self) -> bool:
        return self.landmarks is not None

    @property
    def total_ms(self) -> float:
        return float(sum(self.ms.values()))

    def to_json(self) -> dict:
        return {
            "frame": self.index,
            "face": self.has_face,
            "landmarks": None if self.landmarks is None else np.round(self.landmarks, 2).tolist(),
            "pose": None if self.pose is None else dict(zip(("yaw", "pitch", "roll"), np.round(self.pose, 3).tolist())),
            "score": None if self.score is None else round(float(self.score), 5),
            "box": None if self.box is None else np.round(self.box, 2).tolist(),
            "detector_ran": self.detector_ran,
            "detector_found": self.detector_found,
            "lost": self.lost,
            "ms": {k: round(v, 4) for k, v in self.ms.items()},
            "ms_total": round(self.total_ms, 4),
        }


def _first(outputs: dict, name: str):
    value = outputs.get(name)
    return None if value is None else np.asarray(value)[0]


class _Model:
    """Runs predict_fn on one crop and maps its outputs back to the image, timing each stage."""

    def __init__(self, predict_fn: PredictFn, config: TrackerConfig) -> None:
        self.predict_fn = predict_fn
        self.config = config

    def run(self, frame: np.ndarray, box: np.ndarray, ms: dict) -> tuple[np.ndarray, np.ndarray | None, float, np.ndarray]:
        """-> (landmarks px, pose or None, face score (1.0 if the model has none), box to follow px)."""
        c = self.config
        t0 = time.perf_counter()
        crop = crop_face(frame, box, c.input_size, scale=c.crop_scale)
        t1 = time.perf_counter()
        outputs = self.predict_fn(crop.image[None])
        t2 = time.perf_counter()
        landmarks = crop.to_image(_first(outputs, "landmarks"))
        pose = _first(outputs, "pose")
        score = _first(outputs, "face_score")
        face_box = _first(outputs, "face_box")
        if c.follow == "face_box" and face_box is not None:
            next_box = crop.box_to_image(face_box)
        else:
            next_box = box_from_landmarks(landmarks)
        t3 = time.perf_counter()
        ms["crop"] += (t1 - t0) * 1e3
        ms["infer"] += (t2 - t1) * 1e3
        ms["post"] += (t3 - t2) * 1e3
        return landmarks, None if pose is None else np.asarray(pose, np.float64), \
            1.0 if score is None else float(score), next_box


def _box_ok(box: np.ndarray, frame_shape: tuple, min_px: float) -> bool:
    """A usable box: finite, at least `min_px` wide and high, overlapping the frame."""
    if not np.all(np.isfinite(box)):
        return False
    x1, y1, x2, y2 = box
    h, w = frame_shape[:2]
    return (x2 - x1) >= min_px and (y2 - y1) >= min_px and x2 > 0 and y2 > 0 and x1 < w and y1 < h


class Tracker:
    """Stateful: `step(frame)` per frame in order; `reset()` drops the track."""

    def __init__(self, predict_fn: PredictFn, detect_fn: DetectFn, config: TrackerConfig = TrackerConfig()) -> None:
        self.config = config
        self.detect_fn = detect_fn
        self._model = _Model(predict_fn, config)
        self._landmark_filter = OneEuroFilter(config.smoothing)
        self._pose_filter = OneEuroFilter(config.pose_smoothing)
        self._box: np.ndarray | None = None  # the box the next frame is cropped from
        self._index = 0

    @property
    def tracking(self) -> bool:
        return self._box is not None

    def reset(self) -> None:
        self._box = None
        self._landmark_filter.reset()
        self._pose_filter.reset()

    def _detect(self, frame: np.ndarray, result: FrameResult) -> np.ndarray | None:
        t0 = time.perf_counter()
        boxes = self.detect_fn(frame)
        result.ms["detect"] += (time.perf_counter() - t0) * 1e3
        result.detector_ran = True
        result.detector_found = len(boxes)
        return np.asarray(boxes[0], np.float64) if len(boxes) else None

    def step(self, frame: np.ndarray, timestamp: float | None = None) -> FrameResult:
        c = self.config
        result = FrameResult(index=self._index)
        self._index += 1
        timestamp = result.index / c.fps if timestamp is None else timestamp

        outcome = None
        if self._box is not None:
            outcome = self._model.run(frame, self._box, result.ms)
            if outcome[2] < c.score_threshold or not _box_ok(outcome[3], frame.shape, c.min_face_px):
                result.lost, outcome = True, None
                self.reset()
                if not c.redetect_same_frame:
                    return result
        if outcome is None:  # no track (first frame, or lost): detect
            self.reset()
            box = self._detect(frame, result)
            if box is None:
                return result
            outcome = self._model.run(frame, box, result.ms)
            if outcome[2] < c.score_threshold or not _box_ok(outcome[3], frame.shape, c.min_face_px):
                result.score = outcome[2]  # keep the rejected score: it explains the missing face
                return result

        t0 = time.perf_counter()
        landmarks, pose, score, next_box = outcome
        self._box = next_box
        if c.smooth:
            side = float(max(next_box[2] - next_box[0], next_box[3] - next_box[1]))
            landmarks = self._landmark_filter(landmarks, timestamp, value_scale=side)
            if pose is not None:
                pose = self._pose_filter(pose, timestamp)
        result.landmarks, result.pose, result.score = landmarks, pose, score
        result.box = box_from_landmarks(landmarks)
        result.ms["post"] += (time.perf_counter() - t0) * 1e3
        return result


class DetectEveryFrame:
    """The baseline: the detector and the model on every frame (no state, no smoothing)."""

    def __init__(self, predict_fn: PredictFn, detect_fn: DetectFn, config: TrackerConfig = TrackerConfig()) -> None:
        self.config = config
        self.detect_fn = detect_fn
        self._model = _Model(predict_fn, config)
        self._index = 0

    def step(self, frame: np.ndarray, timestamp: float | None = None) -> FrameResult:
        result = FrameResult(index=self._index, detector_ran=True)
        self._index += 1
        t0 = time.perf_counter()
        boxes = self.detect_fn(frame)
        result.ms["detect"] = (time.perf_counter() - t0) * 1e3
        result.detector_found = len(boxes)
        if not len(boxes):
            return result
        landmarks, pose, score, _ = self._model.run(frame, np.asarray(boxes[0], np.float64), result.ms)
        result.score = score
        if score < self.config.score_threshold:
            return result
        result.landmarks, result.pose = landmarks, pose
        result.box = box_from_landmarks(landmarks)
        return result
