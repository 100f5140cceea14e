"""Face crops: one protocol for training, evaluation, predict and track.

A crop is a square window centred on a face box, `scale` times the box's longer side, resampled
to `size` x `size` with an affine warp (so it may extend past the image; the outside is filled
by replicating the border). The affine maps original-image pixels to crop pixels; landmarks are
carried to the crop with it and back with its inverse.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

DEFAULT_CROP_SCALE = 1.25


@dataclass(frozen=True)
class Crop:
    image: np.ndarray  # (size, size, 3) uint8
    matrix: np.ndarray  # (2, 3) float64: original pixel -> crop pixel

    @property
    def size(self) -> int:
        return self.image.shape[0]

    def to_crop_normalised(self, points: np.ndarray) -> np.ndarray:
        """(P, 2) original-image pixels -> normalised crop coordinates."""
        return ((apply_affine(self.matrix, points) + 0.5) / self.size).astype(np.float32)

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """(P, 2) normalised crop coordinates -> original-image pixels."""
        inverse = cv2.invertAffineTransform(self.matrix)
        return apply_affine(inverse, np.asarray(points, np.float64) * self.size - 0.5)

    def box_to_image(self, box: np.ndarray) -> np.ndarray:
        """(4,) normalised crop box x1, y1, x2, y2 -> original-image pixel box."""
        corners = self.to_image(np.array([[box[0], box[1]], [box[2], box[3]]]))
        return corners.reshape(4)


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def crop_matrix(
    box: np.ndarray,
    size: int,
    scale: float = DEFAULT_CROP_SCALE,
    shift: tuple[float, float] = (0.0, 0.0),
    rotation_deg: float = 0.0,
    flip: bool = False,
) -> np.ndarray:
    """Affine from image pixels to a `size` crop around `box` (x1, y1, x2, y2).

    `shift` moves the centre by a fraction of the window side; `rotation_deg` rotates the
    content counter-clockwise about the window centre; `flip` mirrors it horizontally.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1) * scale
    if not np.isfinite(side) or side <= 1e-6:
        raise ValueError(f"degenerate face box {list(box)}")
    cx = (x1 + x2) / 2 + shift[0] * side
    cy = (y1 + y2) / 2 + shift[1] * side
    s = size / side
    angle = np.deg2rad(rotation_deg)
    c, n = np.cos(angle) * s, np.sin(angle) * s
    # crop = R * S * (p - centre) + size/2, in pixel-centre coordinates.
    half = (size - 1) / 2
    m = np.array([[c, n, half - c * cx - n * cy], [-n, c, half + n * cx - c * cy]])
    if flip:
        m = np.array([[-1.0, 0.0, size - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([m, [0, 0, 1]])
    return m


def crop_face(image: np.ndarray, box: np.ndarray, size: int = 112, **kwargs) -> Crop:
    matrix = crop_matrix(box, size, **kwargs)
    out = cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return Crop(out, matrix)


def box_from_landmarks(points: np.ndarray) -> np.ndarray:
    """Tight box (x1, y1, x2, y2) around (P, 2) points."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    return np.array([lo[0], lo[1], hi[0], hi[1]], np.float64)
