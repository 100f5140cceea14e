"""`make demo` end to end in quick mode: every stage runs and the report carries each section's numbers."""

import json
from pathlib import Path

import pytest

from atpn_edge.demo import run_demo


# The demo report's schema (docs/INTERFACES.md): scripts read these keys, so a refactor must keep them.
REPORT_KEYS = {"accuracy", "artifacts", "bench_rows", "compare", "host", "quick", "seconds", "stage_seconds",
               "test_set", "track", "train_config"}
ACCURACY_KEYS = {"auc_10", "box_iou", "face_score_acc", "fr_10", "measured_on", "n_images", "nme", "nme_drop_rel",
                 "pose_mae"}
RECIPE_ROW_KEYS = ACCURACY_KEYS | {"macs", "params", "pose_mae_axes", "real_n_images", "real_nme", "real_nme_drop_rel",
                                   "role"}
BENCH_ROW_KEYS = {"approximate", "auc_10", "error", "face_score_acc", "format", "fr_10", "gmacs_per_s", "group",
                  "latency_ms", "macs", "macs_converter", "macs_converter_source", "macs_diff_rel", "model", "n_images",
                  "nme", "nme_drop_rel", "notes", "params", "path", "peak_memory_mb", "peak_share", "pose_mae",
                  "pose_mae_detail", "real_fr_10", "real_n_images", "real_nme", "reference", "runtime", "size_bytes",
                  "status", "target", "threads", "variant"}


@pytest.mark.slow
def test_demo_quick_writes_the_full_report(tmp_path):
    report_md = run_demo(tmp_path / "demo", quick=True)
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    text = report_md.read_text()

    assert set(report["stage_seconds"]) == {"train_and_eval", "ptq", "export", "bench", "track", "compare"}
    assert REPORT_KEYS <= set(report), REPORT_KEYS - set(report)
    acc = report["accuracy"]
    for variant in ("float", "fp32_tflite", "fp32_onnx", "fp32_executorch"):
        assert set(acc[variant]) == ACCURACY_KEYS, variant
    assert set(acc["ptq_int8"]) == RECIPE_ROW_KEYS | {"simulated", "kept_in_float"}
    for variant in ("int8_tflite", "int8_onnx", "int8_executorch"):
        assert set(acc[variant]) == RECIPE_ROW_KEYS | {"artifact", "size_bytes", "route", "int8_check"}, variant
    for row in report["bench_rows"]:
        assert set(row) == BENCH_ROW_KEYS, (row["model"], set(row) ^ BENCH_ROW_KEYS)
    for variant in ("float", "int8_tflite", "int8_onnx", "int8_executorch", "fp32_tflite", "fp32_onnx", "fp32_executorch"):
        assert 0 < report["accuracy"][variant]["nme"] < 1, variant
    # the fp32 exports are the float model in another runtime: same accuracy to rounding
    for variant in ("fp32_tflite", "fp32_executorch"):
        assert abs(report["accuracy"][variant]["nme"] - report["accuracy"]["float"]["nme"]) < 1e-4, variant
    runtimes = {(r["variant"], r["runtime"]) for r in report["bench_rows"] if r.get("status", "ok") == "ok"}
    assert {("float", "litert"), ("int8", "litert"), ("float", "onnxruntime"), ("int8", "onnxruntime"),
            ("float", "executorch"), ("int8", "executorch")} <= runtimes
    compared = {(r["model"], r["variant"]) for r in report["compare"]["rows"]}
    assert {("atpn-lite", "float"), ("atpn-lite", "int8")} <= compared
    assert report["compare"]["budget"]["name"] == "smoke"
    for heading in ("## In short", "## Accuracy", "## Size and speed", "## Light models compared", "## Tracking"):
        assert heading in text, heading
    assert "LiteRT + XNNPACK, 1 thread, same run" in text
    for key in ("int8_tflite", "fp32_onnx", "fp32_pte", "int8_pte", "compare_md", "bench_json", "track_json"):
        assert Path(report["artifacts"][key]).is_file(), key
    assert (tmp_path / "demo" / "compare" / "compare_latency_nme.png").is_file()
