"""Per-block latency of exported artifacts: where the time goes, fp32 and int8 side by side.

    profiles = profile_artifacts(["atpn_fp32.tflite", "atpn_int8.tflite", "atpn_int8.onnx"], threads=1)
    profiles[1].blocks      # [BlockTime(block="backbone.stem", ms=..., ops={...}), ...]
    profiles[1].partitions, profiles[1].outside_delegate   # XNNPACK partitions, ops it left to TFLite kernels

Blocks are the network's modules (backbone.stem, backbone.stage1-3, shortcut, landmark_head, heatmap,
pose_head, tracking_head), read from the names the exporters give each op (`module_path`), plus
`input` and `output` for what the export wraps around the network (quantize, layout, sigmoid).
Ops of the network's own forward (concatenations, the heatmap gate) count towards the latest block
they read from.

How each runtime is measured:
- LiteRT: its Python interpreter has no op profiler, so the .tflite is cut into prefixes (the ops
  of blocks 1..k, every tensor a later block reads kept as an output), every prefix is timed in the
  same interleaved run with the XNNPACK delegate, and block k costs t(prefix k) - t(prefix k-1).
  The blocks then sum to the whole model's time; a block whose cost is below the timing noise can
  come out slightly negative. Ops per block are listed, not timed one by one (XNNPACK fuses them).
- ONNX Runtime: its own profiler (SessionOptions.enable_profiling), per executed kernel after the
  session's graph optimisations, averaged over the timed runs; kernels map back to the ONNX nodes
  and so to blocks.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from atpn_edge.bench.timing import LatencyStats, TimingConfig, time_interleaved
from atpn_edge.errors import UserError
from atpn_edge.runtime.onnx import MODULE_SCOPE_KEY, WRAPPER_ATTRIBUTES

log = logging.getLogger(__name__)

INPUT_BLOCK, OUTPUT_BLOCK = "input", "output"
# Containers whose children are the blocks worth telling apart.
CONTAINER_BLOCKS = ("backbone", "features")
# Ops that carry a layer's arithmetic: never "output handling", whatever their tensor is called.
COMPUTE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "Conv", "QLinearConv", "ConvInteger",
               "Gemm", "QGemm", "MatMul", "QLinearMatMul", "MatMulInteger")


@dataclass(frozen=True)
class GraphOp:
    index: int
    op: str  # TFLite builtin name or ONNX op type
    block: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass
class BlockTime:
    block: str
    ms: float
    ops: dict[str, int]  # op-type histogram of the block's ops in the artifact
    outside_delegate: list[str] = field(default_factory=list)  # LiteRT: its ops that XNNPACK did not take


@dataclass
class KernelTime:
    name: str
    op: str
    block: str
    ms: float


@dataclass
class Profile:
    path: str
    format: str
    runtime: str
    precision: str
    threads: int
    total_ms: float
    method: str
    blocks: list[BlockTime]
    kernels: list[KernelTime] = field(default_factory=list)  # ONNX Runtime: per executed kernel
    partitions: int | None = None  # LiteRT: XNNPACK partitions (1 = the whole graph in one delegate node)
    outside_delegate: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def block_ms(self) -> dict[str, float]:
        return {b.block: b.ms for b in self.blocks}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- naming ops after modules
def module_path(tensor_name: str) -> tuple[str, ...] | None:
    """The module attributes of a litert-torch tensor name, wrappers dropped.

    litert-torch names a tensor after the module stack of the op(s) that made it,
    "pkg.Root/pkg.Class_attr/.../pkg.Class_attr;" (fused ops list several, separated by ";", then a
    counter). -> the most specific: ("backbone", "stage1", "0", ...) inside the network; () for the
    network's own forward or a tensor without location (graph outputs are renamed); None when every
    location is the outermost wrapper's (the export's input/output handling).
    """
    paths = []
    for location in tensor_name.split(";"):
        layers = [layer for layer in location.split("/") if layer]
        if not layers or not ("." in layers[0] or len(layers) > 1):
            continue  # a counter, or not a module stack
        attributes = [layer.rsplit(".", 1)[-1].partition("_")[2] for layer in layers[1:]]
        paths.append(attributes)
    if not paths:
        return ()
    if all(not p for p in paths):
        return None
    return _strip_wrappers(max(paths, key=len))


def block_name(path: tuple[str, ...]) -> str:
    """("backbone", "stage1", "0", "conv") -> "backbone.stage1": containers are opened, one level each."""
    depth = 1
    while depth < len(path) and path[depth - 1] in CONTAINER_BLOCKS:
        depth += 1
    return ".".join(path[:depth])


def assign_blocks(ops: list[dict[str, Any]], graph_inputs: set[int], graph_outputs: set[int]) -> list[GraphOp]:
    """Ops (in execution order, each with 'op', 'inputs', 'outputs', 'path') -> GraphOps with blocks.

    A module path names the block. The network's own forward (path ()) counts towards the latest
    block it reads from; so does the export's wrapper (path None), except before the network
    (`input`). Ops without a module that only feed graph outputs (reshapes, dequantize, float
    boundaries, the sigmoid; not convolutions whose output tensor was renamed) are `output`.
    """
    producer_block: dict[int, str] = {t: INPUT_BLOCK for t in graph_inputs}
    order: list[str] = [INPUT_BLOCK]
    blocks = []
    for op in ops:
        read = [producer_block[t] for t in op["inputs"] if t in producer_block]
        if op["path"]:
            block = block_name(op["path"])
        elif op["path"] is None and all(b == INPUT_BLOCK for b in read):
            block = INPUT_BLOCK
        else:
            block = max(read, key=order.index) if read else INPUT_BLOCK
        if block not in order:
            order.append(block)
        for t in op["outputs"]:
            producer_block[t] = block
        blocks.append(block)
    consumers: dict[int, list[int]] = {}
    for index, op in enumerate(ops):
        for t in op["inputs"]:
            consumers.setdefault(t, []).append(index)
    for index in reversed(range(len(ops))):
        op = ops[index]
        if not op["path"] and op["op"] not in COMPUTE_OPS and blocks[index] != INPUT_BLOCK and op["outputs"] and all(
                (t in graph_outputs or consumers.get(t)) and all(blocks[c] == OUTPUT_BLOCK for c in consumers.get(t, ()))
                for t in op["outputs"]):
            blocks[index] = OUTPUT_BLOCK
    return [GraphOp(i, op["op"], blocks[i], tuple(op["inputs"]), tuple(op["outputs"])) for i, op in enumerate(ops)]


def block_order(ops: list[GraphOp]) -> list[str]:
    """Blocks in an order where every block reads only from earlier ones (first appearance breaks ties)."""
    first = list(dict.fromkeys(op.block for op in ops))
    producer = {t: op.block for op in ops for t in op.outputs}
    needs: dict[str, set[str]] = {b: set() for b in first}
    for op in ops:
        needs[op.block].update(producer[t] for t in op.inputs if t in producer and producer[t] != op.block)
    ordered: list[str] = []
    while len(ordered) < len(first):
        ready = [b for b in first if b not in ordered and needs[b] <= set(ordered)]
        if not ready:  # blocks that read from each other (a cycle between blocks): keep appearance order
            ready = [b for b in first if b not in ordered]
        ordered.append(ready[0])
    return ordered


def _group_by_resolution(ops: list[dict[str, Any]], shapes: dict[int, tuple[int, ...]]) -> None:
    """A graph without module names (a foreign model): blocks by the output's spatial size."""
    for op in ops:
        shape = shapes.get(op["outputs"][0]) if op["outputs"] else None
        op["path"] = (f"at {shape[1]}x{shape[2]}",) if shape and len(shape) == 4 else ()


# --------------------------------------------------------------------------- LiteRT
def _interpreter(content: bytes, threads: int | None = None, delegate: bool = True):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    if delegate:
        return Interpreter(model_content=content, num_threads=threads or 1)
    return Interpreter(model_content=content,
                       experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)


def tflite_graph(content: bytes) -> tuple[list[GraphOp], set[int]]:
    """The flatbuffer's ops with their blocks, and the graph's input tensors."""
    interpreter = _interpreter(content, delegate=False)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    graph_inputs = {int(d["index"]) for d in interpreter.get_input_details()}
    graph_outputs = {int(d["index"]) for d in interpreter.get_output_details()}
    raw = []
    for op in interpreter._get_ops_details():
        outputs = [int(i) for i in op["outputs"]]
        name = tensors[outputs[0]]["name"] if outputs else ""
        raw.append({"op": op["op_name"], "inputs": [int(i) for i in op["inputs"] if i >= 0], "outputs": outputs,
                    "path": module_path(name)})
    if not any(op["path"] for op in raw):
        _group_by_resolution(raw, {i: tuple(int(d) for d in t["shape"]) for i, t in tensors.items()})
    return assign_blocks(raw, graph_inputs, graph_outputs), graph_inputs


def delegation(content: bytes, ops: list[GraphOp], threads: int) -> tuple[int, list[GraphOp]]:
    """-> (XNNPACK partitions, the ops it left to TFLite's own kernels).

    The interpreter lists every original node plus one DELEGATE node per partition (inputs: what the
    partition reads; outputs: what it hands on). An op ran outside the delegate when no partition
    produces its outputs and what it produces is read by a partition, by another outside op or is a
    graph output.
    """
    interpreter = _interpreter(content, threads)
    interpreter.allocate_tensors()
    nodes = interpreter._get_ops_details()
    partitions = [n for n in nodes if n["op_name"] == "DELEGATE"]
    delegate_out = {int(t) for n in partitions for t in n["outputs"]}
    delegate_in = {int(t) for n in partitions for t in n["inputs"]}
    graph_outputs = {int(d["index"]) for d in interpreter.get_output_details()}
    consumers: dict[int, list[int]] = {}
    for op in ops:
        for t in op.inputs:
            consumers.setdefault(t, []).append(op.index)
    outside: set[int] = set()
    changed = True
    while changed:
        changed = False
        for op in reversed(ops):
            if op.index in outside or delegate_out & set(op.outputs):
                continue
            if op.outputs and all(t in delegate_in or t in graph_outputs or any(c in outside for c in consumers.get(t, ()))
                                  for t in op.outputs):
                outside.add(op.index)
                changed = True
    return len(partitions), [op for op in ops if op.index in outside]


def prefix_model(content: bytes, keep: set[int]) -> bytes:
    """The .tflite with only the operators in `keep` (a dependency-closed prefix); every tensor they
    produce that a dropped op or the graph output reads becomes an output. Signatures are dropped."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    for buffer in model.buffers:
        if buffer.offset > 1:  # data stored after the flatbuffer (fp16 and dynamic-range files): lost on re-writing
            buffer.data = np.frombuffer(content, np.uint8, count=buffer.size, offset=buffer.offset)
            buffer.offset = buffer.size = 0
    graph = model.subgraphs[0]
    # weights and what is computed from weights alone (fp16 files' DEQUANTIZE ops): never outputs, since XNNPACK
    # cannot hand out a static tensor, and such an op is dropped when no kept op reads it
    constant = {i for i, t in enumerate(graph.tensors) if model.buffers[t.buffer].data is not None}
    for op in graph.operators:
        if all(int(t) in constant for t in op.inputs if t >= 0):
            constant.update(int(t) for t in op.outputs)
    kept = [op for i, op in enumerate(graph.operators) if i in keep]
    read_by_kept = {int(t) for op in kept for t in op.inputs}
    kept = [op for op in kept if not all(int(t) in constant and int(t) not in read_by_kept for t in op.outputs)]
    dropped = [op for i, op in enumerate(graph.operators) if i not in keep]
    read_later = {int(t) for op in dropped for t in op.inputs if t >= 0} | {int(t) for t in graph.outputs}
    outputs = [int(t) for op in kept for t in op.outputs if int(t) in read_later and int(t) not in constant]
    graph.operators = kept
    graph.outputs = np.array(list(dict.fromkeys(outputs)), dtype=np.int32)
    model.signatureDefs = []
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _with_ancestors(ops: list[GraphOp], keep: set[int]) -> set[int]:
    """`keep` plus every op it depends on (only grows `keep` when blocks read from later blocks)."""
    producer = {t: op.index for op in ops for t in op.outputs}
    pending = list(keep)
    keep = set(keep)
    while pending:
        for t in ops[pending.pop()].inputs:
            source = producer.get(t)
            if source is not None and source not in keep:
                keep.add(source)
                pending.append(source)
    return keep


def _invoker(content: bytes, threads: int):
    interpreter = _interpreter(content, threads)
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    return interpreter.invoke


@dataclass
class _TflitePlan:
    path: str
    content: bytes
    ops: list[GraphOp]
    blocks: list[str]
    prefixes: list[bytes]


def _plan_tflite(path: str) -> _TflitePlan:
    content = Path(path).read_bytes()
    ops, _ = tflite_graph(content)
    blocks = block_order(ops)
    prefixes = []
    for k in range(1, len(blocks) + 1):
        keep = _with_ancestors(ops, {op.index for op in ops if op.block in blocks[:k]})
        prefixes.append(content if k == len(blocks) else prefix_model(content, keep))
    return _TflitePlan(path, content, ops, blocks, prefixes)


def _tflite_profile(plan: _TflitePlan, stats: list[LatencyStats], threads: int) -> Profile:
    partitions, outside = delegation(plan.content, plan.ops, threads)
    blocks = []
    previous = np.zeros(len(stats[0].round_medians_ms))
    for block, prefix in zip(plan.blocks, stats):
        current = np.asarray(prefix.round_medians_ms)
        block_ops = [op for op in plan.ops if op.block == block]
        # prefixes are timed back to back within a round: differencing inside a round cancels drift
        blocks.append(BlockTime(block, float(np.median(current - previous)), dict(Counter(op.op for op in block_ops)),
                                [op.op for op in outside if op.block == block]))
        previous = current
    return Profile(
        path=plan.path, format="tflite", runtime="litert", precision=_precision_of(plan.path), threads=threads,
        total_ms=stats[-1].median_ms, method="prefix differencing: the graph cut after each block, every prefix "
        "timed back to back in each round of one interleaved run (LiteRT + XNNPACK); block = median over rounds of "
        "t(prefix k) - t(prefix k-1)",
        blocks=blocks, partitions=partitions, outside_delegate=[f"{op.op} ({op.block})" for op in outside])


# --------------------------------------------------------------------------- ONNX Runtime
_KERNEL_SUFFIX = re.compile(r"(_token_\d+|_nchwc|_kernel_time)+$")


def onnx_graph(model) -> tuple[list[GraphOp], dict[str, int], dict[str, int]]:
    """ONNX nodes with blocks -> (ops, node name -> op index, output tensor name -> op index).

    Module paths come from the node metadata the export writes (MODULE_SCOPE_KEY); older artifacts
    without it fall back to the names of the weights a node reads ("core.backbone.stem.0.weight").
    """
    tensor_ids: dict[str, int] = {}

    def tid(name: str) -> int:
        return tensor_ids.setdefault(name, len(tensor_ids))

    initializers = {i.name for i in model.graph.initializer}
    graph_inputs = {tid(i.name) for i in model.graph.input if i.name not in initializers}
    graph_outputs = {tid(o.name) for o in model.graph.output}
    raw = []
    by_name, by_output = {}, {}
    for index, node in enumerate(model.graph.node):
        scope = next((p.value for p in node.metadata_props if p.key == MODULE_SCOPE_KEY), None)
        path: tuple[str, ...] | None = _strip_wrappers(scope.split(".")) if scope else None
        if path is None:
            weight = next((n for n in node.input if n in initializers and n.count(".") >= 2), None)
            path = _path_from_weight(weight) if weight else ()
        raw.append({"op": node.op_type, "inputs": [tid(n) for n in node.input if n and n not in initializers],
                    "outputs": [tid(n) for n in node.output], "path": path})
        by_name[node.name] = index
        for name in node.output:
            by_output[name] = index
    return assign_blocks(raw, graph_inputs, graph_outputs), by_name, by_output


def _strip_wrappers(parts: list[str]) -> tuple[str, ...]:
    while parts and parts[0] in WRAPPER_ATTRIBUTES:
        parts = parts[1:]
    return tuple(parts)


def _path_from_weight(name: str) -> tuple[str, ...]:
    return _strip_wrappers(name.split(".")[:-1])  # drop "weight" / "bias"


def profile_onnx(path: str, threads: int, timing: TimingConfig) -> Profile:
    import onnx
    import onnxruntime as ort

    model = onnx.load(path, load_external_data=False)
    ops, by_name, by_output = onnx_graph(model)
    with tempfile.TemporaryDirectory(prefix="atpn_ort_profile_") as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tmp, "ort")
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        feed = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], _onnx_dtype(i.type))
                for i in session.get_inputs()}
        for _ in range(timing.warmup_runs):
            session.run(None, feed)
        runs = max(timing.runs_per_round * timing.rounds, 10)
        for _ in range(runs):
            session.run(None, feed)
        with open(session.end_profiling()) as f:
            events = json.load(f)
    node_events = [e for e in events if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]
    run_events = [e["dur"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    # the profile holds the warm-up runs too: keep the last `runs` of each kernel
    per_kernel: dict[tuple[str, str], list[float]] = {}
    for e in node_events:
        per_kernel.setdefault((e["name"][: -len("_kernel_time")], e["args"].get("op_name", "?")), []).append(e["dur"])
    kernels = []
    for (name, op), durations in per_kernel.items():
        index = _match_kernel(name, by_name, by_output)
        block = ops[index].block if index is not None else "unattributed"
        kernels.append(KernelTime(name, op, block, float(np.median(durations[-runs:])) / 1e3))
    total = float(np.median(run_events[-runs:])) / 1e3 if run_events else sum(k.ms for k in kernels)
    by_block: dict[str, list[KernelTime]] = {}
    for k in kernels:
        by_block.setdefault(k.block, []).append(k)
    order = [b for b in block_order(ops) if b in by_block] + [b for b in by_block if b not in block_order(ops)]
    blocks = [BlockTime(b, sum(k.ms for k in by_block[b]), dict(Counter(k.op for k in by_block[b]))) for b in order]
    kernel_sum = sum(k.ms for k in kernels)
    return Profile(
        path=path, format="onnx", runtime="onnxruntime", precision=_precision_of(path), threads=threads, total_ms=total,
        method="ONNX Runtime's profiler (SessionOptions.enable_profiling): median per executed kernel over "
        f"{runs} runs, after the session's graph optimisations",
        blocks=blocks, kernels=kernels,
        notes=[f"kernels sum to {kernel_sum:.3f} ms of the {total:.3f} ms run (the rest is the session's own overhead)"])


def _onnx_dtype(type_name: str):
    return {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}.get(type_name, np.float32)


def _match_kernel(name: str, by_name: dict[str, int], by_output: dict[str, int]) -> int | None:
    """An ORT kernel name -> the ONNX node it came from (fused kernels keep the name of a node or of
    the tensor they produce, with suffixes like _token_12 or _nchwc)."""
    for candidate in (name, _KERNEL_SUFFIX.sub("", name)):
        for table in (by_name, by_output):
            if candidate in table:
                return table[candidate]
    return None


# --------------------------------------------------------------------------- both
def _precision_of(path: str) -> str:
    from atpn_edge.runtime._common import read_sidecar

    metadata: dict[str, Any] = {}
    try:
        if path.endswith(".tflite"):
            metadata = read_sidecar(Path(path))
        else:
            import onnx

            model = onnx.load(path, load_external_data=False)
            metadata = next((json.loads(p.value) for p in model.metadata_props if p.key == "atpn_edge"), {})
    except Exception:  # noqa: BLE001 - a foreign artifact has no metadata
        metadata = {}
    return metadata.get("precision") or ("int8" if "int8" in Path(path).name else "fp32")


def profile_artifacts(paths: list[str], threads: int = 1, timing: TimingConfig | None = None) -> list[Profile]:
    """Profile .tflite and .onnx files; all .tflite prefixes are timed in one interleaved run."""
    timing = timing or TimingConfig(warmup_runs=20, runs_per_round=100, rounds=9, min_seconds_per_round=0.1)
    for path in paths:
        if not Path(path).is_file():
            raise UserError(f"{path}: no such file")
        if Path(path).suffix.lower() not in (".tflite", ".onnx"):
            raise UserError(f"{path}: profiling takes .tflite or .onnx artifacts")
    plans = {p: _plan_tflite(p) for p in paths if p.lower().endswith(".tflite")}
    calls = {(p, k): _invoker(content, threads) for p, plan in plans.items() for k, content in enumerate(plan.prefixes)}
    log.info("profiling %d .tflite file(s): %d prefixes timed interleaved", len(plans), len(calls))
    stats = time_interleaved(calls, timing)
    failed = {key: value for key, value in stats.items() if isinstance(value, BaseException)}
    if failed:
        key, error = next(iter(failed.items()))
        raise RuntimeError(f"{key[0]}: prefix {key[1] + 1} of the graph did not run: {error}")
    profiles = []
    for path in paths:
        if path in plans:
            prefix_stats = [stats[(path, k)] for k in range(len(plans[path].prefixes))]
            profiles.append(_tflite_profile(plans[path], prefix_stats, threads))
        else:
            profiles.append(profile_onnx(path, threads, timing))
    return profiles


# --------------------------------------------------------------------------- a phone (adb)
DELEGATE_BLOCK = "xnnpack (inside the delegate)"


def profile_from_op_table(path: str, tool_result, threads: int, delegate: str) -> Profile:
    """A benchmark_model run with --enable_op_profiling=true -> Profile.

    The TFLite nodes the tool names ("[...]:N") get the block of node N in the local .tflite; the
    operators XNNPACK reports from inside its delegate carry no TFLite node, so their time is one
    block, DELEGATE_BLOCK, with the per-operator rows kept as kernels.
    """
    ops, _ = tflite_graph(Path(path).read_bytes())
    rows = tool_result.extra.get("op_profile") or []
    if not rows:
        raise RuntimeError(f"{path}: benchmark_model printed no operator-wise profile")
    kernels = []
    for row in rows:
        if row.inside_delegate:
            block = DELEGATE_BLOCK
        elif row.node_index is not None and row.node_index < len(ops):
            block = ops[row.node_index].block
        else:
            block = "unattributed"
        kernels.append(KernelTime(row.name, row.op, block, row.avg_ms))
    by_block: dict[str, list[KernelTime]] = {}
    for k in kernels:
        by_block.setdefault(k.block, []).append(k)
    order = [b for b in block_order(ops) if b in by_block] + [b for b in by_block if b not in block_order(ops)]
    outside = [f"{k.op} ({k.block})" for k in kernels
               if k.block != DELEGATE_BLOCK and not k.op.startswith("TfLite") and "Delegate" not in k.op]
    return Profile(
        path=path, format="tflite", runtime=f"benchmark_model ({delegate})", precision=_precision_of(path), threads=threads,
        total_ms=tool_result.typical_ms, method="TFLite benchmark_model --enable_op_profiling=true on the device: the "
        "tool's operator-wise Run Order table (avg ms per run); XNNPACK's own operators are one block, nodes outside "
        "it map to blocks by node index",
        blocks=[BlockTime(b, sum(k.ms for k in by_block[b]), dict(Counter(k.op for k in by_block[b]))) for b in order],
        kernels=kernels, partitions=tool_result.partitions, outside_delegate=outside,
        notes=[f"ops sum to {sum(k.ms for k in kernels):.3f} ms of the tool's {tool_result.typical_ms:.3f} ms per run "
               "(profiling adds its own overhead)"])


def profile_on_device(paths: list[str], binary: str, serial: str | None, threads: int = 1, delegate: str = "xnnpack",
                      num_runs: int = 200, warmup_runs: int = 20) -> list[Profile]:
    """Run benchmark_model --enable_op_profiling on an adb device for each .tflite."""
    from atpn_edge.bench.targets import AdbTarget

    for path in paths:
        if not path.lower().endswith(".tflite"):
            raise UserError(f"{path}: the adb target profiles .tflite artifacts")
    results = AdbTarget(binary, serial, delegate).run(paths, threads, num_runs, warmup_runs,
                                                      extra_flags=("--enable_op_profiling=true",))
    profiles = []
    for path in paths:
        result = results[path]
        if isinstance(result, BaseException):
            raise UserError(f"{path}: benchmark_model on the device failed: {result}")
        profiles.append(profile_from_op_table(path, result, threads, delegate))
    return profiles
