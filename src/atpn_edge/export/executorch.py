"""ExecuTorch (.pte) through the XNNPACK delegate, from the float model or the PT2E int8 program.

    data, lowering = lower_float(model, output_names, sample)   # fp32 .pte bytes, what was delegated
    data, lowering = lower_pt2e(graph, output_names, sample)    # the PT2E program the .tflite comes from
    int8_check(lowering, max_float_compute)                     # every conv / linear delegated, int8

ExecuTorch 1.4's XNNPACK partitioner lowers ATPN as it is written only in fp32; the int8 program
failed ("Invalid partition, found dependency cycles"). Three rewrites, none of which changes a value
(the rewritten PT2E program gives bit-identical outputs), make the int8 graph one XNNPACK delegate:
- ops the partitioner has no XNNPACK config for become ones it has: the heatmap's max over a group of
  landmarks (amax over dim 1) a max-pool whose window is the group (exact, int8 included), unsqueeze
  a reshape, select a slice + reshape; detach / alias are dropped. Left outside, they split the graph.
- an int8 concatenation, reshape, slice or max-pool whose input has another scale than its output gets
  that input requantized to the output's scale first (the op's own output quantize does the same
  rounding): XNNPACK builds these ops only when input and output share one scale ("Failed to create
  cat2 node ... xnn_status_invalid_parameter" at load time otherwise).
- after to_edge, a dequantize read by several ops is copied for each: the config partitioner unions
  the partitions of ops that share a node, and the three concatenations that read the deep features
  became one partition around the heatmap, hence the cycle.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections import Counter
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

aten = torch.ops.aten
# Ops that XNNPACK computes on int8 only when the input has the output's scale and zero point.
_SAME_SCALE_OPS = (aten.cat.default, aten.reshape.default, aten.view.default, aten.flatten.using_ints,
                   aten.unflatten.int, aten.max_pool2d.default, aten.slice.Tensor, aten.permute.default)
COMPUTE_TARGETS = ("aten.convolution.default", "aten.linear.default", "aten.addmm.default", "aten.mm.default")
_GLUE_TARGETS = ("getitem", "executorch_call_delegate")


def _require_executorch():
    from atpn_edge.errors import UserError

    try:
        import executorch.exir  # noqa: F401
    except ImportError as e:
        raise UserError("--format executorch: executorch is not installed (pip install -e '.[executorch]')") from e


# ----------------------------------------------------------------------------- graph rewrites (aten)
def xnnpack_ops(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Replace ops the XNNPACK partitioner cannot take by equivalent ones it can (in place)."""
    graph = gm.graph
    for node in list(graph.nodes):
        if node.op != "call_function":
            continue
        if node.target in (aten.detach.default, aten.alias.default):
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
            continue
        out_shape = list(node.meta["val"].shape) if "val" in node.meta else None
        with graph.inserting_before(node):
            if node.target == aten.unsqueeze.default:
                new = graph.call_function(aten.reshape.default, (node.args[0], out_shape))
            elif node.target == aten.select.int:
                x, dim, index = node.args
                piece = graph.call_function(aten.slice.Tensor, (x, dim, index, index + 1))
                new = graph.call_function(aten.reshape.default, (piece, out_shape))
            elif node.target == aten.amax.default and list(node.args[1]) == [1] and len(node.args) > 2 and node.args[2]:
                shape = node.args[0].meta["val"].shape  # (B, n, ...) -> max over n
                n, rest = int(shape[1]), math.prod(int(s) for s in shape[2:])
                rows = graph.call_function(aten.reshape.default, (node.args[0], [int(shape[0]), 1, n, rest]))
                pooled = graph.call_function(aten.max_pool2d.default, (rows, [n, 1], [n, 1]))  # (B, 1, 1, rest)
                new = graph.call_function(aten.reshape.default, (pooled, out_shape))
            else:
                continue
        node.replace_all_uses_with(new)
        graph.erase_node(node)
    graph.lint()
    gm.recompile()
    return gm


def _is_call(node: Any, name: str) -> bool:
    return isinstance(node, torch.fx.Node) and node.op == "call_function" and name in str(node.target)


def shared_input_scales(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Requantize the inputs of same-scale int8 ops to their output's scale (in place); -> gm."""
    q_op = torch.ops.quantized_decomposed.quantize_per_tensor.default
    dq_op = torch.ops.quantized_decomposed.dequantize_per_tensor.default
    graph = gm.graph
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target not in _SAME_SCALE_OPS:
            continue
        users = list(node.users)
        if len(users) != 1 or not _is_call(users[0], "quantize_per_tensor"):
            continue
        qparams = tuple(users[0].args[1:6])  # scale, zero point, qmin, qmax, dtype
        inputs = list(node.args[0]) if node.target == aten.cat.default else [node.args[0]]
        for source in inputs:
            if _is_call(source, "dequantize_per_tensor") and tuple(source.args[1:6]) != qparams:
                with graph.inserting_before(node):
                    requantized = graph.call_function(q_op, (source, *qparams))
                    node.replace_input_with(source, graph.call_function(dq_op, (requantized, *qparams)))
    graph.lint()
    gm.recompile()
    return gm


def one_dequantize_per_user(gm: torch.fx.GraphModule):
    """Edge-dialect pass: a dequantize with several users becomes one copy per user."""
    from torch.fx.passes.infra.pass_base import PassResult

    graph = gm.graph
    for node in list(graph.nodes):
        if _is_call(node, "dequantize_per_tensor") and len(node.users) > 1:
            for user in list(node.users)[1:]:
                with graph.inserting_before(user):
                    user.replace_input_with(node, graph.node_copy(node))
    graph.lint()
    gm.recompile()
    return PassResult(gm, True)


# ----------------------------------------------------------------------------- lowering
def _lower(gm: torch.fx.GraphModule, sample: torch.Tensor) -> tuple[bytes, dict[str, Any]]:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(gm, (sample,), strict=False)
        edge = to_edge_transform_and_lower(program, transform_passes=[one_dequantize_per_user],
                                           partitioner=[XnnpackPartitioner()])
        lowering = describe_lowering(edge.exported_program())
        data = edge.to_executorch().buffer
    log.info("ExecuTorch: %d XNNPACK delegate(s), outside: %s", lowering["delegates"], lowering["outside_delegate"])
    return data, lowering


def _deployed_graph(core: nn.Module, output_names: tuple[str, ...], sample: torch.Tensor) -> torch.fx.GraphModule:
    """The graph a board runs: outputs in `output_names` order, face_logit turned into face_score
    (export/tflite.ExportHead, as in the .tflite and .onnx)."""
    from atpn_edge.compress.pt2e import NamedOutputs
    from atpn_edge.export.tflite import ExportHead
    from atpn_edge.runtime.base import deployed_name

    head = ExportHead(core, output_names)
    wrapped = NamedOutputs(head, tuple(deployed_name(n) for n in output_names))
    wrapped.training = False  # a quantized GraphModule inside refuses .eval()
    with torch.no_grad():
        return torch.export.export(wrapped, (sample,), strict=False).module()


def lower_float(model: nn.Module, output_names: tuple[str, ...], sample: torch.Tensor) -> tuple[bytes, dict[str, Any]]:
    """Float model (dict outputs) -> fp32 .pte bytes and its lowering record."""
    from atpn_edge.compress.pt2e import fold_parameter_ops

    _require_executorch()
    gm = _deployed_graph(model.eval(), output_names, sample)
    with torch.no_grad():
        gm = fold_parameter_ops(xnnpack_ops(gm))  # GDConv's export-time kernels become constants
    return _lower(gm, sample)


def lower_pt2e(graph: torch.fx.GraphModule, output_names: tuple[str, ...],
               sample: torch.Tensor) -> tuple[bytes, dict[str, Any]]:
    """A PT2E int8 program (pt2e.convert: weights as float + quantize) -> int8 .pte bytes and its lowering record."""
    import copy

    from torchao.quantization.pt2e.constant_fold import constant_fold
    from torchao.quantization.pt2e.quantize_pt2e import _quant_node_constraint

    _require_executorch()
    gm = _deployed_graph(copy.deepcopy(graph), output_names, sample)
    with torch.no_grad():
        constant_fold(gm, _quant_node_constraint)  # int8 weights as constants, as convert_pt2e(fold_quantize=True)
    return _lower(shared_input_scales(xnnpack_ops(gm)), sample)


def describe_lowering(program) -> dict[str, Any]:
    """The lowered edge program -> {delegates, outside_delegate, delegated_ops, compute: [{op, int8}]}."""
    gm = program.graph_module
    outside = Counter(_op_name(n) for n in gm.graph.nodes
                      if n.op == "call_function" and _op_name(n) not in _GLUE_TARGETS)
    delegated: Counter = Counter()
    compute: list[dict[str, Any]] = []
    for node in gm.graph.nodes:
        if node.op != "get_attr" or not node.target.startswith("lowered_module"):
            continue
        inner = getattr(gm, node.target).original_module.graph_module.graph
        for n in inner.nodes:
            if n.op != "call_function":
                continue
            delegated[_op_name(n)] += 1
            if _op_name(n) in COMPUTE_TARGETS:
                weight = n.args[1] if _op_name(n) != "aten.addmm.default" else n.args[2]
                compute.append({"op": _op_name(n), "int8": _is_call(weight, "dequantize")})
    outside_compute = [{"op": _op_name(n), "int8": False} for n in gm.graph.nodes
                       if n.op == "call_function" and _op_name(n) in COMPUTE_TARGETS]
    return {"delegates": sum(n.op == "get_attr" and str(n.target).startswith("lowered_module") for n in gm.graph.nodes),
            "outside_delegate": dict(sorted(outside.items())), "delegated_ops": dict(sorted(delegated.items())),
            "compute": compute, "outside_compute": outside_compute}


def _op_name(node: torch.fx.Node) -> str:
    """Edge-dialect op name, e.g. 'aten.convolution.default', 'getitem'."""
    return getattr(node.target, "__name__", str(node.target))


def op_histogram(lowering: dict[str, Any]) -> dict[str, int]:
    """Ops inside the XNNPACK delegate(s) and, prefixed 'outside:', those left to ExecuTorch's portable kernels."""
    ops = dict(lowering["delegated_ops"])
    ops.update({f"outside:{k}": v for k, v in lowering["outside_delegate"].items()})
    return dict(sorted(ops.items()))


def int8_check(lowering: dict[str, Any], max_float_compute: int = 0) -> dict[str, Any]:
    """Every conv / linear inside an XNNPACK delegate with int8 weights, up to `max_float_compute` kept
    float by the recipe (the input conv, mixed precision), and none left to the portable kernels."""
    compute = lowering["compute"]
    float_compute = [c["op"] for c in compute if not c["int8"]]
    outside = [c["op"] for c in lowering["outside_compute"]]
    return {
        "delegates": lowering["delegates"],
        "outside_delegate": lowering["outside_delegate"],
        "float_compute_ops": float_compute + [f"{op} (portable)" for op in outside],
        "float_compute_allowed": max_float_compute,
        "int8_compute_ops": len(compute) - len(float_compute),
        "unexpected_fake_quant": [],
        "ok": not outside and len(float_compute) <= max_float_compute and len(compute) > len(float_compute),
    }
