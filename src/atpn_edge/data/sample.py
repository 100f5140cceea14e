"""The one record every data source yields, and the conventions it follows.

Conventions (shared by data sets, the synthetic generator, training, export and the runtimes):
- `image` is the model-input face crop, (S, S, 3) uint8 **RGB**, S = 112 by default.
- Coordinates inside the crop are normalised: u = (x + 0.5) / S, where x is the pixel
  coordinate with pixel centres at integers. So a horizontal flip is u -> 1 - u.
- `pose` is (yaw, pitch, roll) in degrees, in the 300W-LP / AFLW2000-3D convention
  (3DDFA's Pose_Para: R = Rz(roll) @ Ry(yaw) @ Rx(pitch) in a y-up model space);
  a horizontal flip negates yaw and roll.
- `face_box` is the face's box inside the crop, (x1, y1, x2, y2) normalised as above; the
  tracking head regresses it so the next frame's crop can follow the face.
- `face_score` is 1.0 for a face crop, 0.0 for a non-face crop.
- A label that a source does not have is None; training supervises only what is present.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Sample:
    image: np.ndarray  # (S, S, 3) uint8 RGB
    landmarks: np.ndarray | None = None  # (P, 2) float32, normalised crop coordinates
    pose: np.ndarray | None = None  # (3,) float32 yaw, pitch, roll in degrees
    face_score: float | None = None  # 1.0 face / 0.0 non-face
    face_box: np.ndarray | None = None  # (4,) float32 x1, y1, x2, y2, normalised crop coords
    attributes: dict[str, bool] = field(default_factory=dict)  # e.g. WFLW test-subset flags
    source: str = ""  # file path (or "synthetic:<seed>:<index>") for error messages and reports
