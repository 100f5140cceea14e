"""The Haar detector's calibration: detections map onto the tight landmark box the models crop from."""

from __future__ import annotations

import numpy as np
import pytest

from atpn_edge.data.synthetic import render_sequence
from atpn_edge.metrics import box_iou
from atpn_edge.runtime.detector import HAAR_TO_LANDMARK_BOX, DetectorConfig, detect_faces


@pytest.fixture(scope="module")
def renders():
    seq = render_sequence(2, num_frames=24, events=False)
    return seq.frames[::3], seq.face_box[::3]


def _square(box):
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = max(box[2] - box[0], box[3] - box[1]) / 2
    return np.array([cx - half, cy - half, cx + half, cy + half])


def test_calibrated_box_matches_landmark_box(renders):
    frames, truth = renders
    centre_err, side_ratio, ious, raw_ious = [], [], [], []
    c = HAAR_TO_LANDMARK_BOX
    for frame, box in zip(frames, truth):
        found = detect_faces(frame)
        if not found:
            continue
        det = found[0]
        side = max(box[2] - box[0], box[3] - box[1])
        centre_err.append(np.hypot((det[0] + det[2] - box[0] - box[2]) / 2, (det[1] + det[3] - box[1] - box[3]) / 2) / side)
        side_ratio.append((det[2] - det[0]) / side)
        ious.append(box_iou(det[None], _square(box)[None])[0])
        # undo the calibration: the raw Haar box, for comparison
        w = (det[2] - det[0]) / c["scale"]
        cx, cy = (det[0] + det[2]) / 2 - c["dx"] * w, (det[1] + det[3]) / 2 - c["dy"] * w
        raw = np.array([cx - w / 2, cy - w / 2, cx + w / 2, cy + w / 2])
        raw_ious.append(box_iou(raw[None], _square(box)[None])[0])
    assert len(ious) >= 4, f"Haar found the face on only {len(ious)} of {len(frames)} near-frontal renders"
    assert np.median(centre_err) < 0.08, centre_err
    assert 0.88 < np.median(side_ratio) < 1.12, side_ratio
    assert np.median(ious) > 0.75, ious
    assert np.median(ious) > np.median(raw_ious) + 0.1, (ious, raw_ious)


def test_no_face_in_a_flat_image():
    assert detect_faces(np.full((240, 320, 3), 128, np.uint8)) == []
