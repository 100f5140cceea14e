import numpy as np
import pytest

from atpn_edge import metrics


def _faces(n, p):
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 100, size=(n, p, 2))
    return gt


@pytest.mark.parametrize("points,corners", [(98, (60, 72)), (68, (36, 45))])
def test_nme_uses_outer_eye_corners(points, corners):
    gt = _faces(3, points)
    gt[:, corners[0]] = [10.0, 50.0]
    gt[:, corners[1]] = [60.0, 50.0]  # inter-ocular distance 50
    pred = gt.copy()
    pred[..., 0] += 5.0  # every point off by 5 px
    np.testing.assert_allclose(metrics.nme(pred, gt), np.full(3, 0.1))
    pred = gt.copy()
    pred[0, 0] += [3.0, 4.0]  # one point off by 5 px in image 0 only
    np.testing.assert_allclose(metrics.nme(pred, gt), [5.0 / points / 50.0, 0.0, 0.0])


def test_nme_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        metrics.nme(np.zeros((2, 98, 2)), np.zeros((2, 68, 2)))


def test_failure_rate_and_auc_by_hand():
    nmes = np.array([0.02, 0.05, 0.08, 0.12])
    assert metrics.failure_rate(nmes) == 0.25
    # AUC@0.1 = mean(max(0.1 - e, 0)) / 0.1 = (0.08 + 0.05 + 0.02 + 0) / 4 / 0.1
    assert metrics.auc(nmes) == pytest.approx(0.375)
    xs, ys = metrics.ced_curve(nmes, steps=100001)
    assert np.trapezoid(ys, xs) / 0.1 == pytest.approx(0.375, abs=1e-4)
    assert metrics.auc(np.zeros(5)) == pytest.approx(1.0)


def test_pose_mae_protocol_excludes_beyond_99_degrees():
    gt = np.array([[10.0, 0.0, 0.0], [120.0, 0.0, 0.0], [-20.0, 5.0, 3.0]])
    pred = gt + np.array([[2.0, 1.0, 0.0], [50.0, 50.0, 50.0], [-4.0, 0.0, 3.0]])
    result = metrics.pose_mae(pred, gt)
    assert result["n_images"] == 2
    assert result["yaw"] == pytest.approx(3.0)
    assert result["pitch"] == pytest.approx(0.5)
    assert result["roll"] == pytest.approx(1.5)
    assert result["mean"] == pytest.approx(5.0 / 3)


def test_box_iou_and_face_score_accuracy():
    a = np.array([[0, 0, 2, 2], [0, 0, 1, 1]], float)
    b = np.array([[1, 1, 3, 3], [2, 2, 3, 3]], float)
    np.testing.assert_allclose(metrics.box_iou(a, b), [1 / 7, 0.0])
    assert metrics.face_score_accuracy(np.array([0.9, 0.2, 0.6]), np.array([1, 0, 0])) == pytest.approx(2 / 3)


def test_plot_ced_writes_png(tmp_path):
    path = tmp_path / "ced.png"
    metrics.plot_ced({"a": np.array([0.03, 0.05]), "b": np.array([0.04, 0.2])}, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
