"""Export: each format x precision converts, runs in its own runtime and matches PyTorch; int8 is
really int8 (and a fake-quant float graph is caught); failures leave nothing under the final name."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from crops import torch_outputs
from tiny_net import TinyNet
from atpn_edge.compress.pt2e import QuantizedModel, QuantSpec, convert, prepare_ptq
from atpn_edge.errors import UserError
from atpn_edge.export import export_model
from atpn_edge.export import onnx as onnx_export
from atpn_edge.export import tflite as tflite_export
from atpn_edge.export import verify as V
from atpn_edge.runtime.base import preprocess
from atpn_edge.runtime.litert import LiteRTPredictor
from atpn_edge.runtime.onnx import OnnxPredictor

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return TinyNet().eval()


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("export")


@pytest.fixture(scope="module")
def lite_fp32_tflite(lite_model, calib, out_dir):
    return export_model(lite_model, "tflite", "fp32", out_dir / "lite_fp32.tflite", calib_images=calib)


@pytest.fixture(scope="module")
def lite_int8_tflite(lite_quantized, lite_model, out_dir, calib):
    return export_model(lite_quantized, "tflite", "int8", out_dir / "lite_int8.tflite", float_model=lite_model,
                        verify_images=calib)


def test_tflite_fp32_matches_pytorch(lite_model, lite_fp32_tflite, held_out):
    result = lite_fp32_tflite
    assert result.verification["ok"]
    assert result.verification["parity"]["pytorch"]["landmarks"]["max_abs"] <= 1e-4
    predictor = LiteRTPredictor(result.path)
    got = predictor.predict(held_out)
    want = torch_outputs(lite_model, held_out)
    for name in ("landmarks", "pose", "face_box", "face_score"):
        np.testing.assert_allclose(got[name], want[name], atol=1e-4 if name != "pose" else 1e-3)
    assert result.verification["ops"].get("CONV_2D", 0) > 10


def test_tflite_sidecar_and_report(lite_fp32_tflite):
    sidecar = json.loads(open(str(lite_fp32_tflite.path) + ".json").read())
    assert sidecar["output_names"] == ["landmarks", "pose", "face_score", "face_box"]
    # a .tflite is channels-last by default (no TRANSPOSE at its input)
    assert sidecar["layout"] == "NHWC" and sidecar["channel_order"] == "RGB"
    assert sidecar["input_shape"] == [1, 112, 112, 3]
    assert sidecar["normalisation"]["mean"] == 0.5 and sidecar["normalisation"]["std"] == 0.5
    assert sidecar["landmark_scheme"] == "wflw98" and sidecar["model_name"] == "atpn-lite"
    assert {o["name"] for o in sidecar["io"]["outputs"]} == {"landmarks", "pose", "face_score", "face_box"}
    report = json.loads(open(str(lite_fp32_tflite.path) + ".verify.json").read())
    assert report["ok"] and report["parity"]["pytorch"]["landmarks"]["max_abs"] <= 1e-4


def test_tflite_int8_is_fully_int8_and_matches_quantized_pytorch(lite_int8_tflite, lite_fp32_tflite, lite_quantized, lite_model,
                                                                held_out):
    result = lite_int8_tflite
    int8 = result.verification["int8"]
    # by default the conv that reads the image stays float (QuantSpec.float_input_conv): exactly one
    assert int8["ok"] and int8["float_compute_ops"] == ["CONV_2D(float32, float32)"] and not int8["fake_quant_pairs"]
    assert int8["float_compute_allowed"] == 1
    ops = V.tflite_ops(str(result.path))
    conv_ops = [op for op in ops if op["op"] in V.COMPUTE_OPS]
    assert conv_ops[0]["input_dtypes"][:2] == ["float32", "float32"]
    assert len(conv_ops) > 10 and all(op["input_dtypes"][:2] == ["int8", "int8"] for op in conv_ops[1:])
    assert not V.tflite_int8_check(ops)["ok"]  # one float conv is too many for a check that allows none
    predictor = LiteRTPredictor(result.path)
    # float32 input into the float conv, then int8 to the outputs: one QUANTIZE after the input conv
    assert predictor.input_detail["dtype"] == np.float32 and predictor.layout == "NHWC"
    assert not result.metadata["int8_io"] and "float32" in result.metadata["input_encoding"]
    assert V.op_histogram(ops).get("DEQUANTIZE", 0) <= 1  # at most the face logit before its float sigmoid
    first_quantize = next(i for i, op in enumerate(ops) if op["op"] == "QUANTIZE")
    assert ops[first_quantize - 1]["op"] == "CONV_2D" and "TRANSPOSE" not in [op["op"] for op in ops[:3]]
    got = predictor.predict(held_out)
    simulated = torch_outputs(QuantizedModel(lite_quantized), held_out)
    floating = torch_outputs(lite_model, held_out)
    # The LiteRT int8 kernels and the PT2E simulation round the same way up to ~1 output step.
    step = 0.01
    assert np.abs(got["landmarks"] - simulated["landmarks"]).max() < step
    assert np.abs(got["landmarks"] - floating["landmarks"]).max() < 0.02
    assert result.size_bytes < 0.5 * lite_fp32_tflite.size_bytes


def _tiny_quantized(tiny, calib, spec=QuantSpec(float_input_conv=False)):
    x = torch.from_numpy(preprocess(calib))
    prepared = prepare_ptq(tiny, x[:1], spec)
    for i in range(len(x)):
        prepared(x[i : i + 1])
    return convert(prepared)


def test_tflite_int8_io_nhwc(tiny, out_dir, calib, held_out):
    quantized = _tiny_quantized(tiny, calib)
    result = export_model(quantized, "tflite", "int8", out_dir / "tiny_int8_io.tflite", int8_io=True, nhwc=True)
    predictor = LiteRTPredictor(result.path)
    assert predictor.layout == "NHWC" and predictor.input_detail["dtype"] == np.int8
    assert tuple(predictor.input_detail["shape"]) == (1, 112, 112, 3)
    # the input quantization is fixed, whatever the calibration saw: a board feeds pixel - 128
    inputs = result.metadata["io"]["inputs"][0]
    assert inputs["scale"] == pytest.approx(1 / 127.5) and inputs["zero_point"] == 0
    assert "pixel - 128" in result.metadata["input_encoding"]
    assert result.verification["int8"]["ok"]
    got = predictor.predict(held_out)
    simulated = torch_outputs(QuantizedModel(quantized), held_out)
    scale = max(o["scale"] or 0 for o in result.metadata["io"]["outputs"])
    assert np.abs(got["landmarks"] - simulated["landmarks"]).max() <= 2 * scale + 1e-6
    assert np.abs(got["face_score"] - simulated["face_score"]).max() <= 0.02  # the int8 logit, through a sigmoid
    # raw pixels - 128 straight into the interpreter give the adapter's answer within one input step
    runner = predictor.runner
    raw = runner(**{predictor.input_name: (held_out[:1].astype(np.int16) - 128).astype(np.int8)})
    landmarks_raw = next(k for k, v in predictor.output_map.items() if v == "landmarks")
    lq = predictor.output_quant[landmarks_raw]
    direct = (raw[landmarks_raw].astype(np.float32) - lq[1]) * lq[0]
    assert np.abs(direct - got["landmarks"][:1]).max() <= 3 * lq[0] + 1e-6


def test_tflite_float_io_keeps_float_tensors(tiny, out_dir, calib):
    result = export_model(_tiny_quantized(tiny, calib), "tflite", "int8", out_dir / "tiny_float_io.tflite",
                          int8_io=False, nhwc=False)
    predictor = LiteRTPredictor(result.path)
    assert predictor.input_detail["dtype"] == np.float32 and predictor.layout == "NCHW"
    assert result.verification["int8"]["ok"] and not result.metadata["int8_io"]


def test_fake_quant_graph_is_caught(tiny, out_dir):
    x = torch.rand(1, 3, 112, 112) * 2 - 1
    prepared = prepare_ptq(tiny, x, QuantSpec(observer="minmax", float_input_conv=False))
    prepared(x)
    quantized = convert(prepared)
    names = ("landmarks", "pose", "face_logit")
    # Without QuantConfig the converter keeps q/dq as float fake-quant ops around float convs.
    fake = tflite_export.convert_pt2e(quantized, names, x, select_int8_lowering=False)
    real = tflite_export.convert_pt2e(quantized, names, x)
    paths = {}
    for label, data in (("fake", fake), ("real", real)):
        paths[label] = out_dir / f"tiny_{label}.tflite"
        paths[label].write_bytes(data)
    fake_check = V.tflite_int8_check(V.tflite_ops(str(paths["fake"])))
    real_check = V.tflite_int8_check(V.tflite_ops(str(paths["real"])))
    assert not fake_check["ok"]
    assert any(op.startswith("CONV_2D(float32") for op in fake_check["float_compute_ops"])
    assert "CONV_2D" in fake_check["fake_quant_pairs"] or fake_check["num_dequantize"] > 5
    assert real_check["ok"], real_check


def test_mixed_precision_int8_allows_exactly_the_float_layers_it_keeps(tiny, out_dir, calib, held_out):
    """A recipe that keeps `block` (three convs) in float exports and verifies; the check allows those
    three float convs and no more, and the rest of the graph stays int8."""
    x = torch.from_numpy(preprocess(calib))
    spec = QuantSpec(observer="minmax", skip_modules=("block",), float_input_conv=False)
    prepared = prepare_ptq(tiny, x[:1], spec)
    for i in range(len(x)):
        prepared(x[i : i + 1])
    quantized = convert(prepared)
    result = export_model(quantized, "tflite", "int8", out_dir / "tiny_mixed.tflite", float_model=tiny, quant_spec=spec)
    check = result.verification["int8"]
    assert check["ok"] and check["float_compute_allowed"] == 3
    assert 1 <= len(check["float_compute_ops"]) <= 3 and check["int8_compute_ops"] >= 2  # stem conv + head FC
    got = LiteRTPredictor(result.path).predict(held_out)
    assert np.abs(got["landmarks"] - torch_outputs(QuantizedModel(quantized), held_out)["landmarks"]).max() < 0.05
    # the same graph judged as fully int8 fails
    assert not V.tflite_int8_check(V.tflite_ops(str(result.path)))["ok"]


@pytest.mark.parametrize("precision,tol", [("fp16", 5e-3), ("dynamic-int8", 5e-2)])
def test_tflite_lossy_float_precisions(tiny, out_dir, held_out, precision, tol):
    result = export_model(tiny, "tflite", precision, out_dir / f"tiny_{precision}.tflite")
    got = LiteRTPredictor(result.path).predict(held_out)
    want = torch_outputs(tiny, held_out)
    assert np.abs(got["landmarks"] - want["landmarks"]).max() < tol
    assert result.verification["parity"]["float"]["landmarks"]["max_abs"] < tol
    assert result.metadata["quantization"]["quantizer"] == "ai-edge-quantizer"


def test_tflite_int8_ai_edge_quantizer_route(tiny, out_dir, calib, held_out):
    result = export_model(tiny, "tflite", "int8", out_dir / "tiny_aeq.tflite", calib_images=calib,
                          quantizer="ai-edge-quantizer")
    assert result.verification["int8"]["ok"], result.verification["int8"]
    got = LiteRTPredictor(result.path).predict(held_out)
    assert np.abs(got["landmarks"] - torch_outputs(tiny, held_out)["landmarks"]).max() < 0.05


def test_onnx_fp32_and_int8(lite_model, out_dir, calib, held_out):
    import onnx

    fp32 = export_model(lite_model, "onnx", "fp32", out_dir / "lite_fp32.onnx")
    proto = onnx.load(str(fp32.path))
    assert [o.name for o in proto.graph.output] == ["landmarks", "pose", "face_score", "face_box"]
    assert proto.opset_import[0].version >= 17
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["atpn_edge"])["precision"] == "fp32"
    want = torch_outputs(lite_model, held_out)
    got = OnnxPredictor(fp32.path).predict(held_out)
    assert np.abs(got["landmarks"] - want["landmarks"]).max() <= 1e-4

    int8 = export_model(lite_model, "onnx", "int8", out_dir / "lite_int8.onnx", calib_images=calib)
    check = int8.verification["int8"]
    # the input conv stays float here too (QuantSpec.float_input_conv), and only it
    assert check["ok"] and len(check["float_compute_ops"]) == check["float_compute_allowed"] == 1
    assert int8.verification["ops"]["QuantizeLinear"] > 10
    first_conv = next(n for n in onnx.load(str(int8.path)).graph.node if n.op_type == "Conv")
    assert first_conv.name in check["float_compute_ops"]
    assert not onnx_export.int8_check(str(int8.path))["ok"]  # judged as fully int8 it fails
    predictor8 = OnnxPredictor(int8.path)
    got8 = predictor8.predict(held_out)
    diff = np.abs(got8["landmarks"] - want["landmarks"]).max()
    assert 1e-6 < diff < 0.02  # quantized (not identical), and close
    # untrained, the network's face score is one value on every input: ORT's percentile histogram cannot
    # bin it, and the export falls back to MinMax and says so
    assert predictor8.metadata["quantization"]["calibration"] == "minmax"


def test_onnx_int8_keeps_a_recipes_float_modules_float(tiny, out_dir, calib):
    """skip_modules reaches ORT's quantizer too: the module's convs stay float, the rest int8, the check allows them."""
    import onnx

    spec = QuantSpec(observer="minmax", skip_modules=("block",), float_input_conv=False)
    result = export_model(tiny, "onnx", "int8", out_dir / "tiny_mixed.onnx", calib_images=calib, quant_spec=spec)
    check = result.verification["int8"]
    assert check["ok"] and check["float_compute_allowed"] == 3 and len(check["float_compute_ops"]) == 3
    graph = onnx.load(str(result.path)).graph
    producers = {o: n for n in graph.node for o in n.output}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert producers[convs[0].input[0]].op_type == "DequantizeLinear"  # the stem: int8
    assert sum(producers.get(n.input[1]) is None for n in convs) == 3  # block's three convs: float weights


def test_onnx_int8_calibration_follows_the_observer(tiny, out_dir, calib, held_out):
    import onnx
    import onnx.numpy_helper

    paths = {}
    for observer, method in (("histogram", "percentile"), ("minmax", "minmax")):
        result = export_model(tiny, "onnx", "int8", out_dir / f"tiny_{observer}.onnx", calib_images=calib,
                              quant_spec=QuantSpec(observer=observer))
        predictor = OnnxPredictor(result.path)
        assert predictor.metadata["quantization"]["calibration"] == method
        got = predictor.predict(held_out)
        assert np.abs(got["landmarks"] - torch_outputs(tiny, held_out)["landmarks"]).max() < 0.05
        paths[observer] = result.path
    scales = [{i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(p)).graph.initializer if i.name.endswith("_scale")}
              for p in paths.values()]
    # percentile clips the calibration range: some activation scale is smaller than MinMax's
    assert any(scales[0][k].size == 1 and scales[0][k] < scales[1][k] * 0.999 for k in scales[0] if k in scales[1])


def test_bad_requests_are_user_errors(tiny, tmp_path):
    with pytest.raises(UserError, match="unknown export format"):
        export_model(tiny, "coreml", "fp32", tmp_path / "m.mlmodel")
    with pytest.raises(UserError, match="not available"):
        export_model(tiny, "onnx", "fp16", tmp_path / "m.onnx")
    with pytest.raises(UserError, match="does not exist"):
        export_model(tiny, "onnx", "fp32", tmp_path / "missing" / "m.onnx")
    with pytest.raises(UserError, match="calib_images"):
        export_model(tiny, "onnx", "int8", tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_failed_verification_leaves_nothing(tiny, tmp_path, monkeypatch):
    target = tmp_path / "tiny.onnx"
    target.write_bytes(b"previous artifact")
    monkeypatch.setattr(V, "FLOAT_LANDMARK_TOL", -1.0)  # every parity check now fails
    with pytest.raises(V.VerificationError, match="landmarks differ"):
        export_model(tiny, "onnx", "fp32", target)
    assert target.read_bytes() == b"previous artifact"  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.onnx"]


def test_converter_failure_is_one_line_user_error(tmp_path):
    class Unconvertible(TinyNet):
        def forward(self, x):
            out = super().forward(x)
            out["landmarks"] = torch.linalg.svd(out["landmarks"])[0]  # no TFLite builtin for SVD
            return out

    torch.manual_seed(0)
    with pytest.raises(UserError) as error:
        export_model(Unconvertible().eval(), "tflite", "fp32", tmp_path / "bad.tflite")
    assert "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_a_pose_mismatch_fails_verification_too(tiny, tmp_path, monkeypatch):
    """Every output is checked, not only the landmarks: a pose off by more than its tolerance fails."""
    monkeypatch.setitem(V.OTHER_OUTPUT_TOL, "fp32", {**V.OTHER_OUTPUT_TOL["fp32"], "pose": (-1.0, -1.0)})
    with pytest.raises(V.VerificationError, match="pose differ"):
        export_model(tiny, "onnx", "fp32", tmp_path / "tiny.onnx")
    assert list(tmp_path.iterdir()) == []
