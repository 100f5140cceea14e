"""Measurement rows: drops against the float row, roles, the report JSON, the headline picked by role."""

from __future__ import annotations

import math

import pytest

from atpn_edge.evaluate import EvalResult
from atpn_edge.measurement import Row
from atpn_edge.runner.report import headline


def _result(nme: float, pose: float = 3.0) -> EvalResult:
    return EvalResult(n_samples=10, n_images=9, nme=nme, fr_10=0.1, auc_10=0.4,
                      pose_mae={"yaw": pose, "pitch": pose, "roll": pose, "mean": pose, "n_images": 9},
                      face_score_acc=1.0, box_iou=0.9)


def test_row_drops_are_against_the_float_row_on_both_sets():
    float_row = Row("float", "float", "pytorch", _result(0.08), real=_result(0.12), params=10, macs=20)
    int8 = Row("m_tflite", "deployed", "tflite", _result(0.082), real=_result(0.126), size_bytes=5,
               details={"route": "r"}).against(float_row)
    assert float_row.nme_drop_rel == 0.0 and float_row.real_nme_drop_rel == 0.0
    assert math.isclose(int8.nme_drop_rel, 0.025) and math.isclose(int8.real_nme_drop_rel, 0.05)
    row = int8.to_json()
    assert row["role"] == "deployed" and row["measured_on"] == "tflite" and row["route"] == "r"
    assert row["size_bytes"] == 5 and "params" not in row  # only what was measured
    assert row["pose_mae"] == 3.0 and row["pose_mae_axes"]["yaw"] == 3.0 and "mean" not in row["pose_mae_axes"]
    assert math.isclose(row["real_nme_drop_rel"], 0.05) and row["real_n_images"] == 9
    assert "real_nme" not in Row("x", "compressed", "pytorch", _result(0.1)).to_json()  # no real set installed


def test_row_rejects_an_unknown_role():
    with pytest.raises(ValueError, match="role"):
        Row("x", "pruned", "pytorch", _result(0.1))


def test_headline_prefers_the_tflite_artifact_and_reports_the_control():
    f = Row("float", "float", "pytorch", _result(0.08, pose=3.0))
    acc = {"float": f,
           "p": Row("p", "compressed", "pytorch", _result(0.07, pose=2.9)).against(f),
           "p_onnx": Row("p_onnx", "deployed", "onnx", _result(0.071)).against(f),
           "p_tflite": Row("p_tflite", "deployed", "tflite", _result(0.0705, pose=2.95)).against(f),
           "p_unpruned_control": Row("p_unpruned_control", "control", "pytorch", _result(0.0625, pose=2.8)).against(f)}
    h = headline("p", acc)
    assert h["variant"] == "p_tflite" and h["measured_on"] == "tflite"
    assert math.isclose(h["control"]["nme_vs_control_rel"], 0.0705 / 0.0625 - 1)
    assert math.isclose(h["control"]["pose_mae_vs_control"], 0.15)
    assert "control" not in headline("p", {k: v for k, v in acc.items() if v.role != "control"})
    assert headline("p", {"float": f, "p": acc["p"]})["variant"] == "p"
