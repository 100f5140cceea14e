"""evaluate(): one loop for every predictor; its EvalResult against numbers worked out by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from atpn_edge.data.sample import Sample
from atpn_edge.evaluate import EvalResult, evaluate


def _face(offset: float, yaw: float) -> tuple[Sample, np.ndarray]:
    """A 68-point face whose outer eye corners (36, 45) are 0.4 apart; the prediction moves every point
    by `offset` along x, so its NME is offset / 0.4 exactly."""
    gt = np.full((68, 2), 0.5, np.float32)
    gt[36], gt[45] = (0.3, 0.4), (0.7, 0.4)
    sample = Sample(image=np.zeros((112, 112, 3), np.uint8), landmarks=gt, pose=np.array([yaw, 0, 0], np.float32),
                    face_score=1.0, face_box=np.array([0.1, 0.1, 0.9, 0.9], np.float32))
    return sample, gt + np.array([offset, 0.0], np.float32)


class _Fixed(list):
    def subsets(self):
        return {"second": np.array([1])}


def test_eval_result_numbers_and_json():
    pairs = [_face(0.02, 10.0), _face(0.06, -20.0), _face(0.0, 0.0)]  # NME 0.05, 0.15, 0.0
    negative = Sample(image=np.zeros((112, 112, 3), np.uint8), face_score=0.0)
    dataset = _Fixed([p[0] for p in pairs] + [negative])
    predictions = [p[1] for p in pairs] + [pairs[0][1]]

    def predict(images):
        n = len(images)
        return {"landmarks": np.stack(predictions[:n]), "pose": np.array([[12.0, 1.0, 0.0]] * n, np.float32),
                "face_score": np.array([0.9, 0.8, 0.2, 0.1][:n], np.float32),
                "face_box": np.tile(np.array([0.1, 0.1, 0.9, 0.9], np.float32), (n, 1))}

    result, nmes = evaluate(predict, dataset, batch_size=8, progress=False)
    assert isinstance(result, EvalResult)
    np.testing.assert_allclose(nmes, [0.05, 0.15, 0.0], atol=1e-6)
    assert result.n_samples == 4 and result.n_images == 3
    assert result.nme == pytest.approx(0.2 / 3, abs=1e-6)
    assert result.fr_10 == pytest.approx(1 / 3)
    # yaw errors 2, 32, 12 -> 15.33; pitch 1 each; roll 0
    assert result.pose_mae["yaw"] == pytest.approx(46 / 3, abs=1e-4)
    assert result.pose_mae_mean == pytest.approx((46 / 3 + 1 + 0) / 3, abs=1e-4)
    assert result.face_score_acc == pytest.approx(0.75)  # the third face scored 0.2: wrong at 0.5
    assert result.box_iou == pytest.approx(1.0)
    assert result.subsets["second"]["n_images"] == 1
    assert result.subsets["second"]["nme"] == pytest.approx(0.15, abs=1e-6)

    as_json = result.to_json()
    assert list(as_json) == ["n_samples", "n_images", "nme", "fr_10", "auc_10", "pose_mae", "face_score_acc",
                             "box_iou", "subsets"]
    json.dumps(as_json)  # plain JSON types only
    assert EvalResult.from_json(json.loads(json.dumps(as_json))) == EvalResult.from_json(as_json)


def test_eval_result_without_optional_heads_leaves_their_keys_out():
    sample, pred = _face(0.01, 0.0)
    result, _ = evaluate(lambda images: {"landmarks": pred[None]}, [sample], progress=False)
    as_json = result.to_json()
    assert "face_score_acc" not in as_json and "box_iou" not in as_json
    assert as_json["pose_mae"] == {} and result.pose_mae_mean is None
