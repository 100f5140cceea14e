"""ExecuTorch (.pte): fp32 and the PT2E int8 program lowered to one XNNPACK delegate, run in ExecuTorch's
runtime and compared with PyTorch on the same inputs."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from crops import torch_outputs
from atpn_edge.compress.pt2e import QuantizedModel
from atpn_edge.errors import UserError
from atpn_edge.export import executorch as et
from atpn_edge.export import export_model
from atpn_edge.export.executorch_predictor import ExecuTorchPredictor
from atpn_edge.predictors import open_predictor
from atpn_edge.runtime.base import preprocess
from atpn_edge.runtime.loader import load_predictor

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("pte")


@pytest.fixture(scope="module")
def fp32_pte(lite_model, out_dir, calib):
    return export_model(lite_model, "executorch", "fp32", out_dir / "lite_fp32.pte", verify_images=calib)


@pytest.fixture(scope="module")
def int8_pte(lite_quantized, lite_model, out_dir, calib):
    return export_model(lite_quantized, "executorch", "int8", out_dir / "lite_int8.pte", float_model=lite_model,
                        verify_images=calib)


def test_fp32_pte_matches_pytorch_in_one_delegate(lite_model, fp32_pte, held_out):
    report = fp32_pte.verification
    assert report["ok"] and report["runtime"] == "executorch"
    assert report["parity"]["pytorch"]["landmarks"]["max_abs"] <= 1e-4
    assert report["xnnpack_delegates"] == 1 and report["outside_delegate"] == {}
    predictor = open_predictor(fp32_pte.path)
    assert isinstance(predictor, ExecuTorchPredictor) and predictor.outputs == ("landmarks", "pose", "face_score", "face_box")
    got, want = predictor.predict(held_out), torch_outputs(lite_model, held_out)
    for name in ("landmarks", "face_box", "face_score"):
        np.testing.assert_allclose(got[name], want[name], atol=1e-4)
    np.testing.assert_allclose(got["pose"], want["pose"], atol=1e-3)
    sidecar = json.loads(open(str(fp32_pte.path) + ".json").read())
    assert sidecar["format"] == "executorch" and sidecar["layout"] == "NCHW" and sidecar["macs"] > 0
    # float compute everywhere: the same lowering fails an int8 check
    _, lowering = et.lower_float(lite_model, ("landmarks", "pose", "face_logit", "face_box"), torch.zeros(1, 3, 112, 112))
    assert not et.int8_check(lowering)["ok"]


def test_int8_pte_is_int8_in_one_delegate_and_matches_the_pt2e_program(int8_pte, fp32_pte, lite_quantized, lite_model, held_out):
    report = int8_pte.verification
    int8 = report["int8"]
    # one XNNPACK delegate, nothing in the portable kernels; only the input conv float (QuantSpec default)
    assert int8["ok"] and int8["delegates"] == 1 and int8["outside_delegate"] == {}
    assert int8["float_compute_ops"] == ["aten.convolution.default"] and int8["float_compute_allowed"] == 1
    assert int8["int8_compute_ops"] > 20
    # the heatmap's max over each of its five part groups and the attention gate's max over the parts, as max-pools
    assert report["ops"]["aten.max_pool2d.default"] == 6
    got = open_predictor(int8_pte.path).predict(held_out)
    simulated = torch_outputs(QuantizedModel(lite_quantized), held_out)
    floating = torch_outputs(lite_model, held_out)
    assert np.abs(got["landmarks"] - simulated["landmarks"]).max() < 0.01  # ~1 int8 output step
    assert np.abs(got["landmarks"] - floating["landmarks"]).max() < 0.03
    assert int8_pte.size_bytes < 0.5 * fp32_pte.size_bytes


def test_rewrites_for_xnnpack_change_no_value(lite_quantized, held_out):
    """The PT2E program after the op rewrites and the requantized same-scale inputs gives the same outputs."""
    x = torch.from_numpy(preprocess(held_out))
    original = copy.deepcopy(lite_quantized)
    rewritten = et.shared_input_scales(et.xnnpack_ops(copy.deepcopy(lite_quantized)))
    targets = {str(n.target) for n in rewritten.graph.nodes if n.op == "call_function"}
    assert not any(name in t for t in targets for name in ("amax", "unsqueeze", "select", "detach"))
    for i in range(len(x)):
        want, got = original(x[i : i + 1]), rewritten(x[i : i + 1])
        for a, b in zip(want, got):
            assert torch.equal(a, b)


def test_int8_pte_from_a_float_model_runs_ptq(lite_model, out_dir, calib):
    result = export_model(lite_model, "executorch", "int8", out_dir / "ptq.pte", calib_images=calib)
    assert result.verification["int8"]["ok"] and result.metadata["quantization"]["quantizer"] == "pt2e-xnnpack"
    assert result.metadata["quantization"]["calibration_images"] == len(calib)


def test_bad_requests_and_files_are_one_line_errors(lite_model, lite_quantized, tmp_path):
    with pytest.raises(UserError, match="not available"):
        export_model(lite_model, "executorch", "fp16", tmp_path / "m.pte")
    with pytest.raises(UserError, match="must end in .pte"):
        export_model(lite_model, "executorch", "fp32", tmp_path / "m.tflite")
    with pytest.raises(UserError, match="PT2E program only"):
        export_model(lite_model, "executorch", "int8", tmp_path / "m.pte", quantizer="ai-edge-quantizer")
    with pytest.raises(UserError, match="exports only to tflite or executorch int8"):
        export_model(lite_quantized, "executorch", "fp32", tmp_path / "m.pte")
    assert list(tmp_path.iterdir()) == []
    broken = tmp_path / "broken.pte"
    broken.write_bytes(b"not a program")
    with pytest.raises(UserError, match="ExecuTorch cannot load"):
        open_predictor(broken)
    with pytest.raises(UserError, match="needs torch"):
        load_predictor(broken)  # the torch-free loader names the way in
    with pytest.raises(UserError, match="cannot run a .pte"):
        open_predictor(broken, runtime="litert")
