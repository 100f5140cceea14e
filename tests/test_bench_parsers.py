"""Parsers of benchmark tool output, on the real benchmark_litert_model text and the documented
benchmark_model / onnxruntime_perf_test formats (tests/fixtures/bench/README.md)."""

from pathlib import Path

import numpy as np
import pytest

from atpn_edge.bench.macs import parse_converter_estimate
from atpn_edge.bench.parsers import (
    ToolOutputError,
    parse_benchmark_model,
    parse_litert_benchmark,
    parse_onnxruntime_perf_test,
    parse_op_profile,
    parse_stat_line,
)
from atpn_edge.bench.report import pareto_front
from atpn_edge.bench.timing import summarize

FIXTURES = Path(__file__).parent / "fixtures" / "bench"


def test_benchmark_litert_model_real_output():
    result = parse_litert_benchmark((FIXTURES / "benchmark_litert_model.txt").read_text())
    assert result.median_ms == pytest.approx(1.38)
    assert result.avg_ms == pytest.approx(3.75)
    assert result.p95_ms == pytest.approx(9.53)
    assert result.min_ms == pytest.approx(1.26) and result.max_ms == pytest.approx(15.92)
    assert result.runs == 50
    assert result.init_ms == pytest.approx(29.12) and result.first_ms == pytest.approx(1.45)
    assert result.fully_delegated is True
    assert result.typical_ms == pytest.approx(1.38)


def test_benchmark_model_desktop_exponents_and_all_same():
    result = parse_benchmark_model((FIXTURES / "benchmark_model_desktop.txt").read_text())
    # the measured block (second count= line), microseconds -> ms
    assert result.runs == 1804
    assert result.median_ms == pytest.approx(0.548)
    assert result.max_ms == pytest.approx(1.2)  # 1.2e+03 us
    assert result.avg_ms == pytest.approx(0.5537)
    assert result.first_ms == pytest.approx(2950.0)  # 2.95e+06 us
    assert result.init_ms == pytest.approx(12.456)
    assert result.peak_memory_mb == pytest.approx(9.5) and result.init_memory_mb == pytest.approx(3.125)
    assert (result.delegated_nodes, result.total_nodes, result.partitions) == (71, 71, 1)
    assert result.fully_delegated is True


def test_benchmark_model_android_old_format_partial_delegation():
    result = parse_benchmark_model((FIXTURES / "benchmark_model_android_old.txt").read_text())
    assert result.median_ms is None  # older builds print no median: the average is the figure
    assert result.typical_ms == pytest.approx(2.1334)
    assert result.runs == 468
    assert result.peak_memory_mb == pytest.approx(18.4)
    assert result.partitions == 3 and result.fully_delegated is False
    assert result.extra["delegate"] == "TfLiteGpuDelegateV2"


def test_stat_line_all_same():
    values = parse_stat_line("INFO: count=1 curr=2.95e+06 (all same)")
    assert values["count"] == 1 and values["median"] == values["min"] == values["max"] == 2.95e6
    assert parse_stat_line("Initialized session in 3ms.") is None


def test_failed_tool_output_raises_with_its_error_line():
    text = "STARTING!\nERROR: Could not open '/data/local/tmp/x.tflite'.\nFailed to initialize the interpreter\n"
    with pytest.raises(ToolOutputError, match="Failed to initialize the interpreter"):
        parse_benchmark_model(text)
    with pytest.raises(ToolOutputError):
        parse_litert_benchmark("Traceback ...\nValueError: Could not open model")


def test_onnxruntime_perf_test():
    result = parse_onnxruntime_perf_test((FIXTURES / "onnxruntime_perf_test.txt").read_text())
    assert result.avg_ms == pytest.approx(0.412)
    assert result.median_ms == pytest.approx(0.405) and result.p90_ms == pytest.approx(0.433)
    assert result.runs == 1000
    assert result.peak_memory_mb == pytest.approx(50.0)


def test_converter_estimate_line():
    line = "I0000 00:00:1795582240.149374 13187 flatbuffer_export.cc:4410] Estimated count of arithmetic ops: 24.932 M  ops, equivalently 12.466 M  MACs"
    assert parse_converter_estimate(line) == 12_466_000
    assert parse_converter_estimate("Estimated count of arithmetic ops: 1.2 G  ops, equivalently 0.6 G  MACs") == 600_000_000
    assert parse_converter_estimate("nothing here") is None


def test_pareto_front_and_latency_summary():
    points = [(1.0, 5.0), (2.0, 4.0), (2.5, 4.5), (3.0, 3.0), (1.5, 6.0)]
    assert pareto_front(points) == [0, 1, 3]
    stats = summarize(list(range(1, 101)))
    assert stats.median_ms == pytest.approx(50.5) and stats.p90_ms == pytest.approx(90.1) and stats.runs == 100
    assert stats.min_ms == 1


def test_mediapipe_mapping():
    from atpn_edge.bench.mediapipe_peer import MESH468_TO_IBUG68, mesh_to_ibug68

    mesh = np.arange(468 * 2, dtype=np.float64).reshape(468, 2)
    ibug = mesh_to_ibug68(mesh)
    assert ibug.shape == (68, 2)
    assert np.allclose(ibug[36], mesh[33]) and np.allclose(ibug[45], mesh[263])  # outer eye corners (NME norm)
    assert np.allclose(ibug[3], (mesh[132] + mesh[58]) / 2)
    assert all(0 <= i < 468 for idx in MESH468_TO_IBUG68 for i in idx)


def test_op_profile_newer_layout_with_xnnpack_operators():
    text = (FIXTURES / "benchmark_model_op_profiling.txt").read_text()
    ops = parse_op_profile(text)
    # the Run Order table of the regular runs, not the initialization profile nor the sorted copies
    assert len(ops) == 10 and ops[0].op == "Convert (NC, F32, QS8)" and ops[0].inside_delegate
    conv = ops[1]
    assert conv.op == "Convolution (NHWC, QC8) IGEMM" and conv.name == "Delegate/Convolution (NHWC, QC8) IGEMM:1"
    assert conv.first_ms == pytest.approx(0.061) and conv.avg_ms == pytest.approx(0.052) and conv.node_index is None
    gemm = ops[3]
    assert gemm.times_called == 6 and gemm.percent == pytest.approx(12.513)
    exp = next(o for o in ops if o.op == "EXP")
    assert not exp.inside_delegate and exp.node_index == 57 and exp.name.startswith("[core/heatmap/exp;")
    assert not any(o.op in ("ModifyGraphWithDelegate", "AllocateTensors") for o in ops)
    # the same text still gives the latency, and the rows ride along
    result = parse_benchmark_model(text)
    assert result.median_ms == pytest.approx(0.302) and result.partitions == 2 and not result.fully_delegated
    assert [o.name for o in result.extra["op_profile"]] == [o.name for o in ops]


def test_op_profile_older_layout_with_start_column():
    ops = parse_op_profile((FIXTURES / "benchmark_model_op_profiling_old.txt").read_text())
    assert [o.op for o in ops] == ["QUANTIZE", "CONV_2D", "DEPTHWISE_CONV_2D", "TfLiteXNNPackDelegate", "LOGISTIC"]
    delegate = ops[3]
    assert delegate.first_ms == pytest.approx(0.811) and delegate.avg_ms == pytest.approx(0.655)
    assert delegate.node_index == 60 and delegate.name == "[atpn/backbone/stage3/5/add, atpn/landmark_head/fc]:60"
    assert sum(o.percent for o in ops) == pytest.approx(100, abs=0.01)


def test_op_profile_missing_is_an_error_naming_the_flag():
    with pytest.raises(ToolOutputError, match="enable_op_profiling"):
        parse_op_profile((FIXTURES / "benchmark_model_desktop.txt").read_text())
    assert "op_profile" not in parse_benchmark_model((FIXTURES / "benchmark_model_desktop.txt").read_text()).extra
