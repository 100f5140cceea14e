"""Per-block profiling: blocks named after the network's modules, prefixes that compute exactly what
the full graph computes, delegation read from the interpreter, ONNX Runtime's profiler mapped to
blocks, the adb operator table mapped to the local graph, and the CLI's outputs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from test_bench_targets import FIXTURES, fake_adb  # noqa: F401 - the fixture
from tiny_net import TinyNet
from atpn_edge.bench import profile as P
from atpn_edge.bench.parsers import parse_benchmark_model
from atpn_edge.bench.profile_report import blocks_table, write_profile_outputs
from atpn_edge.bench.timing import TimingConfig
from atpn_edge.compress.pt2e import QuantSpec, convert, prepare_ptq
from atpn_edge.export import export_model
from atpn_edge.models import build_model
from atpn_edge.runtime.base import preprocess

QUICK = TimingConfig(warmup_runs=3, runs_per_round=5, rounds=3, min_seconds_per_round=0.0)
ATPN_BLOCKS = {"backbone.stem", "backbone.stage1", "backbone.stage2", "backbone.stage3", "landmark_head"}


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 112, 112, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("profile")
    model = build_model("atpn-lite").eval()
    calib = _images(8, 0)
    x = torch.from_numpy(preprocess(calib))
    prepared = prepare_ptq(model, x[:1], QuantSpec())
    with torch.no_grad():
        for i in range(len(x)):
            prepared(x[i : i + 1])
    quantized = convert(prepared)
    return {
        "fp32": str(export_model(model, "tflite", "fp32", out / "lite_fp32.tflite", calib_images=calib).path),
        "int8": str(export_model(quantized, "tflite", "int8", out / "lite_int8.tflite", float_model=model,
                                 verify_images=calib).path),
        "onnx": str(export_model(model, "onnx", "fp32", out / "lite_fp32.onnx", calib_images=calib).path),
        "fp16": str(export_model(model, "tflite", "fp16", out / "lite_fp16.tflite", calib_images=calib).path),
    }


def test_module_paths_from_litert_names():
    name = "atpn_edge.ExportHead/atpn_edge.ATPN_core/atpn_edge.Backbone_backbone/torch.nn.Sequential_stage1/x.Block_0;17"
    assert P.module_path(name) == ("backbone", "stage1", "0")
    assert P.block_name(("backbone", "stage1", "0", "conv")) == "backbone.stage1"
    assert P.block_name(("landmark_head", "fc")) == "landmark_head"
    assert P.module_path("atpn_edge.ExportHead/;3") is None  # the export's own wrapper
    assert P.module_path("StatefulPartitionedCall:0") == ()


def test_blocks_of_the_int8_graph_and_one_partition(artifacts):
    content = open(artifacts["int8"], "rb").read()
    ops, _ = P.tflite_graph(content)
    blocks = P.block_order(ops)
    assert ATPN_BLOCKS <= set(blocks)
    assert blocks.index("backbone.stem") < blocks.index("backbone.stage1") < blocks.index("backbone.stage3")
    # every conv sits in a network block, none in the export's input/output handling
    convs = [op for op in ops if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    assert convs and all(op.block not in (P.INPUT_BLOCK, P.OUTPUT_BLOCK) for op in convs)
    partitions, outside = P.delegation(content, ops, threads=1)
    assert partitions == 1 and outside == []


def test_prefix_computes_what_the_full_graph_computes(artifacts):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    content = open(artifacts["fp32"], "rb").read()
    ops, _ = P.tflite_graph(content)
    blocks = P.block_order(ops)
    keep = P._with_ancestors(ops, {op.index for op in ops if op.block in blocks[: blocks.index("backbone.stage2") + 1]})
    assert len(keep) < len(ops)
    prefix = P.prefix_model(content, keep)
    image = np.random.default_rng(3).standard_normal((1, 112, 112, 3)).astype(np.float32)
    plain = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    full = Interpreter(model_content=content, experimental_op_resolver_type=plain, experimental_preserve_all_tensors=True)
    part = Interpreter(model_content=prefix, experimental_op_resolver_type=plain)
    for interpreter in (full, part):
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
        interpreter.invoke()
    outputs = part.get_output_details()
    assert outputs and len(part._get_ops_details()) == len(keep)
    for detail in outputs:  # the prefix's outputs are the full graph's tensors of the same index
        np.testing.assert_array_equal(part.get_tensor(detail["index"]), full.get_tensor(detail["index"]))


def test_delegation_names_an_op_xnnpack_leaves_out(tmp_path):
    class WithArgmax(TinyNet):
        def forward(self, x):
            out = super().forward(x)
            out["landmarks"] = out["landmarks"] + torch.argmax(out["landmarks"], dim=1, keepdim=True).float()
            return out

    torch.manual_seed(0)
    result = export_model(WithArgmax().eval(), "tflite", "fp32", tmp_path / "argmax.tflite", calib_images=_images(2, 0),
                          verify=False)
    content = open(result.path, "rb").read()
    ops, _ = P.tflite_graph(content)
    partitions, outside = P.delegation(content, ops, threads=1)
    assert "ARG_MAX" in [op.op for op in outside] and partitions >= 1
    assert not any(op.op == "CONV_2D" for op in outside)


def test_litert_profile_blocks_add_up_to_the_model(artifacts):
    fp32, int8 = P.profile_artifacts([artifacts["fp32"], artifacts["int8"]], threads=1, timing=QUICK)
    for p in (fp32, int8):
        assert p.runtime == "litert" and ATPN_BLOCKS <= set(p.block_ms())
        assert sum(p.block_ms().values()) == pytest.approx(p.total_ms, rel=0.35)
        assert p.total_ms > 0 and "prefix" in p.method
    assert (fp32.precision, int8.precision) == ("fp32", "int8")
    assert int8.partitions == 1 and int8.outside_delegate == []
    table = blocks_table([fp32, int8])
    assert "| backbone.stage1 |" in table and "speed-up lite_int8.tflite" in table and "**total**" in table


def test_fp16_and_dynamic_range_files_profile_too(artifacts, tmp_path):
    """fp16 and dynamic-range .tflite files keep weights after the flatbuffer (buffer offsets) and fp16 ones
    dequantize them in DEQUANTIZE ops: every prefix keeps those weights and never outputs a weight-only
    tensor, which XNNPACK refused to run (both files made `atpn-edge profile` fail)."""
    fp16_content = open(artifacts["fp16"], "rb").read()
    ops, _ = P.tflite_graph(fp16_content)
    assert any(op.op == "DEQUANTIZE" for op in ops)
    dynamic = export_model(build_model("atpn-lite").eval(), "tflite", "dynamic-int8", tmp_path / "lite_dyn.tflite",
                           calib_images=_images(4, 0)).path
    fp16, dyn = P.profile_artifacts([artifacts["fp16"], str(dynamic)], threads=1, timing=QUICK)
    assert (fp16.precision, dyn.precision) == ("fp16", "dynamic-int8")
    for p in (fp16, dyn):
        assert ATPN_BLOCKS <= set(p.block_ms()) and p.total_ms > 0
    assert fp16.partitions == 1


def test_onnx_profile_maps_kernels_to_blocks(artifacts):
    import onnx

    model = onnx.load(artifacts["onnx"])
    scoped = [n for n in model.graph.node if any(p.key == P.MODULE_SCOPE_KEY for p in n.metadata_props)]
    assert len(scoped) >= len(model.graph.node) // 2  # the export wrote module paths onto the nodes
    profile = P.profile_onnx(artifacts["onnx"], threads=1, timing=QUICK)
    assert profile.runtime == "onnxruntime" and ATPN_BLOCKS <= set(profile.block_ms())
    attributed = sum(k.ms for k in profile.kernels if k.block != "unattributed")
    assert attributed >= 0.8 * sum(k.ms for k in profile.kernels)
    assert sum(k.ms for k in profile.kernels) <= profile.total_ms * 1.05


def test_adb_operator_table_maps_to_local_blocks(artifacts, fake_adb, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.setenv("FAKE_ADB_REPLAY", str(FIXTURES / "benchmark_model_op_profiling.txt"))
    (profile,) = P.profile_on_device([artifacts["int8"]], fake_adb["binary"], None, threads=1)
    calls = fake_adb["log"].read_text()
    assert "--enable_op_profiling=true" in calls and "--use_xnnpack=true" in calls
    assert profile.partitions == 2 and profile.total_ms == pytest.approx(0.302)
    assert P.DELEGATE_BLOCK in profile.block_ms() and len(profile.kernels) == 10
    ops, _ = P.tflite_graph(open(artifacts["int8"], "rb").read())
    exp = next(k for k in profile.kernels if k.op == "EXP")
    assert exp.block == (ops[57].block if len(ops) > 57 else "unattributed")
    assert "EXP" in " ".join(profile.outside_delegate)
    files = write_profile_outputs([profile], {"cpu": "phone", "cpu_flags": []}, tmp_path)
    assert "Slowest ops" in open(files["md"]).read()


def test_profile_from_a_parsed_table_uses_node_indices(artifacts):
    ops, _ = P.tflite_graph(open(artifacts["int8"], "rb").read())
    stem = next(op for op in ops if op.block == "backbone.stem")
    text = (FIXTURES / "benchmark_model_op_profiling_old.txt").read_text().replace("]:1\n", f"]:{stem.index}\n")
    profile = P.profile_from_op_table(artifacts["int8"], parse_benchmark_model(text), threads=4, delegate="xnnpack")
    conv = next(k for k in profile.kernels if k.op == "CONV_2D")
    assert conv.block == "backbone.stem" and conv.ms == pytest.approx(0.201)


def test_cli_profile_writes_json_markdown_png(artifacts, tmp_path):
    out = tmp_path / "prof"
    cmd = [sys.executable, "-m", "atpn_edge.cli", "profile", artifacts["fp32"], artifacts["int8"], "--rounds", "2",
           "--runs", "3", "--warmup", "2", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads((out / "profile.json").read_text())
    assert [p["precision"] for p in data["profiles"]] == ["fp32", "int8"]
    assert data["host"]["cpu_flags"] is not None and (out / "profile.png").stat().st_size > 1000
    assert "| backbone.stem |" in (out / "profile.md").read_text() and "backbone.stem" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "atpn_edge.cli", "profile", str(tmp_path / "missing.tflite")],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "missing.tflite: no such file" in bad.stderr and "Traceback" not in bad.stderr
