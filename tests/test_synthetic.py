"""Synthetic data set: determinism, label consistency, pose convention, cache, sequences."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from atpn_edge.data.schemes import WFLW98_TO_IBUG68
from atpn_edge.data.synthetic import SyntheticConfig, SyntheticFaces, render_sequence
from atpn_edge.data.synthetic.geometry import (
    angles_to_matrix,
    load_mean_shape_68,
    matrix_to_angles,
    wflw98_from_ibug68,
)
from atpn_edge.data.synthetic.render import (
    View, _contour_on_silhouette, _MeshLayer, deform, project, render_face, sample_face_params,
)
from atpn_edge.errors import UserError

cv2.setNumThreads(1)


def test_same_seed_same_bytes_and_seeds_differ():
    a, b = SyntheticFaces(6, seed=3), SyntheticFaces(6, seed=3)
    for i in range(6):
        sa, sb = a[i], b[i]
        assert sa.image.tobytes() == sb.image.tobytes()
        if sa.face_score:
            assert np.array_equal(sa.landmarks, sb.landmarks) and np.array_equal(sa.pose, sb.pose)
    other = SyntheticFaces(6, seed=4)
    assert a[0].image.tobytes() != other[0].image.tobytes()


def test_98_to_68_subset_exact():
    s68 = load_mean_shape_68()
    assert np.array_equal(wflw98_from_ibug68(s68)[WFLW98_TO_IBUG68], s68)
    cfg98 = SyntheticConfig(nonface_fraction=0.0)
    cfg68 = SyntheticConfig(nonface_fraction=0.0, num_points=68)
    for i in range(3):
        l98, l68 = SyntheticFaces(3, 1, cfg98)[i].landmarks, SyntheticFaces(3, 1, cfg68)[i].landmarks
        assert l98.shape == (98, 2) and l68.shape == (68, 2)
        assert np.array_equal(l98[WFLW98_TO_IBUG68], l68)


def test_labels_consistent_with_crop():
    ds = SyntheticFaces(40, seed=2, config=SyntheticConfig(nonface_fraction=0.0))
    inside_share = []
    for i in range(len(ds)):
        s = ds[i]
        assert s.image.shape == (112, 112, 3) and s.image.dtype == np.uint8
        assert s.face_score == 1.0 and s.pose.shape == (3,)
        lm, box = s.landmarks, s.face_box
        inside_share.append(np.mean((lm >= 0) & (lm <= 1)))
        # The face box is the landmark box (to float precision).
        assert np.allclose(box, [*lm.min(0), *lm.max(0)], atol=1e-5)
        # Crop scale 1.25 with jitter: the box's longer side is about 0.8 of the crop.
        assert 0.55 < max(box[2] - box[0], box[3] - box[1]) < 1.0
        # Eye corners in the right order: WFLW 60 is on the image left of 72 unless turned far away.
        if abs(s.pose[0]) < 50 and abs(s.pose[2]) < 25:
            assert lm[60, 0] < lm[72, 0]
    assert np.mean(inside_share) > 0.97


def test_nonface_samples_have_no_labels():
    ds = SyntheticFaces(8, seed=0, config=SyntheticConfig(nonface_fraction=1.0))
    for i in range(8):
        s = ds[i]
        assert s.face_score == 0.0
        assert s.landmarks is None and s.pose is None and s.face_box is None
    mixed = SyntheticFaces(200, seed=0, config=SyntheticConfig(nonface_fraction=0.25, degrade=False))
    # Only the fraction is checked cheaply: the face/non-face draw happens first for each sample.
    rng_share = np.mean([np.random.default_rng([0, i, 0x5F4CE]).random() < 0.25 for i in range(200)])
    assert 0.15 < rng_share < 0.35
    assert mixed[0].image.shape == (112, 112, 3)


def test_bad_config_is_a_user_error():
    with pytest.raises(UserError):
        SyntheticConfig(num_points=5)
    with pytest.raises(UserError):
        SyntheticConfig(nonface_fraction=1.5)


@pytest.mark.parametrize("yaw,pitch,roll", [(30.0, -10.0, 5.0), (-55.0, 20.0, -15.0), (5.0, 0.0, 25.0)])
def test_angles_matrix_roundtrip(yaw, pitch, roll):
    r = angles_to_matrix(yaw, pitch, roll)
    assert np.allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.allclose(matrix_to_angles(r), (yaw, pitch, roll), atol=1e-9)


def _pnp_pose(model_points: np.ndarray, image_points: np.ndarray, focal: float, centre) -> tuple:
    cam = np.array([[focal, 0, centre[0]], [0, focal, centre[1]], [0, 0, 1]], np.float64)
    # OpenCV camera: x right, y down, z away; model space: y up, z toward the camera.
    ok, rvec, _ = cv2.solvePnP(model_points.astype(np.float64), image_points.astype(np.float64), cam, None,
                               flags=cv2.SOLVEPNP_ITERATIVE)
    assert ok
    r_cv = cv2.Rodrigues(rvec)[0]
    return matrix_to_angles(np.diag([1.0, -1.0, -1.0]) @ r_cv)


@pytest.mark.parametrize("yaw,pitch,roll", [(35.0, 10.0, -8.0), (-50.0, -15.0, 12.0), (0.0, 25.0, 0.0)])
def test_pose_recovered_from_rendered_landmarks(yaw, pitch, roll):
    rng = np.random.default_rng(7)
    params = sample_face_params(rng)
    view = View(yaw, pitch, roll, (200.0, 200.0), 90.0, 6.0, (0.0, 0.0, 1.0), 0.4, 0.6)
    canvas = np.zeros((400, 400, 3), np.uint8)
    lm = render_face(canvas, params, view, rng)
    inner = slice(33, 98)  # the contour follows the visible outline where the head hides it, not the 3-D surface
    got = _pnp_pose(deform(params)[inner], lm[inner], focal=view.scale * view.distance, centre=view.center)
    assert np.allclose(got, (yaw, pitch, roll), atol=0.5)
    # The face was really drawn where the labels are.
    assert canvas[int(lm[54, 1]), int(lm[54, 0])].sum() > 0


@pytest.mark.parametrize("yaw", [40.0, -55.0])
def test_hidden_contour_points_sit_on_the_visible_outline(yaw):
    """300-W's convention: on the far side of a turned head the contour follows the cheek's outline, so the
    points the head hides move outward to the last face pixel; the near side stays the projected 3-D contour."""
    rng = np.random.default_rng(3)
    params = sample_face_params(rng)
    view = View(yaw, 0.0, 0.0, (200.0, 200.0), 90.0, 8.0, (0.0, 0.0, 1.0), 0.4, 0.6)
    model = deform(params)[:33]
    projected, _ = project(model, view)
    canvas = np.zeros((400, 400, 3), np.uint8)
    contour = render_face(canvas, params, view, rng)[:33].astype(np.float64)
    moved = np.linalg.norm(contour - projected, axis=1) > 1.0
    far_side = np.sign(model[:, 0]) == -np.sign(yaw)  # yaw > 0 turns the nose left: the left cheek is the outline
    assert moved.sum() >= 4 and np.all(far_side[moved])  # only far-side points move ...
    outward = np.sign(contour[moved, 0] - projected[moved, 0]) == -np.sign(yaw)
    assert np.all(outward)  # ... away from the face's centre
    np.testing.assert_allclose(contour[~moved], projected[~moved], atol=1.0)


def test_a_hidden_contour_point_marches_to_the_mask_edge_along_the_face_axis():
    mask = np.zeros((60, 100), bool)
    mask[10:50, 20:80] = True  # the face mesh covers x 20..79 (window at x0 = 5, y0 = 5 in the canvas)
    layer = _MeshLayer((5, 5, 105, 65), np.zeros((60, 100, 3), np.uint8), mask, np.zeros_like(mask))
    contour_px = np.array([[55.0, 35.0], [55.0, 35.0], [30.0, 35.0]])
    model = np.array([[0.5, 0, 0], [-0.5, 0, 0], [-0.5, 0, 0]])  # right side, left side, left side
    normals = np.array([[0, 0, -0.3], [0, 0, -0.3], [0, 0, 0.5]])  # hidden, hidden, visible
    out = _contour_on_silhouette(contour_px, model, normals, layer, angles_to_matrix(0.0, 0.0, 0.0))
    np.testing.assert_allclose(out[0], [84.0, 35.0], atol=0.5)  # last mask column 79 + x0 5
    np.testing.assert_allclose(out[1], [25.0, 35.0], atol=0.5)  # first mask column 20 + x0 5
    np.testing.assert_array_equal(out[2], contour_px[2])  # visible: where the 3-D contour projects
    tilted = _contour_on_silhouette(contour_px, model, normals, layer, angles_to_matrix(0.0, 0.0, 30.0))
    direction = tilted[0] - contour_px[0]
    assert abs(np.degrees(np.arctan2(direction[1], direction[0])) - 30.0) < 2.0  # along the rolled face's x axis


def test_pose_sign_convention_on_dataset_samples():
    """Labels agree with a PnP fit of the mean face to the sample's own landmarks (identity varies)."""
    ds = SyntheticFaces(12, seed=11, config=SyntheticConfig(nonface_fraction=0.0))
    mean98 = wflw98_from_ibug68(load_mean_shape_68())
    errors = []
    for i in range(len(ds)):
        s = ds[i]
        px = s.landmarks * 112 - 0.5
        got = _pnp_pose(mean98[33:], px[33:], focal=112 * 6.0, centre=(55.5, 55.5))
        errors.append(np.abs(np.array(got) - s.pose))
        # yaw > 0 turns the nose (WFLW 54) toward the image left of the eye-corner midpoint.
        if abs(s.pose[0]) > 15 and abs(s.pose[2]) < 20:
            nose_offset = px[54, 0] - (px[60, 0] + px[72, 0]) / 2
            assert np.sign(nose_offset) == -np.sign(s.pose[0])
    assert np.median(np.array(errors), axis=0).max() < 6.0


def test_cache_matches_samples_and_reloads(tmp_path):
    ds = SyntheticFaces(10, seed=5, config=SyntheticConfig(nonface_fraction=0.3))
    arrays = ds.cached(tmp_path, workers=2, progress=False)
    files = list(tmp_path.glob("synthetic-*.npz"))
    assert len(files) == 1
    assert arrays.images.shape == (10, 112, 112, 3) and arrays.landmarks.shape == (10, 98, 2)
    for i in range(10):
        s = ds[i]
        assert np.array_equal(arrays.images[i], s.image)
        assert arrays.has_face[i] == (s.face_score == 1.0)
        if s.face_score:
            assert np.array_equal(arrays.landmarks[i], s.landmarks)
            assert np.array_equal(arrays.pose[i], s.pose)
        else:
            assert not arrays.landmarks[i].any()
    again = ds.cached(tmp_path)
    assert np.array_equal(again.images, arrays.images) and np.array_equal(again.face_box, arrays.face_box)
    assert SyntheticFaces(10, seed=6).cache_key() != ds.cache_key()


def test_sequence_is_smooth_deterministic_and_labelled():
    seq = render_sequence(4, num_frames=45, frame_size=(120, 160), num_points=68)
    assert seq.frames.shape == (45, 120, 160, 3) and seq.landmarks.shape == (45, 68, 2)
    assert np.abs(np.diff(seq.pose, axis=0)).max() < 4.0  # degrees per frame
    vis = seq.face_visible
    assert vis.sum() > 20
    centre_step = np.linalg.norm(np.diff(seq.landmarks[vis].mean(axis=1), axis=0), axis=1)
    assert np.median(centre_step) < 5.0
    lm = seq.landmarks[vis]
    assert lm[..., 0].min() >= 0 and lm[..., 0].max() < 160 and lm[..., 1].max() < 120
    again = render_sequence(4, num_frames=45, frame_size=(120, 160), num_points=68)
    assert np.array_equal(again.frames, seq.frames)


def test_sequence_survives_the_face_leaving_the_frame():
    # Seed 0 moves the head out of the left edge: the face window must not wrap around the canvas.
    seq = render_sequence(0, num_frames=150)
    assert seq.frames.shape == (150, 480, 640, 3)
    assert not seq.face_visible.all() and seq.face_visible.mean() > 0.5


def test_mesh_asset_is_the_built_mesh():
    """The shipped mesh (rendering without scipy on a runtime install) is exactly what the builder makes."""
    from atpn_edge.data.synthetic.geometry import build_mean_face_mesh, mean_face_mesh

    shipped, built = mean_face_mesh(), build_mean_face_mesh()
    for name in ("vertices", "triangles", "region", "forehead_height", "ring"):
        a, b = getattr(shipped, name), getattr(built, name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9, err_msg=name)
