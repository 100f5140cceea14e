"""Drawing labels and predictions on RGB uint8 images (OpenCV; no torch).

Pose axes follow the labels' convention (data/sample.py, 3DDFA): the nose axis of a face with
yaw > 0 points to the image left, pitch > 0 points it up, roll > 0 tilts the head clockwise.
"""

from __future__ import annotations

import cv2
import numpy as np

from atpn_edge.data.schemes import SCHEMES

GREEN = (0, 255, 0)
RED = (255, 0, 0)
BLUE = (0, 90, 255)
YELLOW = (255, 220, 0)


def _pt(p) -> tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))


def draw_landmarks(image: np.ndarray, points_px: np.ndarray, color=GREEN, radius: int = 1,
                   connect: bool = False) -> np.ndarray:
    """Draw (P, 2) pixel points in place (and return the image); `connect` links each facial part."""
    points_px = np.asarray(points_px, np.float64)
    if connect and points_px.shape[0] in SCHEMES:
        scheme = SCHEMES[points_px.shape[0]]
        for name, idx in scheme.parts.items():
            if len(idx) < 2:
                continue
            pts = np.round(points_px[list(idx)] * 16).astype(np.int32)
            cv2.polylines(image, [pts], name in scheme.closed_parts, color, 1, cv2.LINE_AA, 4)
    for p in points_px:
        if np.all(np.isfinite(p)):
            cv2.circle(image, _pt(p), radius, color, -1, cv2.LINE_AA)
    return image


def pose_axes_endpoints(yaw: float, pitch: float, roll: float, center_px, size_px: float) -> np.ndarray:
    """(3, 2) image end points of the model x (face's right-to-left... image right), y (up), z (nose) axes."""
    from atpn_edge.data.synthetic.geometry import angles_to_matrix

    r = angles_to_matrix(yaw, pitch, roll)
    axes = r @ np.eye(3)  # columns: rotated x, y, z axes in camera frame (y up)
    c = np.asarray(center_px, np.float64)
    return np.stack([c + size_px * np.array([axes[0, k], -axes[1, k]]) for k in range(3)])


def draw_pose_axes(image: np.ndarray, yaw: float, pitch: float, roll: float, center_px,
                   size_px: float) -> np.ndarray:
    """Draw the head's x (red), y (green) and z/nose (blue) axes from `center_px`, in place."""
    ends = pose_axes_endpoints(yaw, pitch, roll, center_px, size_px)
    thickness = max(1, int(size_px / 40))
    for end, colour in zip(ends, (RED, GREEN, BLUE)):
        cv2.line(image, _pt(center_px), _pt(end), colour, thickness, cv2.LINE_AA)
    return image


def draw_box(image: np.ndarray, box, color=YELLOW, label: str | None = None) -> np.ndarray:
    """Draw an (x1, y1, x2, y2) pixel box and an optional text label above it, in place."""
    x1, y1, x2, y2 = (float(v) for v in box)
    cv2.rectangle(image, _pt((x1, y1)), _pt((x2, y2)), color, 1, cv2.LINE_AA)
    if label:
        scale = max(0.3, min(image.shape[:2]) / 400)
        cv2.putText(image, label, _pt((x1, max(y1 - 3, 8))), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)
    return image


def image_grid(images, cols: int, pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile equally sized (H, W, 3) uint8 images row by row into one image."""
    images = [np.asarray(im) for im in images]
    if not images:
        raise ValueError("image_grid needs at least one image")
    h, w = images[0].shape[:2]
    if any(im.shape[:2] != (h, w) for im in images):
        raise ValueError("image_grid needs images of equal size")
    cols = max(1, min(cols, len(images)))
    rows = (len(images) + cols - 1) // cols
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), pad_value, np.uint8)
    for k, im in enumerate(images):
        r, c = divmod(k, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y : y + h, x : x + w] = im if im.ndim == 3 else im[..., None]
    return grid
