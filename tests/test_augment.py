"""Augmentation: labels follow the warp exactly; flips use the right mirror maps; roll follows rotation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

import atpn_edge.data
from atpn_edge.data.augment import (
    NO_AUGMENTATION,
    AugmentConfig,
    augment_crop,
    flip_sample,
    make_eval_sample,
    make_training_sample,
    pose_from_matrix,
    pose_matrix,
)
from atpn_edge.data.crop import crop_face
from atpn_edge.data.sample import Sample
from atpn_edge.data.schemes import IBUG68, WFLW98, WFLW98_TO_IBUG68, flip_normalised
from fixtures.real_formats import dot_centre, dot_image, face_points

GEOMETRY_ONLY = replace(NO_AUGMENTATION, rotation_deg=40.0, scale_range=(0.8, 1.2), shift_fraction=0.1, flip_prob=0.5)
BOX = np.array([60.0, 40.0, 140.0, 120.0])


def eye_line_deg(landmarks: np.ndarray, scheme=WFLW98) -> float:
    """Angle of the outer-eye-corner line in image axes (y down): clockwise on screen is positive."""
    a, b = landmarks[list(scheme.eye_corners)]
    return float(np.degrees(np.arctan2(b[1] - a[1], b[0] - a[0])))


def wrap(angle: float) -> float:
    return (angle + 180.0) % 360.0 - 180.0


@pytest.mark.parametrize("num_points", [98, 68])
def test_landmark_lands_on_its_dot_after_random_warp(num_points):
    rng = np.random.default_rng(0)
    points = face_points(num_points, (70, 50, 130, 110), rng)
    mirror = WFLW98.mirror if num_points == 98 else IBUG68.mirror
    paired = [k for k in range(num_points) if mirror[k] != k]
    flips = 0
    for seed in range(8):
        k = paired[seed * 7 % len(paired)]
        image = cv2.cvtColor(dot_image(points[k : k + 1]), cv2.COLOR_BGR2RGB)
        sample = make_training_sample(
            image, points, BOX, None, np.random.default_rng(seed), GEOMETRY_ONLY, num_points=num_points
        )
        found = dot_centre(sample.image)
        # Original point k is at index k, or at its mirror twin's index after a flip.
        errors = {i: np.abs(sample.landmarks[i] * 112 - 0.5 - found).max() for i in (k, int(mirror[k]))}
        best = min(errors, key=errors.get)
        assert errors[best] < 0.6, (seed, errors)
        flips += best != k
    assert 0 < flips < 8  # both paths were exercised


def test_flip_moves_points_to_mirror_indices_exactly():
    rng = np.random.default_rng(1)
    points = face_points(98, (70, 50, 130, 110), rng)
    image = np.zeros((160, 200, 3), np.uint8)
    base = make_training_sample(image, points, BOX, None, np.random.default_rng(5), replace(GEOMETRY_ONLY, flip_prob=0.0))
    mirrored = make_training_sample(image, points, BOX, None, np.random.default_rng(5), replace(GEOMETRY_ONLY, flip_prob=1.0))
    # Same rotation/scale/shift draws; flipping inside the warp == flipping the crop afterwards.
    np.testing.assert_allclose(mirrored.landmarks, flip_normalised(base.landmarks), atol=1e-5)
    np.testing.assert_allclose(mirrored.landmarks[60], [1 - base.landmarks[72, 0], base.landmarks[72, 1]], atol=1e-5)
    np.testing.assert_allclose(mirrored.face_box, flip_sample(base).face_box, atol=1e-5)


def test_flip_twice_is_identity_and_flip_of_warp_matches_image():
    rng = np.random.default_rng(2)
    # Smooth content: warpAffine rounds sample positions to 1/32 px, which noise would amplify.
    image = cv2.resize(rng.integers(0, 256, (16, 20, 3), dtype=np.uint8), (200, 160), interpolation=cv2.INTER_CUBIC)
    points = face_points(68, (70, 50, 130, 110), rng)
    pose = np.array([30.0, -10.0, 12.0])
    base = make_training_sample(image, points, BOX, pose, np.random.default_rng(9), replace(GEOMETRY_ONLY, flip_prob=0.0))
    mirrored = make_training_sample(image, points, BOX, pose, np.random.default_rng(9), replace(GEOMETRY_ONLY, flip_prob=1.0))
    assert np.abs(mirrored.image.astype(int) - base.image[:, ::-1].astype(int)).max() <= 2
    np.testing.assert_allclose(mirrored.pose, [-base.pose[0], base.pose[1], -base.pose[2]], atol=1e-4)
    twice = flip_sample(flip_sample(mirrored))
    np.testing.assert_array_equal(twice.image, mirrored.image)
    np.testing.assert_allclose(twice.landmarks, mirrored.landmarks, atol=1e-6)
    np.testing.assert_allclose(twice.face_box, mirrored.face_box, atol=1e-6)
    np.testing.assert_allclose(twice.pose, mirrored.pose, atol=1e-6)


def test_mirror_maps_for_both_schemes():
    for scheme in (WFLW98, IBUG68):
        np.testing.assert_array_equal(scheme.mirror[scheme.mirror], np.arange(scheme.num_points))
        a, b = scheme.eye_corners
        assert scheme.mirror[a] == b
    # The 68-point mean face (independent data) is left-right symmetric: flipped == itself.
    assets = Path(atpn_edge.data.__file__).parent / "assets" / "meanshape_68.txt"
    mean = np.loadtxt(assets)[:, :2]
    mean = (mean - mean.min(0)) / (mean.max(0) - mean.min(0)) * 0.6 + 0.2
    centre = (mean[:, 0].min() + mean[:, 0].max()) / 2
    mean[:, 0] += 0.5 - centre
    assert np.abs(flip_normalised(mean.astype(np.float32)) - mean).max() < 0.03
    assert np.abs(mean[IBUG68.mirror[[0]]] - mean[[0]]).max() > 0.3  # and it is not trivially so
    # The 98-point map agrees with the 68-point one through the 98 -> 68 correspondence.
    np.testing.assert_array_equal(WFLW98.mirror[WFLW98_TO_IBUG68], WFLW98_TO_IBUG68[IBUG68.mirror])
    assert WFLW98.mirror[96] == 97 and WFLW98.mirror[1] == 31 and WFLW98.mirror[54] == 54


def mean_face_3d() -> np.ndarray:
    """(68, 3) mean face in a y-up model frame (the asset stores y down)."""
    assets = Path(atpn_edge.data.__file__).parent / "assets" / "meanshape_68.txt"
    points = np.loadtxt(assets)
    return points * np.array([1.0, -1.0, 1.0])


def project(pose_deg, points_3d: np.ndarray) -> np.ndarray:
    """3DDFA-style weak perspective: R @ v, then image y = -model y (y down). -> (P, 2)."""
    projected = (pose_matrix(pose_deg) @ points_3d.T).T
    return np.column_stack([projected[:, 0], -projected[:, 1]])


@pytest.mark.parametrize("seed", range(6))
def test_roll_follows_rotation_and_flip(seed):
    """Frontal face: roll = eye-line angle (clockwise on screen positive), the 3DDFA convention."""
    rng = np.random.default_rng(100 + seed)
    points = face_points(98, (70, 50, 130, 110), rng)
    pose = np.array([0.0, 0.0, eye_line_deg(points)])
    image = np.zeros((160, 200, 3), np.uint8)
    sample = make_training_sample(image, points, BOX, pose, rng, GEOMETRY_ONLY)
    assert sample.pose[2] == pytest.approx(wrap(eye_line_deg(sample.landmarks)), abs=1e-3)
    assert sample.pose[0] == pytest.approx(0.0, abs=1e-6) and sample.pose[1] == pytest.approx(0.0, abs=1e-6)
    assert wrap(sample.pose[2] - pose[2]) != pytest.approx(0.0, abs=0.5)  # it did rotate


@pytest.mark.parametrize("pose", [(40.0, -20.0, 10.0), (-70.0, 15.0, -25.0), (95.0, 5.0, 0.0)])
def test_rotated_pose_reprojects_onto_rotated_landmarks(pose):
    """With yaw and pitch, the new pose must project the 3-D face onto the warped landmarks."""
    face = mean_face_3d()
    landmarks = project(pose, face) * 30.0 + np.array([100.0, 80.0])
    image = np.zeros((160, 200, 3), np.uint8)
    config = replace(GEOMETRY_ONLY, flip_prob=0.0)
    for seed in range(3):
        sample = make_training_sample(image, landmarks, BOX, np.array(pose), np.random.default_rng(seed), config)
        want = sample.landmarks - sample.landmarks.mean(0)
        got = project(sample.pose, face)
        got -= got.mean(0)
        scale = (want * got).sum() / (got * got).sum()
        assert np.abs(want - scale * got).max() < 1e-5
        naive = project(np.array([pose[0], pose[1], sample.pose[2]]), face)  # roll-only update is not enough
        naive -= naive.mean(0)
        assert np.abs(want - scale * naive).max() > 1e-3 or abs(pose[0]) < 1
        assert abs(sample.pose[0] - pose[0]) < 20  # stays near the original branch (yaw 95 stays > 90)
    assert pose_from_matrix(pose_matrix(pose), near_deg=np.array(pose)) == pytest.approx(pose, abs=1e-6)


def test_face_box_follows_centre_and_scale():
    image = np.zeros((160, 200, 3), np.uint8)
    config = replace(GEOMETRY_ONLY, flip_prob=0.0)
    sample = make_training_sample(image, None, BOX, None, np.random.default_rng(3), config)
    rng = np.random.default_rng(3)
    rotation = rng.uniform(-40, 40)
    scale = 1.25 * rng.uniform(0.8, 1.2)
    shift = (rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1))
    crop = crop_face(image, BOX, 112, scale=scale, shift=shift, rotation_deg=rotation)
    centre = crop.to_crop_normalised(np.array([[100.0, 80.0]]))[0]
    side = 80.0 * 112 / (80.0 * scale) / 112
    np.testing.assert_allclose(sample.face_box, [*(centre - side / 2), *(centre + side / 2)], atol=1e-5)
    assert sample.landmarks is None and sample.pose is None


def test_eval_sample_is_the_plain_crop():
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (160, 200, 3), dtype=np.uint8)
    points = face_points(98, (70, 50, 130, 110), rng)
    sample = make_eval_sample(image, points, BOX, np.array([1.0, 2.0, 3.0]), num_points=68)
    crop = crop_face(image, BOX, 112)
    np.testing.assert_array_equal(sample.image, crop.image)
    np.testing.assert_allclose(sample.landmarks, crop.to_crop_normalised(points[WFLW98_TO_IBUG68]), atol=1e-6)
    np.testing.assert_allclose(sample.pose, [1, 2, 3])
    np.testing.assert_allclose(sample.face_box, [0.1, 0.1, 0.9, 0.9], atol=1e-6)  # box side 80 of a 100 window


def test_photometric_ops_change_pixels_not_geometry():
    rng = np.random.default_rng(6)
    image = rng.integers(60, 200, (112, 112, 3), dtype=np.uint8)
    sample = Sample(image=image, landmarks=rng.random((98, 2), dtype=np.float32), pose=np.array([10.0, 5.0, -7.0], np.float32),
                    face_box=np.array([0.1, 0.2, 0.7, 0.9], np.float32), face_score=1.0)
    config = AugmentConfig(flip_prob=0.0, blur_prob=1.0, occlusion_prob=1.0, jpeg_prob=1.0)
    out = augment_crop(sample, np.random.default_rng(0), config)
    assert out.image.shape == image.shape and out.image.dtype == np.uint8
    assert np.abs(out.image.astype(int) - image).mean() > 5
    np.testing.assert_array_equal(out.landmarks, sample.landmarks)
    np.testing.assert_array_equal(sample.image, image)  # input untouched
    gray = augment_crop(sample, np.random.default_rng(0), replace(NO_AUGMENTATION, grayscale_prob=1.0))
    assert np.all(gray.image[..., 0] == gray.image[..., 1]) and np.all(gray.image[..., 1] == gray.image[..., 2])
    flipped = augment_crop(sample, np.random.default_rng(0), replace(NO_AUGMENTATION, flip_prob=1.0))
    np.testing.assert_array_equal(flipped.image, image[:, ::-1])
    np.testing.assert_allclose(flipped.face_box, [0.3, 0.2, 0.9, 0.9], atol=1e-6)
    np.testing.assert_allclose(flipped.pose, [-10.0, 5.0, 7.0])
    np.testing.assert_allclose(flipped.landmarks, flip_normalised(sample.landmarks))
    same = augment_crop(sample, np.random.default_rng(0), config)
    np.testing.assert_array_equal(same.image, out.image)  # deterministic by rng


def test_bad_augment_config_is_a_user_error():
    from atpn_edge.errors import UserError

    with pytest.raises(UserError, match="flip_prob must lie in"):
        AugmentConfig(flip_prob=1.5)
    with pytest.raises(UserError, match="scale_range"):
        AugmentConfig(scale_range=(1.2, 0.8))
