"""An offline face detector: OpenCV's Haar cascade, shipped inside the opencv-python wheel.

Haar boxes differ from the tight landmark boxes the models are trained to crop from: they are
square, reach up to the forehead and, with 98 WFLW points (jaw contour included), are wider
than the landmark extent. `HAAR_TO_LANDMARK_BOX` maps one to the other. Measured on 487
synthetic 640x480 renders (42 sequences, 187 matched detections, yaw within +-30): landmark
centre - Haar centre = (-0.03, +0.12) x Haar width (median; x is yaw-dependent, 10-90 %
-0.09..+0.08, so the calibration keeps 0), longer landmark side = 0.76 x Haar width (10-90 %
0.70..0.85). tests/test_detector.py checks the calibrated box against the landmark box.

Recall on those renders: about 50 % of frames with minNeighbors=5, 65 % with 3 (no false
positives in 60 frames), 86 ms per 640x480 frame on a shared 2-core machine. Good enough to
start and restart a track (a miss costs a frame or two); weak as a per-frame detector.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import cv2
import numpy as np

log = logging.getLogger(__name__)

# Haar box (x, y, w, h) -> landmark box: centre shifted by (dx, dy) * w, side scaled by `scale`.
HAAR_TO_LANDMARK_BOX = {"dx": 0.0, "dy": 0.12, "scale": 0.76}


@dataclass(frozen=True)
class DetectorConfig:
    scale_factor: float = 1.1
    min_neighbors: int = 3
    min_size: int = 40  # pixels


@functools.lru_cache(maxsize=1)
def _cascade() -> cv2.CascadeClassifier:
    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"OpenCV's Haar cascade could not be loaded from {path}")
    return cascade


def detect_faces(image_rgb: np.ndarray, config: DetectorConfig = DetectorConfig()) -> list[np.ndarray]:
    """Face boxes (x1, y1, x2, y2) in pixels, largest first, calibrated to landmark-extent boxes."""
    gray = cv2.equalizeHist(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY))
    found = _cascade().detectMultiScale(
        gray, scaleFactor=config.scale_factor, minNeighbors=config.min_neighbors,
        minSize=(config.min_size, config.min_size),
    )
    boxes = [haar_to_landmark_box(np.asarray(b, np.float64)) for b in (found if len(found) else [])]
    return sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))


def haar_to_landmark_box(xywh: np.ndarray) -> np.ndarray:
    x, y, w, h = xywh
    c = HAAR_TO_LANDMARK_BOX
    cx, cy = x + w / 2 + c["dx"] * w, y + h / 2 + c["dy"] * w
    half = w * c["scale"] / 2
    return np.array([cx - half, cy - half, cx + half, cy + half])
