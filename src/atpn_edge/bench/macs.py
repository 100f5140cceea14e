"""MAC counts of exported graphs: the TFLite converter's own estimate, and a count from the flatbuffer.

Our documented count (atpn_edge.models.counting) hooks Conv2d and Linear of the PyTorch model.
Two cross-checks on the .tflite side:
- `converter_estimate`: the line the TFLite converter prints while writing a model,
  "Estimated count of arithmetic ops: 24.932 M  ops, equivalently 12.466 M  MACs", captured from
  the process's stderr (file descriptor 2, where the C++ converter logs) during an export.
- `tflite_graph_macs`: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and BATCH_MATMUL MACs from the
  tensor shapes of any .tflite (for artifacts we did not convert ourselves, e.g. MediaPipe's).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator

import numpy as np

_UNITS = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_ESTIMATE = re.compile(r"Estimated count of arithmetic ops:\s*([\d.]+)\s*([kKMGT]?)\s*ops,\s*equivalently\s*([\d.]+)\s*([kKMGT]?)\s*MACs")


def parse_converter_estimate(text: str) -> int | None:
    """The last "Estimated count of arithmetic ops ... MACs" in `text`, as a MAC count."""
    found = _ESTIMATE.findall(text)
    if not found:
        return None
    _, _, macs, unit = found[-1]
    return int(round(float(macs) * _UNITS[unit]))


class CapturedStderr:
    text: str = ""


@contextlib.contextmanager
def capture_fd2() -> Iterator[CapturedStderr]:
    """Capture what native code writes to file descriptor 2 (and echo nothing); restores it after."""
    captured = CapturedStderr()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", "replace")


def tflite_graph_macs(path: str | os.PathLike) -> int:
    """MACs of conv / depthwise / fully-connected / batch-matmul ops from the graph's tensor shapes."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=str(path),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}

    def shape(i: int) -> tuple[int, ...]:
        return tuple(int(d) for d in tensors[i]["shape"])

    total = 0
    for op in interpreter._get_ops_details():
        name, inputs, outputs = op["op_name"], [int(i) for i in op["inputs"]], [int(i) for i in op["outputs"]]
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL") or not outputs:
            continue
        out_elems = int(np.prod(shape(outputs[0])))
        w = shape(inputs[1])
        if name == "CONV_2D":  # weights (O, kh, kw, I)
            total += out_elems * w[1] * w[2] * w[3]
        elif name == "DEPTHWISE_CONV_2D":  # weights (1, kh, kw, C*m)
            total += out_elems * w[1] * w[2]
        elif name == "FULLY_CONNECTED":  # weights (O, I)
            total += out_elems * w[-1]
        else:  # BATCH_MATMUL: (.., M, K) x (.., K, N)
            total += out_elems * shape(inputs[0])[-1]
    return total


def tflite_param_count(path: str | os.PathLike) -> int:
    """Elements of the graph's constant tensors (weights and biases), a params count for foreign models."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=str(path),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    produced = set()
    consumed = set()
    for op in interpreter._get_ops_details():
        produced.update(int(i) for i in op["outputs"])
        consumed.update(int(i) for i in op["inputs"] if i >= 0)
    inputs = {d["index"] for d in interpreter.get_input_details()}
    constants = consumed - produced - inputs
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    # fp16 weights are DEQUANTIZE'd at load: count the fp16 constant, not the float copy it produces
    return int(sum(np.prod(details[i]["shape"]) for i in constants if i in details))
