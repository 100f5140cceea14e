"""Landmark schemes: WFLW's 98 points and the 68-point ibug/300W scheme.

Index facts every part of the project shares: the eye corners that normalise NME, the mirror
maps used by horizontal flips, the 98 -> 68 subset (so a 98-point model can be supervised and
scored on 68-point data), and the facial parts (for drawing and per-part heatmaps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _mirror(n: int, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Index map m such that flipped[i] = original[m[i]] after mirroring the x coordinates."""
    m = np.arange(n)
    for a, b in pairs:
        m[a], m[b] = b, a
    return m


@dataclass(frozen=True)
class LandmarkScheme:
    name: str
    num_points: int
    eye_corners: tuple[int, int]  # outer corners, for inter-ocular NME
    mirror: np.ndarray  # (num_points,) int
    parts: dict[str, tuple[int, ...]]  # facial part -> point indices, in drawing order
    closed_parts: tuple[str, ...]  # parts drawn as closed polygons


_WFLW_PAIRS = (
    [(i, 32 - i) for i in range(16)]
    + [(33, 46), (34, 45), (35, 44), (36, 43), (37, 42), (38, 50), (39, 49), (40, 48), (41, 47)]
    + [(60, 72), (61, 71), (62, 70), (63, 69), (64, 68), (65, 75), (66, 74), (67, 73)]
    + [(55, 59), (56, 58)]
    + [(76, 82), (77, 81), (78, 80), (83, 87), (84, 86), (88, 92), (89, 91), (93, 95)]
    + [(96, 97)]
)

_IBUG_PAIRS = (
    [(i, 16 - i) for i in range(8)]
    + [(17, 26), (18, 25), (19, 24), (20, 23), (21, 22)]
    + [(31, 35), (32, 34)]
    + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)]
)

WFLW98 = LandmarkScheme(
    name="wflw98",
    num_points=98,
    eye_corners=(60, 72),
    mirror=_mirror(98, _WFLW_PAIRS),
    parts={
        "contour": tuple(range(0, 33)),
        "left_brow": tuple(range(33, 42)),
        "right_brow": tuple(range(42, 51)),
        "nose_bridge": tuple(range(51, 55)),
        "nose_base": tuple(range(55, 60)),
        "left_eye": tuple(range(60, 68)),
        "right_eye": tuple(range(68, 76)),
        "outer_lips": tuple(range(76, 88)),
        "inner_lips": tuple(range(88, 96)),
        "pupils": (96, 97),
    },
    closed_parts=("left_brow", "right_brow", "left_eye", "right_eye", "outer_lips", "inner_lips"),
)

IBUG68 = LandmarkScheme(
    name="ibug68",
    num_points=68,
    eye_corners=(36, 45),
    mirror=_mirror(68, _IBUG_PAIRS),
    parts={
        "contour": tuple(range(0, 17)),
        "left_brow": tuple(range(17, 22)),
        "right_brow": tuple(range(22, 27)),
        "nose_bridge": tuple(range(27, 31)),
        "nose_base": tuple(range(31, 36)),
        "left_eye": tuple(range(36, 42)),
        "right_eye": tuple(range(42, 48)),
        "outer_lips": tuple(range(48, 60)),
        "inner_lips": tuple(range(60, 68)),
    },
    closed_parts=("left_eye", "right_eye", "outer_lips", "inner_lips"),
)

# WFLW index of each 68-point landmark (the usual WFLW -> 300W correspondence): every other
# contour point, the upper brow arcs, the whole nose, six of the eight eye points, all of the mouth.
WFLW98_TO_IBUG68 = np.array(
    list(range(0, 33, 2))
    + [33, 34, 35, 36, 37, 42, 43, 44, 45, 46]
    + list(range(51, 60))
    + [60, 61, 63, 64, 65, 67, 68, 69, 71, 72, 73, 75]
    + list(range(76, 96)),
    dtype=np.int64,
)
assert WFLW98_TO_IBUG68.shape == (68,)

SCHEMES = {98: WFLW98, 68: IBUG68}


def scheme_for(num_points: int) -> LandmarkScheme:
    if num_points not in SCHEMES:
        raise ValueError(f"no landmark scheme with {num_points} points (known: 98, 68)")
    return SCHEMES[num_points]


def to_68(landmarks: np.ndarray) -> np.ndarray:
    """(..., 98 or 68, 2) -> (..., 68, 2)."""
    if landmarks.shape[-2] == 68:
        return landmarks
    if landmarks.shape[-2] == 98:
        return landmarks[..., WFLW98_TO_IBUG68, :]
    raise ValueError(f"cannot map {landmarks.shape[-2]} landmarks to the 68-point scheme")


def flip_landmarks(landmarks: np.ndarray, width: float) -> np.ndarray:
    """Mirror (P, 2) pixel landmarks horizontally in an image `width` wide and re-index them.

    Pixel-centre convention: x -> width - 1 - x for pixel coordinates; for coordinates
    normalised to [0, 1] pass width=2.0 is wrong, use `flip_normalised` instead.
    """
    scheme = scheme_for(landmarks.shape[0])
    out = landmarks[scheme.mirror].copy()
    out[:, 0] = width - 1 - out[:, 0]
    return out


def flip_normalised(landmarks: np.ndarray) -> np.ndarray:
    """Mirror (P, 2) landmarks in normalised [0, 1] crop coordinates and re-index them."""
    scheme = scheme_for(landmarks.shape[0])
    out = landmarks[scheme.mirror].copy()
    out[:, 0] = 1.0 - out[:, 0]
    return out
