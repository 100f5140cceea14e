"""`make demo` end to end in quick mode: every stage runs and the report carries each section's numbers."""

import json
from pathlib import Path

import pytest

from atpn_edge.demo import run_demo


@pytest.mark.slow
def test_demo_quick_writes_the_full_report(tmp_path):
    report_md = run_demo(tmp_path / "demo", quick=True)
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    text = report_md.read_text()

    assert set(report["stage_seconds"]) == {"train_and_eval", "ptq", "export", "bench", "track", "compare"}
    for variant in ("float", "int8_tflite", "int8_onnx", "fp32_tflite", "fp32_onnx"):
        assert 0 < report["accuracy"][variant]["nme"] < 1, variant
    # the fp32 exports are the float model in another runtime: same accuracy to rounding
    assert abs(report["accuracy"]["fp32_tflite"]["nme"] - report["accuracy"]["float"]["nme"]) < 1e-4
    runtimes = {(r["variant"], r["runtime"]) for r in report["bench_rows"] if r.get("status", "ok") == "ok"}
    assert {("float", "litert"), ("int8", "litert"), ("float", "onnxruntime"), ("int8", "onnxruntime")} <= runtimes
    compared = {(r["model"], r["variant"]) for r in report["compare"]["rows"]}
    assert {("atpn-lite", "float"), ("atpn-lite", "int8")} <= compared
    assert report["compare"]["budget"]["name"] == "smoke"
    for heading in ("## In short", "## Accuracy", "## Size and speed", "## Light models compared", "## Tracking"):
        assert heading in text, heading
    assert "LiteRT + XNNPACK, 1 thread, same run" in text
    for key in ("int8_tflite", "fp32_onnx", "compare_md", "bench_json", "track_json"):
        assert Path(report["artifacts"][key]).is_file(), key
    assert (tmp_path / "demo" / "compare" / "compare_latency_nme.png").is_file()
