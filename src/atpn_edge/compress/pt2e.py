"""PT2E int8 quantization, one plain function per step (torchao `quantize_pt2e` style).

    gm = export_for_quant(model, example)                 # torch.export, batch 1, tuple outputs
    prepared = prepare_ptq(gm, example, QuantSpec())      # or prepare_qat(...)
    for images in calibration_batches: prepared(images)   # the caller owns the data loop
    quantized = convert(prepared)                         # int8 q/dq GraphModule
    outputs = QuantizedModel(quantized)(x)                # the float model's named dict

The quantizer is the XNNPACK-style one (torchao's private copy, torchao.testing.pt2e._xnnpack_quantizer): its
annotations lower to a fully-int8 TFLite graph when the converter is told to (export/tflite.py),
whereas litert-torch's own PT2EQuantizer leaves residual ADDs in float and fails under QAT.
`convert` keeps weights as float + quantize/dequantize nodes (fold_quantize=False): litert-torch
0.10 rejects graphs whose int8 weights were folded into constants.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

# The order of the tuple a quantizable graph returns; only the keys the model produces are kept.
MODEL_OUTPUT_ORDER = ("landmarks", "pose", "face_logit", "face_box")
OBSERVERS = ("minmax", "moving_average_minmax", "histogram")
# Operator types the XNNPACK-style quantizer annotates, named as users write them in recipes.
OPERATOR_TYPES = {
    "conv2d": torch.ops.aten.conv2d.default,
    "linear": torch.ops.aten.linear.default,
    "add": torch.ops.aten.add.Tensor,
    "mul": torch.ops.aten.mul.Tensor,
    "cat": torch.ops.aten.cat.default,
    "adaptive_avg_pool2d": torch.ops.aten.adaptive_avg_pool2d.default,
}


# The int8 input of every PT2E graph: q = round(x * 127.5) for x = (pixel / 255 - 0.5) / 0.5, so a
# board feeds q = pixel - 128 (within half a step of the exact value; x is calibrated nowhere).
INPUT_SCALE = 1.0 / 127.5
INPUT_ZERO_POINT = 0


@dataclass(frozen=True)
class QuantSpec:
    """How to quantize: int8 symmetric weights, int8 activations (XNNPACK's scheme)."""

    per_channel: bool = True  # per-output-channel weight scales (needed by depthwise convs)
    observer: str = "histogram"  # activation observer for PTQ: one of OBSERVERS
    skip_modules: tuple[str, ...] = ()  # submodule names kept in float, e.g. ("heatmap",)
    skip_operators: tuple[str, ...] = ()  # operator types kept in float, keys of OPERATOR_TYPES
    # The conv that reads the image (3 input channels), with its BN and activation, stays float and the
    # graph input float32: XNNPACK's int8 convs on 3-channel input cost 3x their fp32 time (README).
    float_input_conv: bool = True

    def __post_init__(self) -> None:
        if self.observer not in OBSERVERS:
            raise ValueError(f"quantization observer '{self.observer}' is not one of {', '.join(OBSERVERS)}")
        unknown = [op for op in self.skip_operators if op not in OPERATOR_TYPES]
        if unknown:
            raise ValueError(f"cannot skip operator types {unknown}: known types are {', '.join(OPERATOR_TYPES)}")

    def to_dict(self) -> dict[str, Any]:
        return {"per_channel": self.per_channel, "observer": self.observer,
                "skip_modules": list(self.skip_modules), "skip_operators": list(self.skip_operators),
                "float_input_conv": self.float_input_conv,
                "weights": "int8 symmetric", "activations": "int8 affine", "quantizer": "xnnpack"}


class NamedOutputs(nn.Module):
    """Wraps a model whose forward returns a dict: returns the values as a tuple in `output_names` order."""

    def __init__(self, model: nn.Module, output_names: tuple[str, ...]):
        super().__init__()
        self.model = model
        self.output_names = output_names

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.model(x)
        return tuple(outputs[name] for name in self.output_names)


def model_output_names(model: nn.Module, example_input: torch.Tensor) -> tuple[str, ...]:
    """Names of the dict a float model (or a GraphModule from this module) returns, in MODEL_OUTPUT_ORDER."""
    names = getattr(model, "output_names", None) or _meta(model).get("output_names")
    if names:
        return tuple(names)
    with torch.no_grad():
        outputs = model(example_input[:1])
    if not isinstance(outputs, dict):
        raise ValueError(f"model {type(model).__name__} must return a dict of named outputs, got {type(outputs).__name__}")
    unknown = [k for k in outputs if k not in MODEL_OUTPUT_ORDER]
    if unknown:
        raise ValueError(f"model returns outputs {unknown} that are not among {MODEL_OUTPUT_ORDER}")
    return tuple(k for k in MODEL_OUTPUT_ORDER if k in outputs)


def _meta(module: nn.Module) -> dict:
    return getattr(module, "meta", {}).get("atpn_edge", {}) if isinstance(getattr(module, "meta", None), dict) else {}


def _set_meta(gm: torch.fx.GraphModule, info: dict) -> torch.fx.GraphModule:
    gm.meta["atpn_edge"] = dict(info)
    return gm


def fold_parameter_ops(gm: torch.fx.GraphModule, keep_quantize: bool = False) -> torch.fx.GraphModule:
    """Computations on parameters alone (a BN folded into a kernel while exporting, a reshaped weight)
    become constants, before the quantizer could annotate them as arithmetic run at every call.
    Not for prepared QAT graphs, whose parameters must stay trainable: their kernels are folded after
    convert, with `keep_quantize` leaving each weight's quantize op in place (the form PTQ graphs have)."""
    from torchao.quantization.pt2e import constant_fold as cf

    class Folder(cf.ConstantFolder):
        def is_impure(self, node: torch.fx.Node) -> bool:  # a quantize op ends the folded chain before it
            return (keep_quantize and "quantized_decomposed.quantize_per" in str(node.target)) or super().is_impure(node)

    # torchao's constant_fold, with the folder above
    with torch.no_grad(), torch.utils._python_dispatch._disable_current_modes():  # plain tensors, no grad history
        folder = Folder(gm, skip_constructors=True)
        folder.run()
        for node, constant in folder.node_replacements.items():
            cf.replace_node_with_constant(gm, node, constant)
    for node in list(gm.graph.find_nodes(op="get_attr")):
        if not node.users:
            if hasattr(gm, node.target):
                delattr(gm, node.target)
            gm.graph.erase_node(node)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    return gm


def export_for_quant(model: nn.Module, example_input: torch.Tensor) -> torch.fx.GraphModule:
    """torch.export a float model at batch 1 -> GraphModule returning a tuple in named order.

    The names, model name and options travel in `gm.meta["atpn_edge"]` (kept by prepare/convert).
    """
    if example_input.ndim != 4:
        raise ValueError(f"example input must be (B, 3, S, S), got shape {tuple(example_input.shape)}")
    model = model.eval()
    example = example_input[:1].contiguous()
    names = model_output_names(model, example)
    wrapped = NamedOutputs(model, names).eval()
    gm = fold_parameter_ops(torch.export.export(wrapped, (example,), strict=False).module())
    info = {
        "output_names": names,
        "model_name": getattr(model, "name", type(model).__name__),
        "model_options": dict(getattr(model, "options", {}) or {}),
        "input_shape": tuple(example.shape),
    }
    log.info("exported %s for quantization: outputs %s", info["model_name"], names)
    return _set_meta(gm, info)


def _activation_observer(spec: QuantSpec):
    from torchao.quantization.pt2e.observer import (
        HistogramObserver,
        MinMaxObserver,
        MovingAverageMinMaxObserver,
    )

    return {"minmax": MinMaxObserver, "moving_average_minmax": MovingAverageMinMaxObserver,
            "histogram": HistogramObserver}[spec.observer]


def _quantization_config(spec: QuantSpec, is_qat: bool):
    import dataclasses

    from torchao.testing.pt2e._xnnpack_quantizer import get_symmetric_quantization_config

    config = get_symmetric_quantization_config(is_per_channel=spec.per_channel, is_qat=is_qat)
    if is_qat or spec.observer == "histogram":
        return config
    act = config.input_activation
    act = dataclasses.replace(act, observer_or_fake_quant_ctr=_activation_observer(spec).with_args(eps=2**-12))
    return dataclasses.replace(config, input_activation=act, output_activation=act)


def make_quantizer(spec: QuantSpec, is_qat: bool = False):
    """The XNNPACK-style PT2E quantizer for `spec`, with skip_modules / skip_operators (and the input conv) in float."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "XNNPACKQuantizer is deprecated" (no public replacement yet)
        from torchao.testing.pt2e._xnnpack_quantizer import XNNPACKQuantizer

        quantizer = XNNPACKQuantizer()
    quantizer.set_global(_quantization_config(spec, is_qat))
    skip_ops = {OPERATOR_TYPES[name] for name in spec.skip_operators}
    skip_modules = tuple(spec.skip_modules)
    base_annotate = quantizer.annotate

    def annotate(model: torch.fx.GraphModule) -> torch.fx.GraphModule:
        model = base_annotate(model)
        keep = parameter_only_nodes(model)  # a QAT graph's GDConv kernels: weights, observed where a conv reads them
        if spec.float_input_conv:
            keep |= set(input_conv_nodes(model))
        _remove_annotations(model, skip_modules, skip_ops, keep)
        return model

    quantizer.annotate = annotate
    return quantizer


def parameter_only_nodes(model: torch.fx.GraphModule) -> set[torch.fx.Node]:
    """The call_function nodes computed from parameters and constants alone, none from a graph input."""
    from_input: set[torch.fx.Node] = set()
    found: set[torch.fx.Node] = set()
    for node in model.graph.nodes:
        inputs = node.all_input_nodes
        if node.op == "placeholder" or any(n in from_input for n in inputs):
            from_input.add(node)
        elif node.op == "call_function":
            found.add(node)
    return found


def _node_in_modules(node: torch.fx.Node, module_names: tuple[str, ...]) -> bool:
    # nn_module_stack: {key: (qualified name like "model.heatmap" or "L['self'].model.heatmap", type)}
    stack = node.meta.get("nn_module_stack") or {}
    for qualified, _ in stack.values():
        name = qualified.replace("L['self'].", "").replace("L__self___", "")
        for skip in module_names:
            if name == skip or name.startswith(skip + ".") or name == "model." + skip or name.startswith("model." + skip + "."):
                return True
    return False


# ops that follow a conv inside one fused conv-BN-activation pattern (eval and QAT graphs)
_CONV_EPILOGUE = ("batch_norm", "getitem", "relu", "hardtanh", "clamp")


def input_conv_nodes(model: torch.fx.GraphModule) -> list[torch.fx.Node]:
    """The conv2d nodes that read a graph input directly, each with its BN / activation chain."""
    nodes: list[torch.fx.Node] = []
    for placeholder in (n for n in model.graph.nodes if n.op == "placeholder"):
        for conv in placeholder.users:
            if conv.op != "call_function" or conv.target != torch.ops.aten.conv2d.default:
                continue
            chain = [conv]
            while len(chain[-1].users) == 1:
                (user,) = chain[-1].users
                if user.op != "call_function" or not any(k in str(user.target) for k in _CONV_EPILOGUE):
                    break
                chain.append(user)
            nodes.extend(chain)
    return nodes


def _remove_annotations(model: torch.fx.GraphModule, module_names: tuple[str, ...], ops: set,
                        nodes: set[torch.fx.Node] = frozenset()) -> None:
    """Drop quantization annotations of nodes inside skipped modules or of skipped operator types.

    The XNNPACK quantizer only supports skipping by *adding* a config; dropping annotations after
    the fact keeps a node (and its inputs' observers) in float, which is what mixed precision means.
    """
    removed = 0
    for node in model.graph.nodes:
        if node.op != "call_function" or "quantization_annotation" not in node.meta:
            continue
        if node in nodes or node.target in ops or (module_names and _node_in_modules(node, module_names)):
            del node.meta["quantization_annotation"]
            removed += 1
    removed += _remove_dangling_shared_specs(model)
    log.info("kept %d annotated nodes in float (modules %s, operators %s, %d nodes named: input conv, parameter-only)",
             removed, module_names, sorted(map(str, ops)), len(nodes))


def _remove_dangling_shared_specs(model: torch.fx.GraphModule) -> int:
    """Drop the annotations that share quantization parameters with a tensor left in float: a view op at the start
    of a quantized module (the GDConv's permute) shares its input's qparams, and prepare fails (KeyError) when
    the module producing that input is the one kept float. Such ops then stay float too; repeated for chains."""
    from torchao.quantization.pt2e.quantizer import SharedQuantizationSpec

    def annotated(edge_or_node) -> bool:  # a node (its output) or an input edge (producer, consumer)
        if isinstance(edge_or_node, torch.fx.Node):
            annotation = edge_or_node.meta.get("quantization_annotation")
            return annotation is not None and annotation.output_qspec is not None
        producer, consumer = edge_or_node
        annotation = consumer.meta.get("quantization_annotation")
        return annotation is not None and producer in annotation.input_qspec_map

    removed, changed = 0, True
    while changed:
        changed = False
        for node in model.graph.nodes:
            annotation = node.meta.get("quantization_annotation")
            if annotation is None:
                continue
            specs = [*annotation.input_qspec_map.values(), annotation.output_qspec]
            if any(isinstance(q, SharedQuantizationSpec) and not annotated(q.edge_or_node) for q in specs):
                del node.meta["quantization_annotation"]
                removed += 1
                changed = True
    return removed


def _check_graph(model: nn.Module, what: str) -> torch.fx.GraphModule:
    if not isinstance(model, torch.fx.GraphModule):
        raise ValueError(f"{what} expects the GraphModule from export_for_quant, got {type(model).__name__}")
    return model


def _fix_input_quantization(prepared: torch.fx.GraphModule, is_qat: bool) -> None:
    """The graph input's observer -> fixed (INPUT_SCALE, INPUT_ZERO_POINT): the int8 input then means
    pixel - 128 on every model, whatever its calibration images were (an int8-I/O export can be fed
    camera pixels without per-model constants)."""
    from torchao.quantization.pt2e import FixedQParamsFakeQuantize, FixedQParamsObserver

    observer = FixedQParamsObserver.with_args(scale=INPUT_SCALE, zero_point=INPUT_ZERO_POINT, dtype=torch.int8,
                                              quant_min=-128, quant_max=127)
    fixed = FixedQParamsFakeQuantize.with_args(observer=observer) if is_qat else observer
    # parameters are attributes of an exported graph: its placeholders are the forward's inputs
    for node in prepared.graph.nodes:
        if node.op != "placeholder":
            continue
        for user in node.users:
            if user.op == "call_module" and "activation_post_process" in str(user.target):
                setattr(prepared, user.target, fixed())


def prepare_ptq(model: nn.Module, example_input: torch.Tensor, spec: QuantSpec = QuantSpec()) -> torch.fx.GraphModule:
    """Insert observers for post-training calibration. Accepts a float nn.Module or export_for_quant's graph."""
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    gm = model if isinstance(model, torch.fx.GraphModule) else export_for_quant(model, example_input)
    info = dict(_meta(gm), quant_spec=spec.to_dict(), mode="ptq")
    prepared = prepare_pt2e(gm, make_quantizer(spec, is_qat=False))
    _fix_input_quantization(prepared, is_qat=False)
    return _set_meta(prepared, info)


def prepare_qat(model: nn.Module, example_input: torch.Tensor, spec: QuantSpec = QuantSpec()) -> torch.fx.GraphModule:
    """Insert fake-quantizers for quantization-aware training (train it with the float loss, then convert).

    Switch modes with `torchao.quantization.pt2e.move_exported_model_to_train/_eval`; GraphModules ignore .train().
    """
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    if isinstance(model, torch.fx.GraphModule):
        gm = model
    else:
        names = model_output_names(model.eval(), example_input)
        model.train()
        # BatchNorm in training mode needs > 1 value per channel, so QAT graphs keep a dynamic batch.
        example = example_input[:2] if example_input.shape[0] >= 2 else example_input[:1].repeat(2, 1, 1, 1)
        batch = torch.export.Dim("batch", min=2, max=4096)
        exported = torch.export.export(NamedOutputs(model, names), (example.contiguous(),),
                                       dynamic_shapes=({0: batch},), strict=False)
        gm = _set_meta(exported.module(), {
            "output_names": names,
            "model_name": getattr(model, "name", type(model).__name__),
            "model_options": dict(getattr(model, "options", {}) or {}),
            "input_shape": tuple(example_input[:1].shape),
        })
    info = dict(_meta(gm), quant_spec=spec.to_dict(), mode="qat")
    prepared = prepare_qat_pt2e(gm, make_quantizer(spec, is_qat=True))
    _fix_input_quantization(prepared, is_qat=True)
    return _set_meta(prepared, info)


def convert(prepared: nn.Module) -> torch.fx.GraphModule:
    """Observers -> quantize/dequantize pairs (a simulated int8 model in eval mode)."""
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    gm = _check_graph(prepared, "convert")
    info = _meta(gm)
    quantized = convert_pt2e(gm, fold_quantize=False)
    move_exported_model_to_eval(quantized)
    fold_parameter_ops(quantized, keep_quantize=True)  # QAT graphs compute GDConv's kernels from parameters
    return _set_meta(quantized, info)


def is_quantized_graph(model: nn.Module) -> bool:
    if not isinstance(model, torch.fx.GraphModule):
        return False
    return any(n.op == "call_function" and "quantize_per" in str(n.target) for n in model.graph.nodes)


class QuantizedModel(nn.Module):
    """Evaluation wrapper: a (quantized) GraphModule from this module -> the float model's named dict."""

    def __init__(self, graph: torch.fx.GraphModule):
        super().__init__()
        names = _meta(graph).get("output_names")
        if not names:
            raise ValueError("graph carries no output names: build it with export_for_quant/prepare_*/convert")
        self.graph = graph
        self.output_names = tuple(names)
        info = _meta(graph)
        self.name = info.get("model_name", "quantized")
        self.options = dict(info.get("model_options", {}))
        self.quant_info = {k: info[k] for k in ("quant_spec", "mode") if k in info}

    def train(self, mode: bool = True) -> "QuantizedModel":
        # Exported graphs refuse .train()/.eval() (their mode is switched by move_exported_model_to_*).
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        # (B, 3, S, S): the graph was exported at batch 1, so run image by image.
        rows = [self.graph(x[i : i + 1]) for i in range(x.shape[0])]
        return {name: torch.cat([r[k] for r in rows]) for k, name in enumerate(self.output_names)}


def graph_info(model: nn.Module) -> dict:
    """The atpn_edge metadata a graph from this module carries (output names, model name/options, spec)."""
    return dict(_meta(model))
