"""An offline face detector: OpenCV's Haar cascade, shipped inside the opencv-python wheel.

Haar boxes are tighter than the landmark-extent boxes the models are trained to crop from
(they stop at the brows and the lower lip). `HAAR_TO_LANDMARK_BOX` maps one to the other; it was
measured on synthetic renders (see tests/test_detector.py) so that the crop a detection produces
matches the training crops.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import cv2
import numpy as np

log = logging.getLogger(__name__)

# Haar box (x, y, w, h) -> landmark box: centre shifted by (dx, dy) * w, side scaled by `scale`.
HAAR_TO_LANDMARK_BOX = {"dx": 0.0, "dy": 0.08, "scale": 1.05}


@dataclass(frozen=True)
class DetectorConfig:
    scale_factor: float = 1.1
    min_neighbors: int = 5
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
