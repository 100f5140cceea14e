"""Models: output contract, options, budgets, counting, the heatmap, the switches, export."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from atpn_edge.data.schemes import flip_normalised
from atpn_edge.errors import UserError
from atpn_edge.models import (
    MODEL_NAMES,
    build_model,
    count_params_and_macs,
    landmark_regressor,
    landmark_template,
    model_summary,
    select_heads,
    set_landmark_template,
)
from atpn_edge.models.heatmap import CheapHeatmap

torch.set_num_threads(1)

EXPECTED_KEYS = {"landmarks": {"landmarks"}, "pose": {"pose"}, "tracking": {"face_logit", "face_box"}}


def _input(batch: int = 2, size: int = 112, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _check_shapes(out: dict[str, torch.Tensor], heads, batch: int, points: int) -> None:
    assert set(out) == set().union(*(EXPECTED_KEYS[h] for h in heads))
    shapes = {"landmarks": (batch, points, 2), "pose": (batch, 3), "face_logit": (batch,), "face_box": (batch, 4)}
    for key, value in out.items():
        assert tuple(value.shape) == shapes[key], key
        assert value.dtype == torch.float32 and torch.isfinite(value).all()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_returns_its_heads(name):
    model = build_model(name).eval()
    with torch.no_grad():
        out = model(_input())
    _check_shapes(out, model.options["heads"], 2, 98)
    # The template bias puts the untrained prediction on a mean face, inside the crop.
    assert 0.1 < out["landmarks"].min() and out["landmarks"].max() < 0.9
    assert (out["landmarks"] - torch.from_numpy(landmark_template(98))).abs().max() < 0.15
    assert out["pose"].abs().max() < 90


@pytest.mark.parametrize(
    "heads", [["landmarks"], ["pose"], ["tracking"], ["landmarks", "pose"], ["pose", "tracking"], ["landmarks", "tracking"]]
)
def test_atpn_head_subsets_and_68_points(heads):
    model = build_model("atpn", heads=heads, num_landmarks=68, width=0.5).eval()
    with torch.no_grad():
        _check_shapes(model(_input()), heads, 2, 68)


def test_options_rebuild_the_same_model_and_are_json():
    model = build_model("atpn-lite", shortcut=False, heads=("pose", "landmarks"), num_landmarks=68)
    assert model.name == "atpn-lite"
    assert model.options["heads"] == ["landmarks", "pose"]  # canonical order
    options = json.loads(json.dumps(model.options))
    rebuilt = build_model(model.name, **options)
    a, b = model.state_dict(), rebuilt.state_dict()
    assert list(a) == list(b) and all(a[k].shape == b[k].shape for k in a)
    assert build_model("pfld-0.25").options["width"] == 0.25


@pytest.mark.parametrize(
    "name, options, fragment",
    [
        ("resnet", {}, "valid names: atpn, atpn-lite"),
        ("atpn", {"dropout": 0.1}, "valid options"),
        ("pfld-1.0", {"shortcut": False}, "unknown option"),
        ("atpn", {"heads": ["landmarks", "gaze"]}, "heads"),
        ("mobilenetv2", {"heads": ["tracking"]}, "heads"),
        ("atpn", {"heads": []}, "heads"),
        ("atpn", {"num_landmarks": 5}, "num_landmarks"),
        ("atpn", {"input_size": 100}, "input_size"),
        ("atpn", {"shortcut": "no"}, "shortcut"),
        ("atpn", {"heatmap_channels": "all"}, "heatmap_channels"),
    ],
)
def test_bad_names_and_options_raise_user_error(name, options, fragment):
    with pytest.raises(UserError, match=fragment):
        build_model(name, **options)


def test_budgets():
    params, macs = count_params_and_macs(build_model("atpn"), 112)
    assert params <= 1_000_000 and macs <= 60_000_000, (params, macs)
    assert 20_000_000 <= macs  # not accidentally trivial
    params_lite, macs_lite = count_params_and_macs(build_model("atpn-lite"), 112)
    assert params_lite <= 400_000 and macs_lite <= 25_000_000, (params_lite, macs_lite)
    assert params_lite < params and macs_lite < macs


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_macs_agree_with_flop_counter(name):
    model = build_model(name).eval()
    params, macs = count_params_and_macs(model, 112)
    assert params == sum(p.numel() for p in model.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, 112, 112))
    # FlopCounterMode counts conv and matmul FLOPs = 2 x MACs; neither counts bias, BN or the heatmap.
    assert abs(counter.get_total_flops() / 2 - macs) / macs < 0.01


def test_summary_parts_add_up_and_report_each_head():
    model = build_model("atpn")
    summary = model_summary(model, 112)
    parts = summary["parts"]
    assert set(parts) == {"backbone", "shortcut", "landmark_head", "heatmap", "pose_head", "tracking_head"}
    assert sum(p["params"] for p in parts.values()) == summary["params"]
    assert sum(p["macs"] for p in parts.values()) == summary["macs"]
    assert parts["heatmap"] == {"params": 0, "macs": 0} and summary["heatmap_elementwise_ops"] == 98 * (14 * 10 + 14 * 14 * 2)
    alignment_only = model_summary(build_model("atpn", heads=["landmarks"]))
    assert set(alignment_only["parts"]) == {"backbone", "shortcut", "landmark_head"}
    assert alignment_only["macs"] == summary["macs"] - parts["pose_head"]["macs"] - parts["tracking_head"]["macs"]


def test_shortcut_switch_changes_the_graph():
    with_shortcut, without = build_model("atpn"), build_model("atpn", shortcut=False)
    n_with, macs_with = count_params_and_macs(with_shortcut)
    n_without, macs_without = count_params_and_macs(without)
    assert n_without < n_with and macs_without < macs_with
    assert "shortcut" not in dict(without.named_children())
    # The shortcut feeds the landmark head only: a landmark loss trains it, a pose loss does not.
    model = with_shortcut.train()
    out = model(_input(4))
    out["pose"].pow(2).sum().backward(retain_graph=True)
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.shortcut.parameters())
    out["landmarks"].pow(2).sum().backward()
    assert all(p.grad.abs().sum() > 0 for p in model.shortcut.parameters())


def _pose_after_moving_landmarks(model) -> float:
    model.eval()
    x = _input()
    with torch.no_grad():
        before = model(x)["pose"].clone()
        landmark_regressor(model).bias.add_(0.1)  # shift every predicted landmark by 0.1
        after = model(x)["pose"]
    return float((after - before).abs().max())


def test_heatmap_fusion_switch():
    fused, plain = build_model("atpn"), build_model("atpn", heatmap_fusion=False)
    assert count_params_and_macs(plain)[0] < count_params_and_macs(fused)[0]
    assert plain.heatmap is None and fused.heatmap is not None
    # Pose sees the landmarks only through the heatmap.
    assert _pose_after_moving_landmarks(fused) > 1e-3
    assert _pose_after_moving_landmarks(plain) == 0.0
    # Pose without landmarks output still computes the landmark head when fusion needs it.
    pose_only = build_model("atpn", heads=["pose"])
    assert pose_only.landmark_head is not None
    assert build_model("atpn", heads=["pose"], heatmap_fusion=False).landmark_head is None


@pytest.mark.parametrize("heatmap_grad", [False, True])
def test_heatmap_grad_switch(heatmap_grad):
    torch.manual_seed(0)
    model = build_model("atpn-lite", heatmap_grad=heatmap_grad, heads=["landmarks", "pose"]).train()
    out = model(_input(4))
    out["pose"].pow(2).sum().backward()  # a pose-only loss
    regressor_grad = landmark_regressor(model).weight.grad
    reached = regressor_grad is not None and regressor_grad.abs().sum() > 0
    assert reached == heatmap_grad
    assert model.backbone.stem[0].weight.grad.abs().sum() > 0  # the shared backbone always learns


@pytest.mark.parametrize("kernel", ["bump", "gaussian"])
def test_heatmap_peak_is_one_at_the_landmarks_cell(kernel):
    size, sigma = 14, 1.0
    renderer = CheapHeatmap(98, size=size, sigma=sigma, channels="parts", kernel=kernel)
    assert renderer.out_channels == 5
    landmarks = torch.full((1, 98, 2), -10.0)  # far outside: contributes 0 (bump) or ~0 (gaussian)
    row, col = 3, 9
    landmarks[0, 60] = torch.tensor([(col + 0.5) / size, (row + 0.5) / size])  # left eye corner
    heatmap = renderer(landmarks)  # (1, 5, 14, 14)
    assert heatmap.shape == (1, 5, size, size)
    eyes = heatmap[0, 2]
    assert eyes[row, col] == pytest.approx(1.0, abs=1e-6) and eyes.max() == eyes[row, col]
    if kernel == "gaussian":
        assert eyes[row, col + 1] == pytest.approx(math.exp(-1 / (2 * sigma**2)), abs=1e-6)
        assert eyes[row + 1, col + 1] == pytest.approx(math.exp(-2 / (2 * sigma**2)), abs=1e-6)
    else:  # b(d) = 1 - (d / r)^2, r = 1.665 sigma, separable, zero beyond r
        one_cell = 1 - (1 / (2 * math.sqrt(math.log(2)) * sigma)) ** 2
        assert eyes[row, col + 1] == pytest.approx(one_cell, abs=1e-6)
        assert eyes[row + 1, col + 1] == pytest.approx(one_cell * one_cell, abs=1e-6)
        assert eyes[row, col + 2] == 0 and eyes[row + 2, col] == 0
    others = torch.cat([heatmap[0, :2], heatmap[0, 3:]])
    assert others.max() < 1e-6  # only the eyes channel lights up
    # pupils (96, 97) are part of the eyes channel too: max over both runs
    landmarks[0, 97] = torch.tensor([0.5 / size, 0.5 / size])
    assert renderer(landmarks)[0, 2, 0, 0] == pytest.approx(1.0, abs=1e-6)
    single = CheapHeatmap(68, size=28, channels="single", kernel=kernel)(torch.full((2, 68, 2), 0.5))
    assert single.shape == (2, 1, 28, 28) and single.max() < 1.0  # 0.5 lies between cell centres


def test_heatmap_kernels_agree_on_where_the_bump_is():
    """Where the bump is over half high is where the Gaussian of the same sigma is (IoU > 0.9)."""
    torch.manual_seed(0)
    landmarks = torch.rand(3, 98, 2) * 0.8 + 0.1
    bump = CheapHeatmap(98, kernel="bump")(landmarks) > 0.5
    gauss = CheapHeatmap(98, kernel="gaussian")(landmarks) > 0.5
    assert (bump & gauss).sum() / (bump | gauss).sum() > 0.9


def test_select_heads_shares_weights():
    torch.manual_seed(1)
    full = build_model("atpn").eval()
    with torch.no_grad():
        for p in full.parameters():
            p.add_(torch.randn_like(p) * 0.01)
        reference = full(_input())
    for heads in (["landmarks"], ["pose", "tracking"]):
        subset = select_heads(full, heads).eval()
        with torch.no_grad():
            out = subset(_input())
        assert set(out) == set().union(*(EXPECTED_KEYS[h] for h in heads))
        for key, value in out.items():
            torch.testing.assert_close(value, reference[key])
    with pytest.raises(UserError):
        select_heads(build_model("atpn", heads=["landmarks"]), ["pose"])


def test_template_is_a_symmetric_face_and_can_be_set():
    for points in (98, 68):
        template = landmark_template(points)
        assert template.shape == (points, 2)
        np.testing.assert_allclose(flip_normalised(template), template, atol=1e-6)
        assert 0.1 < template.min() and template.max() < 0.9
    template = landmark_template(98)
    assert template[60, 0] < template[64, 0] < template[68, 0] < template[72, 0]  # eye corners left to right
    assert template[16, 1] > template[85, 1] > template[54, 1] > template[96, 1] > template[35, 1] - 0.2
    model = build_model("pfld-0.25").eval()
    mean = np.full((98, 2), 0.3, np.float32)
    set_landmark_template(model, mean)
    with torch.no_grad():
        landmark_regressor(model).weight.zero_()
        assert torch.allclose(model(_input())["landmarks"], torch.tensor(0.3))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_torch_export(name):
    options = {"input_size": 64} if name != "atpn" else {}
    model = build_model(name, **options).eval()
    x = _input(1, model.input_size)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        reference = model(x)
    out = exported.module()(x)
    assert set(out) == set(reference)
    for key in reference:
        torch.testing.assert_close(out[key], reference[key], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "name, options", [("atpn", {}), ("atpn", {"heads": ["landmarks"], "input_size": 64}), ("pfld-0.25", {"input_size": 64})]
)
def test_onnx_export_matches_onnxruntime(tmp_path, name, options):
    import onnxruntime as ort

    model = build_model(name, **options).eval()
    x = _input(1, model.input_size)
    path = tmp_path / "model.onnx"
    with torch.no_grad():
        reference = model(x)
    # The dynamo exporter names outputs after graph nodes ('view_1', 'mul'): pass the dict keys.
    torch.onnx.export(model, (x,), str(path), dynamo=True, verbose=False, output_names=list(reference))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    names = [o.name for o in session.get_outputs()]
    assert names == list(reference)  # flattened in the dict's order
    for key, value in zip(names, outputs):
        np.testing.assert_allclose(value, reference[key].numpy(), atol=1e-4)


def test_litert_conversion_matches_pytorch():
    litert_torch = pytest.importorskip("litert_torch")
    model = build_model("atpn").eval()
    x = _input(1)
    converted = litert_torch.convert(model, (x,))
    out = converted(x)  # a dict keyed like the PyTorch output (the TFLite signature's output names)
    with torch.no_grad():
        reference = model(x)
    assert isinstance(out, dict) and set(out) == set(reference)
    for key in reference:
        np.testing.assert_allclose(np.asarray(out[key]), reference[key].numpy(), atol=1e-4)


def test_counting_at_another_input_size():
    model = build_model("atpn", input_size=64, heads=["landmarks"])
    params, macs = count_params_and_macs(model, None)  # None: the size the model was built for
    # Only the global depthwise conv's kernel depends on the size: 256 channels x (7*7 - 4*4).
    assert count_params_and_macs(build_model("atpn", heads=["landmarks"]))[0] - params == 256 * (49 - 16)
    assert macs < count_params_and_macs(build_model("atpn", heads=["landmarks"]))[1] / 2
    with pytest.raises(UserError, match="input_size=64"):
        count_params_and_macs(model, 112)
    # MobileNetV2 pools globally, so it runs (and is counted) at any size.
    mobilenet = build_model("mobilenetv2", input_size=64)
    assert count_params_and_macs(mobilenet, 128)[1] > 3 * count_params_and_macs(mobilenet, 64)[1]


def test_gdconv_exports_as_two_small_depthwise_convs_with_the_same_values():
    """Exported, GDConv is two depthwise convs of 7 taps (no 7x7 kernel); it computes what the eager
    conv + BN does, and its int8 simulation stays close to float."""
    from atpn_edge.compress.pt2e import QuantizedModel, QuantSpec, convert, prepare_ptq
    from atpn_edge.models.blocks import GlobalDepthwiseConv

    torch.manual_seed(0)
    pool = GlobalDepthwiseConv(8, 7).eval()
    with torch.no_grad():
        pool[0].weight.mul_(torch.logspace(-1.5, 0, 8)[:, None, None, None])  # channel magnitudes over 30x
        pool[1].running_mean.uniform_(-0.1, 0.1)
        pool[1].running_var.uniform_(0.5, 2.0)
        pool[1].weight.uniform_(0.5, 2.0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = torch.nn.Conv2d(3, 8, 16, stride=16)  # 112 -> 7x7
            self.pool = pool

        def forward(self, x):
            return {"landmarks": self.pool(torch.relu(self.stem(x))).reshape(-1, 4, 2)}

    net = Net().eval()
    x = torch.rand(16, 3, 112, 112) * 2 - 1
    exported = torch.export.export(net, (x[:1],))
    convs = [n for n in exported.graph.nodes if n.op == "call_function" and "conv" in str(n.target)]
    kernels = [tuple(n.args[1].meta["val"].shape[-2:]) for n in convs]
    assert kernels == [(16, 16), (7, 1), (1, 7)], kernels  # the stem, then the two halves of the GDConv
    with torch.no_grad():
        want = net(x[:1])["landmarks"]
        torch.testing.assert_close(exported.module()(x[:1])["landmarks"], want, atol=1e-5, rtol=1e-4)
        prepared = prepare_ptq(net, x[:1], QuantSpec(observer="minmax", float_input_conv=False))
        for i in range(len(x)):
            prepared(x[i : i + 1])
        simulated = QuantizedModel(convert(prepared))(x[:4])["landmarks"].reshape(4, 8)
        reference = net(x[:4])["landmarks"].reshape(4, 8)
    # int8 activations have one scale per tensor: the error is judged against the output's whole range
    error = (simulated - reference).abs().max() / (reference.max() - reference.min())
    assert error < 0.03, error  # 0.011 measured here; a MUL by the kernel and a MEAN: 0.036
