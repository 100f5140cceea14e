"""Training augmentation with OpenCV: geometric (in the crop warp) and photometric (on the crop).

Geometry is folded into the one affine of `data/crop.py`, so the image is resampled once and
landmarks, the face box and the pose follow exactly:
- landmarks go through the same affine; a flip re-indexes them with the scheme's mirror map;
- a flip negates yaw and roll;
- an in-plane rotation changes the pose exactly: the labels follow 3DDFA's Pose_Para (300W-LP,
  AFLW2000-3D): projected points are R @ v with R = RX(pitch) RY(yaw) RZ(roll) built from
  3DDFA's RotationMatrix.m (whose matrices are the transposes of the textbook ones) and image
  y pointing down. There a positive roll turns the face clockwise on screen, and
  `crop_matrix(rotation_deg=a)` turns the content counter-clockwise, so for yaw = pitch = 0
  the new roll is roll - a. Roll is the innermost rotation, so with yaw or pitch the new
  angles come from decomposing RZ(-a) @ R again (`rotate_pose_in_plane`).

Photometric jitter (colour, blur, occlusion, grayscale, JPEG) runs on the small crop, so it is
cheap; `augment_crop` applies only the cheap part to crops that are already cut (the synthetic
cache) at several thousand images per second on one core.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from atpn_edge.data.crop import DEFAULT_CROP_SCALE, apply_affine, crop_face
from atpn_edge.data.sample import Sample
from atpn_edge.data.schemes import flip_normalised, scheme_for, to_68
from atpn_edge.errors import UserError

@dataclass(frozen=True)
class AugmentConfig:
    rotation_deg: float = 30.0  # rotation drawn uniformly from +-rotation_deg
    scale_range: tuple[float, float] = (0.9, 1.1)  # multiplies the crop scale (window side)
    shift_fraction: float = 0.05  # centre shift, uniform in +-fraction of the window side, per axis
    flip_prob: float = 0.5
    brightness: float = 0.25  # pixel * U(1 - b, 1 + b)
    contrast: float = 0.25  # blend with the mean grey level, factor U(1 - c, 1 + c)
    saturation: float = 0.25  # blend with the grey image, factor U(1 - s, 1 + s)
    hue_deg: float = 8.0  # hue shift U(+-hue_deg) degrees
    blur_prob: float = 0.1
    blur_max_sigma: float = 1.5  # Gaussian sigma in crop pixels, U(0.3, max)
    occlusion_prob: float = 0.2
    occlusion_max_fraction: float = 0.4  # a rectangle with sides up to this fraction of the crop
    grayscale_prob: float = 0.05
    jpeg_prob: float = 0.1
    jpeg_quality: tuple[int, int] = (30, 90)

    def __post_init__(self) -> None:
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise UserError(f"augmentation config: scale_range must satisfy 0 < lo <= hi, got {self.scale_range}")
        for name in ("flip_prob", "blur_prob", "occlusion_prob", "grayscale_prob", "jpeg_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UserError(f"augmentation config: {name} must lie in [0, 1], got {value}")
        if not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise UserError(f"augmentation config: jpeg_quality must be 1 <= lo <= hi <= 100, got {self.jpeg_quality}")


NO_AUGMENTATION = AugmentConfig(
    rotation_deg=0.0, scale_range=(1.0, 1.0), shift_fraction=0.0, flip_prob=0.0, brightness=0.0,
    contrast=0.0, saturation=0.0, hue_deg=0.0, blur_prob=0.0, occlusion_prob=0.0,
    grayscale_prob=0.0, jpeg_prob=0.0,
)


def _face_box_in_crop(box: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The face box carried into the crop: centre through the affine, sides times its scale.

    Returns (4,) float32 x1, y1, x2, y2 normalised. Under a rotation this keeps the box's size
    (the face's scale) rather than growing to the rotated rectangle's bounds.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    centre = apply_affine(matrix, np.array([[(x1 + x2) / 2, (y1 + y2) / 2]]))[0]
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    half_w, half_h = (x2 - x1) * scale / 2, (y2 - y1) * scale / 2
    out = np.array(
        [centre[0] - half_w, centre[1] - half_h, centre[0] + half_w, centre[1] + half_h]
    )
    return ((out + 0.5) / size).astype(np.float32)


def _prepare_landmarks(landmarks: np.ndarray | None, num_points: int | None) -> np.ndarray | None:
    if landmarks is None:
        return None
    landmarks = np.asarray(landmarks, np.float64)
    if num_points == 68 and landmarks.shape[0] == 98:
        landmarks = to_68(landmarks)
    return landmarks


def _cropped_sample(
    image_rgb: np.ndarray,
    landmarks_px: np.ndarray | None,
    box: np.ndarray,
    pose: np.ndarray | None,
    size: int,
    crop_scale: float,
    shift: tuple[float, float],
    rotation_deg: float,
    flip: bool,
    with_face_box: bool,
) -> Sample:
    crop = crop_face(
        image_rgb, box, size, scale=crop_scale, shift=shift, rotation_deg=rotation_deg, flip=flip
    )
    landmarks = None
    if landmarks_px is not None:
        landmarks = crop.to_crop_normalised(landmarks_px)
        if flip:
            landmarks = landmarks[scheme_for(landmarks.shape[0]).mirror]
    new_pose = None
    if pose is not None:
        yaw, pitch, roll = rotate_pose_in_plane(pose, rotation_deg)
        if flip:
            yaw, roll = -yaw, -roll
        new_pose = np.array([yaw, pitch, roll], np.float32)
    face_box = _face_box_in_crop(box, crop.matrix, size) if with_face_box else None
    return Sample(image=crop.image, landmarks=landmarks, pose=new_pose, face_box=face_box)


def _wrap_deg(angle: np.ndarray) -> np.ndarray:
    return (np.asarray(angle) + 180.0) % 360.0 - 180.0


def pose_matrix(pose_deg: np.ndarray) -> np.ndarray:
    """(3,) yaw, pitch, roll degrees -> (3, 3) 3DDFA rotation R = RX(pitch) RY(yaw) RZ(roll)."""
    yaw, pitch, roll = np.radians(np.asarray(pose_deg, np.float64))
    cx, sx, cy, sy, cz, sz = np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw), np.cos(roll), np.sin(roll)
    rx = np.array([[1, 0, 0], [0, cx, sx], [0, -sx, cx]])
    ry = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    rz = np.array([[cz, sz, 0], [-sz, cz, 0], [0, 0, 1]])
    return rx @ ry @ rz


def pose_from_matrix(matrix: np.ndarray, near_deg: np.ndarray | None = None) -> np.ndarray:
    """Inverse of `pose_matrix` -> (3,) yaw, pitch, roll degrees.

    Two angle triples give every matrix; the one nearest `near_deg` is returned (default: the
    one with |yaw| <= 90), so a label of yaw 95 stays 95 instead of jumping to 85 / +-180.
    """
    yaw = np.arcsin(np.clip(-matrix[0, 2], -1.0, 1.0))
    pitch = np.arctan2(matrix[1, 2], matrix[2, 2])
    roll = np.arctan2(matrix[0, 1], matrix[0, 0])
    first = np.degrees([yaw, pitch, roll])
    if near_deg is None:
        return first
    second = _wrap_deg(np.array([180.0 - first[0], first[1] + 180.0, first[2] + 180.0]))
    distance = [np.abs(_wrap_deg(c - near_deg)).sum() for c in (first, second)]
    return first if distance[0] <= distance[1] else second


def rotate_pose_in_plane(pose_deg: np.ndarray, rotation_deg: float) -> np.ndarray:
    """Pose after turning the image content counter-clockwise on screen by `rotation_deg`."""
    pose_deg = np.asarray(pose_deg, np.float64)
    if rotation_deg == 0.0:
        return pose_deg.copy()
    a = np.radians(rotation_deg)
    # Content CCW on screen (y down) is CCW in 3DDFA's y-up frame: 3DDFA's RZ(-a).
    screen = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    return pose_from_matrix(screen @ pose_matrix(pose_deg), near_deg=pose_deg)


def make_eval_sample(
    image_rgb: np.ndarray,
    landmarks_px: np.ndarray | None,
    box: np.ndarray,
    pose: np.ndarray | None,
    size: int = 112,
    num_points: int | None = None,
    crop_scale: float = DEFAULT_CROP_SCALE,
    with_face_box: bool = True,
) -> Sample:
    """The evaluation crop of `data/crop.py` around `box`, labels carried along; no randomness.

    image_rgb (H, W, 3) uint8; landmarks_px (P, 2) 0-based pixels; box (4,) x1, y1, x2, y2;
    pose (3,) yaw, pitch, roll degrees. `num_points=68` maps 98-point landmarks to 68.
    """
    return _cropped_sample(
        image_rgb, _prepare_landmarks(landmarks_px, num_points), box, pose, size, crop_scale,
        (0.0, 0.0), 0.0, False, with_face_box,
    )


def make_training_sample(
    image_rgb: np.ndarray,
    landmarks_px: np.ndarray | None,
    box: np.ndarray,
    pose: np.ndarray | None,
    rng: np.random.Generator,
    config: AugmentConfig,
    size: int = 112,
    num_points: int | None = None,
    crop_scale: float = DEFAULT_CROP_SCALE,
    with_face_box: bool = True,
) -> Sample:
    """A randomly rotated/scaled/shifted/flipped crop plus photometric jitter; labels follow."""
    rotation = float(rng.uniform(-config.rotation_deg, config.rotation_deg))
    scale = crop_scale * float(rng.uniform(*config.scale_range))
    shift = (
        float(rng.uniform(-config.shift_fraction, config.shift_fraction)),
        float(rng.uniform(-config.shift_fraction, config.shift_fraction)),
    )
    flip = bool(rng.random() < config.flip_prob)
    sample = _cropped_sample(
        image_rgb, _prepare_landmarks(landmarks_px, num_points), box, pose, size, scale, shift,
        rotation, flip, with_face_box,
    )
    sample.image = photometric(sample.image, rng, config)
    return sample


def flip_sample(sample: Sample) -> Sample:
    """Mirror an already-cropped sample: image, landmarks (mirror map), face box, yaw and roll."""
    landmarks = None if sample.landmarks is None else flip_normalised(sample.landmarks)
    face_box = None
    if sample.face_box is not None:
        x1, y1, x2, y2 = sample.face_box
        face_box = np.array([1.0 - x2, y1, 1.0 - x1, y2], np.float32)
    pose = None
    if sample.pose is not None:
        pose = np.array([-sample.pose[0], sample.pose[1], -sample.pose[2]], np.float32)
    return replace(
        sample,
        image=cv2.flip(sample.image, 1),  # numpy copies a negative-stride view ~20x slower
        landmarks=landmarks,
        face_box=face_box,
        pose=pose,
        attributes=dict(sample.attributes),
    )


def augment_crop(sample: Sample, rng: np.random.Generator, config: AugmentConfig) -> Sample:
    """Cheap augmentation of an already-cropped sample: flip, colour, blur, occlusion, ...

    Returns a new Sample; the input is not modified.
    """
    if rng.random() < config.flip_prob:
        out = flip_sample(sample)
    else:
        out = replace(sample, attributes=dict(sample.attributes))
    out.image = photometric(out.image, rng, config)
    return out


def photometric(image: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Colour jitter, grayscale, blur, occlusion and JPEG re-encoding of a (S, S, 3) uint8 RGB crop."""
    image = _colour_jitter(image, rng, config)
    if config.grayscale_prob and rng.random() < config.grayscale_prob:
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        image = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    if config.blur_prob and rng.random() < config.blur_prob:
        sigma = float(rng.uniform(0.3, max(config.blur_max_sigma, 0.3)))
        image = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma)
    if config.occlusion_prob and rng.random() < config.occlusion_prob:
        image = _occlude(image, rng, config.occlusion_max_fraction)
    if config.jpeg_prob and rng.random() < config.jpeg_prob:
        quality = int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok, "JPEG encoding of an in-memory crop failed"
        # Channel order does not matter for a round trip, so no BGR conversion is needed.
        image = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    return image


_LUMA = np.array([0.299, 0.587, 0.114])


def _hue_rotation(degrees: float) -> np.ndarray:
    """(3, 3) RGB hue rotation that keeps luminance (the SVG feColorMatrix hueRotate matrix)."""
    a, b = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return np.array([
        [0.213 + a * 0.787 - b * 0.213, 0.715 - a * 0.715 - b * 0.715, 0.072 - a * 0.072 + b * 0.928],
        [0.213 - a * 0.213 + b * 0.143, 0.715 + a * 0.285 + b * 0.140, 0.072 - a * 0.072 - b * 0.283],
        [0.213 - a * 0.213 - b * 0.787, 0.715 - a * 0.715 + b * 0.715, 0.072 + a * 0.928 + b * 0.072],
    ])


def _colour_jitter(image: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Brightness, saturation, hue and contrast folded into one 3x4 colour matrix (one pass)."""
    b = 1.0 + float(rng.uniform(-config.brightness, config.brightness))
    c = 1.0 + float(rng.uniform(-config.contrast, config.contrast))
    s = 1.0 + float(rng.uniform(-config.saturation, config.saturation))
    hue = float(rng.uniform(-config.hue_deg, config.hue_deg))
    if b == 1.0 and c == 1.0 and s == 1.0 and hue == 0.0:
        return image
    saturation = s * np.eye(3) + (1.0 - s) * np.outer(np.ones(3), _LUMA)  # blend with grey
    matrix = c * b * (_hue_rotation(hue) @ saturation)
    # Contrast pulls towards the mean grey level, which the other three keep (up to rounding).
    mean_grey = b * float(np.dot(cv2.mean(image)[:3], _LUMA))
    affine = np.hstack([matrix, np.full((3, 1), (1.0 - c) * mean_grey)])
    return cv2.transform(image, affine)  # saturates to uint8


def _occlude(image: np.ndarray, rng: np.random.Generator, max_fraction: float) -> np.ndarray:
    size_y, size_x = image.shape[:2]
    h = max(1, int(rng.uniform(0.1, max_fraction) * size_y))
    w = max(1, int(rng.uniform(0.1, max_fraction) * size_x))
    y = int(rng.integers(0, size_y - h + 1))
    x = int(rng.integers(0, size_x - w + 1))
    out = image.copy()
    if rng.random() < 0.5:
        out[y : y + h, x : x + w] = rng.integers(0, 256, 3, dtype=np.uint8)
    else:
        out[y : y + h, x : x + w] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return out
