"""Runtime adapters: LiteRT and ONNX Runtime return the same named outputs as PyTorch, read the
artifact's metadata, never import torch, and turn bad --runtime / --model values into one-line errors."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from tiny_net import ALL_OUTPUTS, TinyNet
from atpn_edge.errors import UserError
from atpn_edge.export import export_model
from atpn_edge.runtime._common import map_output_names
from atpn_edge.predictors import open_predictor
from atpn_edge.runtime.loader import load_predictor
from atpn_edge.train.predict import TorchPredictor

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return TinyNet(points=7, outputs=ALL_OUTPUTS, batchnorm=False, pose_scale=30.0).eval()


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(3).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def artifacts(tiny, tmp_path_factory):
    folder = tmp_path_factory.mktemp("runtime")
    return {
        "tflite": export_model(tiny, "tflite", "fp32", folder / "tiny.tflite", nhwc=False).path,
        "tflite_nhwc": export_model(tiny, "tflite", "fp32", folder / "tiny_nhwc.tflite", nhwc=True).path,
        "onnx": export_model(tiny, "onnx", "fp32", folder / "tiny.onnx").path,
    }


@pytest.mark.parametrize("kind,runtime", [("tflite", "litert"), ("tflite_nhwc", None), ("onnx", "onnxruntime")])
def test_adapters_match_pytorch(tiny, artifacts, images, kind, runtime):
    predictor = load_predictor(artifacts[kind], runtime=runtime, threads=1)
    want = TorchPredictor(tiny).predict(images)
    got = predictor.predict(images)
    assert predictor.outputs == ("landmarks", "pose", "face_score", "face_box")
    assert predictor.num_landmarks == 7
    for name in predictor.outputs:
        assert got[name].shape == want[name].shape and got[name].dtype == np.float32
        np.testing.assert_allclose(got[name], want[name], atol=1e-4 if name != "pose" else 1e-3)
    assert np.all((got["face_score"] > 0) & (got["face_score"] < 1))


def test_nhwc_layout_read_from_sidecar(artifacts):
    predictor = load_predictor(artifacts["tflite_nhwc"])
    assert predictor.layout == "NHWC" and predictor.runtime == "litert"
    assert json.load(open(str(artifacts["tflite_nhwc"]) + ".json"))["layout"] == "NHWC"


def test_adapters_do_not_import_torch(artifacts):
    code = (
        "import sys, numpy as np\n"
        "from atpn_edge.runtime.loader import load_predictor\n"
        f"for path in {[str(artifacts['tflite']), str(artifacts['onnx'])]!r}:\n"
        "    out = load_predictor(path).predict(np.zeros((2, 112, 112, 3), np.uint8))\n"
        "    assert out['landmarks'].shape == (2, 7, 2)\n"
        "bad = [m for m in ('torch', 'litert_torch') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_torch_predictor_from_checkpoint_and_graph(tmp_path, images):
    from atpn_edge.compress.pt2e import QuantizedModel, convert, prepare_ptq
    from atpn_edge.models import build_model
    from atpn_edge.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = build_model("atpn-lite").eval()
    save_checkpoint(tmp_path / "m.pt", model)
    predictor = open_predictor(tmp_path / "m.pt")
    assert predictor.runtime == "torch"
    got = predictor.predict(images)
    want = TorchPredictor(model).predict(images)
    np.testing.assert_allclose(got["landmarks"], want["landmarks"], atol=1e-6)

    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (2, 3, 112, 112)).astype(np.float32))
    prepared = prepare_ptq(model, x[:1])
    prepared(x[:1])
    prepared(x[1:])
    quantized = TorchPredictor(QuantizedModel(convert(prepared))).predict(images)
    diff = np.abs(quantized["landmarks"] - want["landmarks"]).max()
    assert 0 < diff < 0.02


def test_bad_runtime_and_model_are_one_line_errors(artifacts, tmp_path):
    with pytest.raises(UserError, match="unknown runtime"):
        load_predictor(artifacts["tflite"], runtime="tensorrt")
    with pytest.raises(UserError, match="cannot run a .onnx"):
        load_predictor(artifacts["onnx"], runtime="litert")
    with pytest.raises(UserError, match="unknown model file type"):
        load_predictor(tmp_path / "m.bin")
    with pytest.raises(UserError, match="no such file"):
        load_predictor(tmp_path / "missing.tflite")
    with pytest.raises(UserError, match="threads"):
        load_predictor(artifacts["onnx"], threads=0)
    if importlib.util.find_spec("tflite_runtime") is None:
        with pytest.raises(UserError, match="tflite-runtime is not installed"):
            load_predictor(artifacts["tflite"], runtime="tflite-runtime")
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a flatbuffer")
    with pytest.raises(UserError, match="cannot load"):
        load_predictor(broken)


def test_output_names_mapped_by_name_order_or_shape():
    by_name = map_output_names(["serving_default_pose:0", "landmarks"], [(1, 3), (1, 98, 2)], {})
    assert by_name == {"serving_default_pose:0": "pose", "landmarks": "landmarks"}
    by_order = map_output_names(["output_0", "output_1"], [(1, 4), (1, 3)], {"output_names": ["face_box", "pose"]})
    assert by_order == {"output_0": "face_box", "output_1": "pose"}
    by_shape = map_output_names(["a", "b", "c", "d"], [(1, 68, 2), (1, 3), (1,), (1, 4)], {})
    assert by_shape == {"a": "landmarks", "b": "pose", "c": "face_score", "d": "face_box"}
    with pytest.raises(UserError, match="cannot tell"):
        map_output_names(["x"], [(1, 17)], {})


@pytest.mark.parametrize("kind", ["tflite", "tflite_nhwc", "onnx"])
def test_inference_call_runs_the_same_model_on_the_same_input(artifacts, images, kind):
    """bench times inference_call (the runtime's inference alone, input already in place): it must be
    the model predict() runs, on the crop it was given, in the right layout."""
    from atpn_edge.runtime.base import preprocess

    predictor = load_predictor(artifacts[kind], threads=1)
    x = preprocess(images[1:2])
    call = predictor.inference_call(x)
    want = predictor.run_normalized(x)["landmarks"]
    call()
    if kind == "onnx":  # functools.partial(session.run_with_iobinding, binding)
        raw = dict(zip(predictor.raw_names, call.args[0].copy_outputs_to_cpu()))
    else:  # the bare Interpreter.invoke of a second interpreter
        interpreter = call.__self__
        raw = {d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}
    got = [v.reshape(want.shape) for v in raw.values() if v.size == want.size]
    assert len(got) == 1
    np.testing.assert_allclose(got[0], want, atol=1e-6)


def test_torch_inference_call_matches_predict(tiny, images):
    from atpn_edge.runtime.base import preprocess

    predictor = TorchPredictor(tiny)
    x = preprocess(images[:1])
    out = predictor.inference_call(x)()
    np.testing.assert_allclose(out["landmarks"].numpy(), predictor.predict(images[:1])["landmarks"], atol=1e-6)
