"""A mean-face landmark template in normalised crop coordinates, to initialise landmark heads.

Drawn from simple curves (an elliptic jaw line, arched brows, elliptic eyes and lips) for a
frontal face filling a crop made with the project's crop protocol (1.25 x the face box, so
the face spans roughly 0.12..0.88). It is only a starting point for the regression bias: the
trainer may overwrite it with the training set's mean shape (`set_landmark_template`).
"""

from __future__ import annotations

import numpy as np

from atpn_edge.data.schemes import WFLW98, WFLW98_TO_IBUG68


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, stop: float, n: int) -> np.ndarray:
    """n points on an ellipse from angle `start` to `stop` (radians; y grows downwards, so a
    positive sine is *above* the centre)."""
    angles = np.linspace(start, stop, n)
    return np.stack([cx + rx * np.cos(angles), cy - ry * np.sin(angles)], axis=1)


def _template98() -> np.ndarray:
    points = np.zeros((98, 2))
    # contour 0..32: from the image-left temple, under the chin, to the image-right temple
    points[0:33] = _arc(0.5, 0.36, 0.37, -0.52, np.pi, 0.0, 33)
    # left (image-left) brow: upper arc outer -> inner (33..37), lower arc inner -> outer (38..41)
    t_upper = np.linspace(0.0, 1.0, 5)
    points[33:38] = np.stack([0.17 + 0.27 * t_upper, 0.31 - 0.035 * np.sin(np.pi * t_upper)], 1)
    t_lower = np.linspace(0.9, 0.15, 4)
    points[38:42] = np.stack([0.17 + 0.27 * t_lower, 0.325 - 0.025 * np.sin(np.pi * t_lower)], 1)
    # right brow: the mirror image of the left one (flipped[i] = original[mirror[i]], x -> 1 - x)
    for i in range(42, 51):
        j = WFLW98.mirror[i]
        points[i] = (1.0 - points[j, 0], points[j, 1])
    points[51:55] = np.stack([np.full(4, 0.5), np.linspace(0.40, 0.56, 4)], 1)  # nose bridge
    points[55:60] = _arc(0.5, 0.58, 0.08, 0.035, np.pi + 0.5, 2 * np.pi - 0.5, 5)  # nose base
    # eyes: outer corner, over the top, inner corner, back along the bottom (8 points each)
    eye_angles = (np.pi, -np.pi)  # full turn starting at the left end
    points[60:68] = _arc(0.32, 0.42, 0.09, 0.035, *eye_angles, 9)[:8]
    for i in range(68, 76):  # right eye: mirror of the left one
        j = WFLW98.mirror[i]
        points[i] = (1.0 - points[j, 0], points[j, 1])
    points[76:88] = _arc(0.5, 0.75, 0.14, 0.045, np.pi, -np.pi, 13)[:12]  # outer lips
    points[88:96] = _arc(0.5, 0.75, 0.10, 0.015, np.pi, -np.pi, 9)[:8]  # inner lips
    points[96] = (0.32, 0.42)  # pupils
    points[97] = (0.68, 0.42)
    return points.astype(np.float32)


def landmark_template(num_landmarks: int) -> np.ndarray:
    """(P, 2) float32 mean-face template in normalised crop coordinates, P = 98 or 68."""
    template = _template98()
    if num_landmarks == 98:
        return template
    if num_landmarks == 68:
        return template[WFLW98_TO_IBUG68].copy()
    raise ValueError(f"no landmark template for {num_landmarks} points (known: 98, 68)")
