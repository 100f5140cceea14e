"""Synthetic video: one face moving smoothly through a scene, for tracking.

Head position, scale and yaw/pitch/roll follow smooth random walks (integrated noise, bounded);
optional short events make the face unavailable: a full occluder slides over it, or the head
leaves the frame for a while, so a tracker can lose it and must re-detect.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from atpn_edge.data.crop import box_from_landmarks
from atpn_edge.data.schemes import WFLW98_TO_IBUG68
from atpn_edge.data.synthetic.render import View, render_face, sample_face_params
from atpn_edge.data.synthetic.scene import background, hair_clutter
from atpn_edge.errors import UserError


@dataclass(frozen=True)
class SyntheticSequence:
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    landmarks: np.ndarray  # (T, P, 2) float32 full-frame pixel coordinates (pixel centres at integers)
    pose: np.ndarray  # (T, 3) float32 yaw, pitch, roll in degrees
    face_box: np.ndarray  # (T, 4) float32 landmark box x1, y1, x2, y2 in pixels
    face_visible: np.ndarray  # (T,) bool: False while the face is fully occluded or out of frame

    def __len__(self) -> int:
        return len(self.frames)


def _smooth_walk(rng: np.random.Generator, n: int, sigma: float, smooth: float, lo: float, hi: float,
                 start: float) -> np.ndarray:
    """A bounded, smooth random walk: velocity is low-pass filtered noise, reflected at the bounds."""
    out = np.empty(n)
    x, v = start, 0.0
    for t in range(n):
        v = smooth * v + (1 - smooth) * rng.normal(0, sigma)
        x += v
        if x < lo or x > hi:
            v = -v
            x = float(np.clip(x, lo, hi))
        out[t] = x
    return out


def render_sequence(seed: int, num_frames: int = 150, frame_size: tuple[int, int] = (480, 640),
                    num_points: int = 98, events: bool = True) -> SyntheticSequence:
    """Render a deterministic video of one synthetic face; `frame_size` is (height, width)."""
    if num_points not in (98, 68):
        raise UserError(f"synthetic sequence: num_points must be 98 or 68, got {num_points}")
    if num_frames < 1:
        raise UserError(f"synthetic sequence: num_frames must be >= 1, got {num_frames}")
    h, w = frame_size
    rng = np.random.default_rng([seed, 0x5E0])
    scene = background(rng, h + 64, w + 64)
    hair_clutter(scene, rng, int(rng.integers(0, 25)))
    params = sample_face_params(rng)
    params.glasses = 0  # glasses would need their own per-frame randomness; keep them off in video
    n = num_frames
    base_scale = min(h, w) * rng.uniform(0.22, 0.4)
    xs = _smooth_walk(rng, n, w * 0.004, 0.92, w * 0.25, w * 0.75, w * rng.uniform(0.35, 0.65))
    ys = _smooth_walk(rng, n, h * 0.004, 0.92, h * 0.3, h * 0.7, h * rng.uniform(0.4, 0.6))
    scales = base_scale * np.exp(_smooth_walk(rng, n, 0.006, 0.9, -0.3, 0.3, 0.0))
    yaw = _smooth_walk(rng, n, 1.2, 0.9, -60, 60, rng.uniform(-20, 20))
    pitch = _smooth_walk(rng, n, 0.6, 0.9, -25, 25, rng.uniform(-10, 10))
    roll = _smooth_walk(rng, n, 0.5, 0.9, -20, 20, rng.uniform(-8, 8))
    pan = _smooth_walk(rng, n, 0.3, 0.95, 0, 64, 32), _smooth_walk(rng, n, 0.3, 0.95, 0, 64, 32)
    light = np.array([rng.normal(0, 0.5), rng.normal(0.3, 0.3), 1.0])
    light /= np.linalg.norm(light)
    ambient, diffuse, distance = rng.uniform(0.3, 0.55), rng.uniform(0.5, 0.8), rng.uniform(4, 12)
    visible = np.ones(n, bool)
    occluder = np.zeros(n, bool)
    if events and n >= 40:
        for _ in range(int(rng.integers(1, 3))):
            start, length = int(rng.integers(10, n - 20)), int(rng.integers(5, 15))
            if rng.random() < 0.5:
                occluder[start : start + length] = True
            else:  # exit: the head moves off-frame to the nearest side and comes back
                side = -0.6 * w if xs[start] < w / 2 else 1.6 * w
                ramp = np.sin(np.linspace(0, np.pi, length)) ** 0.5
                xs[start : start + length] = xs[start : start + length] * (1 - ramp) + side * ramp
    frames = np.empty((n, h, w, 3), np.uint8)
    landmarks = np.empty((n, num_points, 2), np.float32)
    for t in range(n):
        ox, oy = int(pan[0][t]), int(pan[1][t])
        frame = np.ascontiguousarray(scene[oy : oy + h, ox : ox + w])
        view = View(float(yaw[t]), float(pitch[t]), float(roll[t]), (float(xs[t]), float(ys[t])),
                    float(scales[t]), float(distance), tuple(light), float(ambient), float(diffuse))
        lm = render_face(frame, params, view, np.random.default_rng([seed, t]))
        box = box_from_landmarks(lm)
        inside = (box[0] >= 0) & (box[1] >= 0) & (box[2] < w) & (box[3] < h)
        if occluder[t]:
            pad = (box[2] - box[0]) * 0.3
            cv2.rectangle(frame, (int(box[0] - pad), int(box[1] - pad)), (int(box[2] + pad), int(box[3] + pad)),
                          tuple(float(v) for v in rng.uniform(0, 255, 3)), -1)
            visible[t] = False
        elif not inside:
            visible[t] = False
        frames[t] = frame
        landmarks[t] = lm if num_points == 98 else lm[WFLW98_TO_IBUG68]
    boxes = np.stack([box_from_landmarks(p) for p in landmarks]).astype(np.float32)
    pose = np.stack([yaw, pitch, roll], axis=1).astype(np.float32)
    return SyntheticSequence(frames, landmarks, pose, boxes, visible)
