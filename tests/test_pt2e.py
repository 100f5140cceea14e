"""PT2E int8 core: named outputs survive export/prepare/convert, the simulated int8 model is close to
the float model but really quantized, mixed precision keeps the named modules in float, QAT trains."""

from __future__ import annotations

import functools

import pytest
import torch

from tiny_net import TinyNet
from atpn_edge.compress.pt2e import (
    QuantizedModel,
    QuantSpec,
    convert,
    export_for_quant,
    graph_info,
    is_quantized_graph,
    prepare_ptq,
    prepare_qat,
)
from atpn_edge.models import build_model

torch.set_num_threads(1)


def _quantize_count(gm: torch.fx.GraphModule) -> int:
    return sum(n.op == "call_function" and "quantize_per_tensor" in str(n.target) for n in gm.graph.nodes)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("atpn-lite").eval()


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(1)
    return torch.rand(8, 3, 112, 112, generator=g) * 2 - 1


@pytest.fixture(scope="module")
def quantized(model, images):
    prepared = prepare_ptq(model, images[:1], QuantSpec())
    with torch.no_grad():
        for i in range(len(images)):
            prepared(images[i : i + 1])
    return convert(prepared)


def test_spec_rejects_unknown_observer_and_operator():
    with pytest.raises(ValueError, match="observer"):
        QuantSpec(observer="mse")
    with pytest.raises(ValueError, match="softmax"):
        QuantSpec(skip_operators=("softmax",))


def test_export_for_quant_keeps_named_order_and_values(model, images):
    gm = export_for_quant(model, images[:1])
    info = graph_info(gm)
    assert info["output_names"] == ("landmarks", "pose", "face_logit", "face_box")
    assert info["model_name"] == "atpn-lite"
    with torch.no_grad():
        got = QuantizedModel(gm)(images[:3])
        want = model(images[:3])
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=1e-5)


def test_ptq_is_quantized_and_close_to_float(model, quantized, images):
    assert is_quantized_graph(quantized)
    assert _quantize_count(quantized) > 20
    with torch.no_grad():
        got = QuantizedModel(quantized)(images)
        want = model(images)
    assert set(got) == set(want)
    diff = (got["landmarks"] - want["landmarks"]).abs()
    # int8 noise: visible (the graph really quantizes) but well below 1 % of the crop.
    assert diff.max() > 1e-5
    assert diff.max() < 0.01
    assert (got["pose"] - want["pose"]).abs().max() < 1.0  # degrees


def test_quantized_model_wrapper_survives_eval(quantized):
    wrapper = QuantizedModel(quantized).eval()  # GraphModules themselves refuse .eval()
    assert not wrapper.training
    assert wrapper.name == "atpn-lite"


def test_skip_modules_keeps_heatmap_in_float(model, images):
    full = prepare_ptq(model, images[:1], QuantSpec(observer="minmax"))
    mixed = prepare_ptq(model, images[:1], QuantSpec(observer="minmax", skip_modules=("heatmap",)))

    def observed_in_heatmap(gm):
        count = 0
        for node in gm.graph.nodes:
            if node.op == "call_module" and "activation_post_process" in str(node.target):
                src = node.args[0]
                stack = getattr(src, "meta", {}).get("nn_module_stack") or {}
                count += any("heatmap" in q for q, _ in stack.values())
        return count

    assert observed_in_heatmap(full) > 0
    assert observed_in_heatmap(mixed) < observed_in_heatmap(full)


@pytest.mark.parametrize("kept_float", [("landmark_head.expand",), ("landmark_head.expand", "pose_head.mix")])
def test_a_quantized_gdconv_after_a_float_module_prepares_and_quantizes(model, images, kept_float):
    """Mixed precision keeping a head's conv float while its GDConv pool stays int8 (what the sensitivity pass
    does for every unit): the pool's first op shares its input's qparams with a tensor now float, which
    made prepare fail with a KeyError; such ops stay float and the pool's convs are still int8."""
    prepared = prepare_ptq(model, images[:1], QuantSpec(observer="minmax", skip_modules=kept_float))
    prepared(images[:1])
    gm = convert(prepared)

    def weight_quantized(module: str) -> list[bool]:
        return [("dequantize" in str(getattr(node.args[1], "target", "")))
                for node in gm.graph.nodes if node.op == "call_function" and node.target == torch.ops.aten.conv2d.default
                and any(q.endswith(module) for q, _ in (node.meta.get("nn_module_stack") or {}).values())]

    assert weight_quantized("landmark_head.expand.0") == [False]
    assert weight_quantized("landmark_head.pool") == [True, True]  # the two 7-tap convs
    with torch.no_grad():
        got, want = QuantizedModel(gm)(images), model(images)
    assert (got["landmarks"] - want["landmarks"]).abs().max() < 0.01


def _input_conv_weight_quantized(gm: torch.fx.GraphModule) -> bool:
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target == torch.ops.aten.conv2d.default:
            return "dequantize" in str(getattr(node.args[1], "target", ""))  # the first conv in graph order
    raise AssertionError("no conv")


@pytest.mark.parametrize("mode", ["ptq", "qat"])
def test_input_conv_stays_float_by_default_and_int8_when_asked(mode, images):
    """float_input_conv keeps the conv reading the image (and its input) float, the rest int8; off, all int8."""
    torch.manual_seed(0)
    results = {}
    for float_input in (True, False):
        spec = QuantSpec(observer="minmax", float_input_conv=float_input)
        model = TinyNet(outputs=("landmarks", "pose"))
        prepared = prepare_ptq(model.eval(), images[:1], spec) if mode == "ptq" else prepare_qat(model, images[:1], spec)
        prepared(images[:1] if mode == "ptq" else images[:2])  # PTQ graphs are batch 1, QAT ones batch >= 2
        gm = convert(prepared)
        placeholder = next(n for n in gm.graph.nodes if n.op == "placeholder")
        input_quantized = any("quantize_per_tensor" in str(u.target) for u in placeholder.users)
        results[float_input] = (input_quantized, _input_conv_weight_quantized(gm), _quantize_count(gm))
    assert results[True][:2] == (False, False) and results[False][:2] == (True, True)
    assert results[True][2] > 0  # the rest of the graph is still quantized


def test_skip_operator_type_leaves_linear_float(model, images):
    prepared = prepare_ptq(model, images[:1], QuantSpec(observer="minmax", skip_operators=("linear",)))
    prepared(images[:1])
    gm = convert(prepared)
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target == torch.ops.aten.linear.default:
            weight_src = node.args[1]
            assert "dequantize" not in str(getattr(weight_src, "target", "")), "linear weight was quantized"


def test_qat_trains_and_converts(images):
    torch.manual_seed(0)
    model = TinyNet(outputs=("landmarks", "pose"))
    prepared = prepare_qat(model, images[:1], QuantSpec())
    assert graph_info(prepared)["mode"] == "qat"
    optimizer = torch.optim.SGD(prepared.parameters(), lr=1e-3)
    before = None
    for i in range(3):
        out = prepared(images[2 * i : 2 * i + 2])
        loss = out[0].square().mean()  # landmarks toward 0: any differentiable target will do
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        before = loss.item() if before is None else before
    assert loss.item() < before
    quantized = convert(prepared)
    assert is_quantized_graph(quantized)
    with torch.no_grad():
        sim = QuantizedModel(quantized)(images[:2])
    assert sim["landmarks"].shape == (2, 5, 2)


def _conv_kernel_sizes(gm: torch.fx.GraphModule) -> list[tuple[int, int]]:
    """(kh, kw) of every conv2d's weight constant (read through its dequantize and quantize when it has them)."""
    sizes = []
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target == torch.ops.aten.conv2d.default:
            weight = node.args[1]
            while weight.op == "call_function":  # dequantize <- quantize <- constant
                weight = weight.args[0]
            sizes.append(tuple(functools.reduce(getattr, weight.target.split("."), gm).shape[2:]))
    return sizes


def test_qat_trains_the_deployed_gdconv_and_converts_it_to_constant_kernels(images):
    """QAT graphs are exported in training mode; their GDConv must still be the two 7-tap convs XNNPACK runs
    fast in int8 (not the 7x7 one), with a trainable BN scale, and convert must leave constant int8 kernels."""
    torch.manual_seed(0)
    model = build_model("atpn-lite")
    prepared = prepare_qat(model, images[:2], QuantSpec())
    gm_params = dict(prepared.named_parameters())
    pool_scales = [name for name in gm_params if "pool" in name and name.endswith("1.weight")]
    assert len(pool_scales) == 3, sorted(gm_params)  # the BN of each head's GDConv
    out = prepared(images[:4])
    sum(o.square().mean() for o in out).backward()  # every head's GDConv reaches the loss
    assert all(gm_params[name].grad is not None and gm_params[name].grad.abs().sum() > 0 for name in pool_scales)
    quantized = convert(prepared)
    sizes = _conv_kernel_sizes(quantized)
    assert (7, 7) not in sizes and sizes.count((7, 1)) == 3 and sizes.count((1, 7)) == 3, sizes
    assert not any("sqrt" in str(n.target) for n in quantized.graph.nodes)  # the BN fold is a constant now
    with torch.no_grad():
        simulated = QuantizedModel(quantized)(images[:2])["landmarks"]
        float_out = model.eval()(images[:2])["landmarks"]
    assert 0 < (simulated - float_out).abs().mean() < 0.02

