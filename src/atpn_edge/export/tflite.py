"""TFLite (LiteRT) conversion through litert-torch, and post-conversion quantization with ai-edge-quantizer.

Routes:
- fp32:          litert_torch.convert(float model).
- fp16 / dynamic-int8: float .tflite, then ai-edge-quantizer (fp16 weight casting / dynamic wi8-afp32).
- int8 "pt2e":   the PT2E graph (XNNPACK-style annotations, convert_pt2e) converted with
                 QuantConfig(pt2e_quantizer=<litert PT2EQuantizer>), which only selects the STATIC int8
                 lowering of the q/dq pairs already in the graph -> a fully int8 flatbuffer.
- int8 "ai-edge-quantizer": float .tflite, then the static wi8/ai8 recipe calibrated on the same images.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from atpn_edge.errors import UserError
from atpn_edge.runtime.base import FACE_LOGIT, deployed_name

log = logging.getLogger(__name__)

# Adding then subtracting a constant keeps an output in float after its DEQUANTIZE: the converter
# propagates quantization through "same-scale" ops (reshape, clamp, max, mul by 1) and would hand
# the caller an int8 tensor. The float rounding it adds (<= 1.2e-7 for |y| < 1) is far below int8 steps.
_FLOAT_BOUNDARY = 1.0


class ExportHead(nn.Module):
    """Model (dict or named-tuple outputs) -> {landmarks, pose, face_score, face_box}, face_score = sigmoid(logit)."""

    def __init__(self, core: nn.Module, output_names: tuple[str, ...], *, float_boundary: bool = False,
                 clamp_input: bool = False):
        super().__init__()
        self.core = core
        self.output_names = tuple(output_names)
        self.float_boundary = float_boundary
        self.clamp_input = clamp_input
        self.training = False  # export is inference; set without recursing into a quantized graph

    def train(self, mode: bool = True) -> "ExportHead":
        self.training = mode  # a quantized GraphModule inside refuses .train()/.eval()
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.clamp_input:
            # A float op before the graph's first quantize keeps the input float32 (the converter
            # would otherwise make the input tensor int8); [-1, 1] is the valid input range anyway.
            x = torch.clamp(x, -1.0, 1.0)
        if isinstance(self.core, torch.fx.GraphModule):
            # Run a PT2E graph node by node so that, under fx_traceback.preserve_node_meta() (see
            # _convert), the re-export keeps each node's module stack: the .tflite's tensors are then
            # named after the network's modules (backbone.stage1, heatmap, ...) as in the fp32 export.
            raw = torch.fx.Interpreter(self.core).run(x)
        else:
            raw = self.core(x)
        values = raw if isinstance(raw, dict) else dict(zip(self.output_names, raw))
        result: dict[str, torch.Tensor] = {}
        for name in self.output_names:
            value = values[name]
            if name == FACE_LOGIT:  # the graph computes face_score_from_logit's sigmoid itself
                result[deployed_name(name)] = torch.sigmoid(value)
                continue
            if self.float_boundary:
                value = (value + _FLOAT_BOUNDARY) - _FLOAT_BOUNDARY
            result[name] = value
        return result


class NHWCInput(nn.Module):
    """Takes (1, S, S, 3) and hands the network (1, 3, S, S). The converters cancel the permute
    against their own layout change, so a channels-last artifact has no TRANSPOSE at its input; the
    module stack (and so the artifact's op names) is kept, unlike litert_torch.to_channel_last_io."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.inner(x.permute(0, 3, 1, 2))  # (1, S, S, 3) -> (1, 3, S, S)


def exported_output_names(output_names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(deployed_name(n) for n in output_names)


def _convert(module: nn.Module, sample: torch.Tensor, quant_config=None) -> bytes:
    import litert_torch

    previous = os.environ.get("LITERT_TORCH_SHOW_PROGRESS")
    # litert-torch prints a progress tree to the console; show it only when debugging.
    os.environ["LITERT_TORCH_SHOW_PROGRESS"] = "y" if log.isEnabledFor(logging.DEBUG) else "n"
    try:
        with warnings.catch_warnings(), torch.fx.traceback.preserve_node_meta():
            warnings.simplefilter("ignore")
            edge_model = litert_torch.convert(module, (sample,), quant_config=quant_config)
        return bytes(edge_model.model_content())
    except Exception as e:  # the converter raises ValueError/RuntimeError/NotImplementedError with MLIR dumps
        first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
        raise UserError(f"litert-torch could not convert {getattr(module, 'name', type(module).__name__)}: {first[:300]}") from e
    finally:
        if previous is None:
            os.environ.pop("LITERT_TORCH_SHOW_PROGRESS", None)
        else:
            os.environ["LITERT_TORCH_SHOW_PROGRESS"] = previous


def _layout_io(module: nn.Module, sample: torch.Tensor, nhwc: bool) -> tuple[nn.Module, torch.Tensor]:
    if not nhwc:
        return module, sample
    return NHWCInput(module), sample.permute(0, 2, 3, 1).contiguous()


def convert_float(model: nn.Module, output_names: tuple[str, ...], sample: torch.Tensor, nhwc: bool = False) -> bytes:
    """Float nn.Module -> fp32 .tflite bytes."""
    module, sample = _layout_io(ExportHead(model.eval(), output_names), sample, nhwc)
    return _convert(module, sample)


def convert_pt2e(quantized: torch.fx.GraphModule, output_names: tuple[str, ...], sample: torch.Tensor,
                 *, per_channel: bool = True, int8_io: bool = False, nhwc: bool = False,
                 select_int8_lowering: bool = True) -> bytes:
    """PT2E-quantized GraphModule -> int8 .tflite bytes (every annotated op int8; see QuantSpec.float_input_conv).

    int8_io=False keeps the input and outputs float32 (quantize/dequantize inside the graph).
    select_int8_lowering=False converts without QuantConfig: the q/dq pairs stay as float fake-quant
    ops (a slow float model) -- useful only to test that verification catches it.
    """
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig

    head = ExportHead(quantized, output_names, float_boundary=not int8_io, clamp_input=not int8_io)
    module, sample = _layout_io(head, sample, nhwc)
    quant_config = None
    if select_int8_lowering:
        lowering = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=per_channel))
        quant_config = QuantConfig(pt2e_quantizer=lowering)
    return _convert(module, sample, quant_config)


def _aeq_quantize(float_bytes: bytes, configure, calibration: list[dict[str, np.ndarray]] | None = None) -> bytes:
    from ai_edge_quantizer import quantizer as aeq

    q = aeq.Quantizer(bytearray(float_bytes))
    configure(q)
    calibration_result = None
    if calibration is not None:
        calibration_result = q.calibrate({"serving_default": calibration}, num_threads=1)
    result = q.quantize(calibration_result, enable_progress_report=False)
    return bytes(result.quantized_model)


def quantize_fp16(float_bytes: bytes) -> bytes:
    """fp16 weights (the runtime dequantizes them once at load): half the size, float32 compute."""
    from ai_edge_quantizer import qtyping
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    return _aeq_quantize(float_bytes, lambda q: q.add_weight_only_config(
        regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=16,
        algorithm_key=AlgorithmName.FLOAT_CASTING))


def quantize_dynamic_int8(float_bytes: bytes) -> bytes:
    from ai_edge_quantizer import recipe

    return _aeq_quantize(float_bytes, lambda q: q.load_quantization_recipe(recipe.dynamic_wi8_afp32()))


def quantize_static_int8_aeq(float_bytes: bytes, calibration_inputs: np.ndarray, input_name: str) -> bytes:
    """ai-edge-quantizer static wi8/ai8 recipe, calibrated on (N, ...) float inputs in the model's layout."""
    from ai_edge_quantizer import recipe

    calibration = [{input_name: calibration_inputs[i : i + 1].astype(np.float32)} for i in range(len(calibration_inputs))]
    return _aeq_quantize(float_bytes, lambda q: q.load_quantization_recipe(recipe.static_wi8_ai8()), calibration)


def io_details(tflite_bytes: bytes) -> dict[str, Any]:
    """Signature input/output tensors: name, dtype, shape, scale, zero_point (for metadata and adapters)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite_bytes)
    runner = interpreter.get_signature_runner()

    def describe(details: dict) -> list[dict[str, Any]]:
        rows = []
        for name, d in details.items():
            scale, zero_point = d["quantization"]
            rows.append({"name": name, "dtype": np.dtype(d["dtype"]).name, "shape": [int(s) for s in d["shape"]],
                         "scale": float(scale) if scale else None, "zero_point": int(zero_point) if scale else None})
        return rows

    return {"inputs": describe(runner.get_input_details()), "outputs": describe(runner.get_output_details())}
