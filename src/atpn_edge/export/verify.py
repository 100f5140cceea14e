"""Verify an exported artifact in its own runtime against PyTorch, and check that int8 is really int8.

Report (JSON next to the artifact, `<artifact>.verify.json`):
    parity.<reference>.<output>: {max_abs, mean_abs} on the same normalised inputs
        reference "pytorch" (the model exported: float, or the quantized GraphModule) and, for
        quantized artifacts, also "float" (the float model it came from)
    ops: op-type histogram; int8: {float_compute_ops, fake_quant_pairs, ok}
A failed check raises VerificationError with the numbers.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# Landmarks are normalised crop coordinates: 1e-4 is 0.011 px on a 112 px crop.
FLOAT_LANDMARK_TOL = 1e-4
# Coarse "the artifact is broken" guards for lossy precisions vs their own PyTorch reference, in
# normalised crop units: (mean over all points, worst single point). A broken conversion moves every
# point (the mean); int8 rounding can move one point of a hard face far (the max): a trained ATPN's
# ORT QDQ int8 had mean 4e-3 with one point at 0.09 while its NME rose only 1 %.
LOSSY_LANDMARK_TOL = {"fp16": (1e-3, 5e-3), "dynamic-int8": (1e-2, 0.15), "int8": (1e-2, 0.15)}
# The other outputs, (mean, max) in their own units: pose in degrees, face score in [0, 1], box in crop
# units. int8 of the trained demo ATPN against its PyTorch reference: pose 0.41-0.67 deg mean, 1.4-1.6
# worst; face score 6e-4 worst; box 0.023 mean, 0.05 worst (ORT). fp32: pose 3e-5 deg.
OTHER_OUTPUT_TOL = {
    "fp32": {"pose": (1e-2, 1e-2), "face_score": (1e-4, 1e-4), "face_box": (1e-4, 1e-4)},
    "fp16": {"pose": (0.1, 0.5), "face_score": (1e-3, 5e-3), "face_box": (1e-3, 5e-3)},
    "dynamic-int8": {"pose": (2.0, 15.0), "face_score": (0.02, 0.2), "face_box": (0.05, 0.3)},
    "int8": {"pose": (2.0, 15.0), "face_score": (0.02, 0.2), "face_box": (0.05, 0.3)},
}
COMPUTE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
# Ops that must run in int8 in an int8 artifact; a DEQUANTIZE -> op -> QUANTIZE around them is fake quantization.
INT8_EXPECTED_OPS = COMPUTE_OPS + ("ADD", "MUL", "SUB", "CONCATENATION", "MEAN", "AVERAGE_POOL_2D", "MAX_POOL_2D",
                                   "RESHAPE", "PAD", "TRANSPOSE")


class VerificationError(RuntimeError):
    def __init__(self, message: str, report: dict):
        super().__init__(message)
        self.report = report


def compare_outputs(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    diffs = {}
    for name in want:
        if name not in got:
            diffs[name] = {"missing": True}
            continue
        d = np.abs(got[name].astype(np.float64) - want[name].astype(np.float64))
        diffs[name] = {"max_abs": float(d.max()), "mean_abs": float(d.mean())}
    return diffs


def run_all(run, inputs: np.ndarray) -> dict[str, np.ndarray]:
    rows = [run(inputs[i : i + 1]) for i in range(len(inputs))]
    return {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}


def tflite_ops(tflite_path: str) -> list[dict[str, Any]]:
    """The flatbuffer's operators (no delegate applied) with input/output tensor dtypes and producers."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=tflite_path,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops = []
    for op in interpreter._get_ops_details():
        if op["op_name"] == "DELEGATE":
            continue
        ops.append({
            "op": op["op_name"],
            "inputs": [int(i) for i in op["inputs"] if i >= 0],
            "outputs": [int(i) for i in op["outputs"]],
            "input_dtypes": [np.dtype(tensors[i]["dtype"]).name for i in op["inputs"] if i >= 0],
        })
    return ops


def op_histogram(ops: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for op in ops:
        counts[op["op"]] = counts.get(op["op"], 0) + 1
    return dict(sorted(counts.items()))


def tflite_int8_check(ops: list[dict[str, Any]], allow_float_ops: tuple[str, ...] = (),
                      max_float_compute: int = 0) -> dict[str, Any]:
    """Float CONV/DEPTHWISE/FC ops and DEQUANTIZE -> op -> QUANTIZE fake-quant pairs in a TFLite graph.

    A DEQUANTIZE of a constant (a weight) is not an activation round trip and is ignored, and so are
    pairs around op types in `allow_float_ops` (a recipe's deliberate float islands). A mixed-precision
    graph keeps up to `max_float_compute` CONV/DEPTHWISE/FC ops in float (the layers of the modules its
    recipe names); one more float compute op than that fails the check.
    """
    producer = {t: op for op in ops for t in op["outputs"]}
    consumers: dict[int, list[dict]] = {}
    for op in ops:
        for t in op["inputs"]:
            consumers.setdefault(t, []).append(op)
    float_compute = [
        f"{op['op']}({', '.join(op['input_dtypes'][:2])})"
        for op in ops
        if op["op"] in COMPUTE_OPS and any(d.startswith("float") for d in op["input_dtypes"][:2])
    ]
    fake_quant = []
    for op in ops:
        if op["op"] in ("QUANTIZE", "DEQUANTIZE"):
            continue
        dequantized_inputs = [
            producer[t] for t in op["inputs"]
            if t in producer and producer[t]["op"] == "DEQUANTIZE" and producer[t]["inputs"][0] in producer
        ]
        requantized = any(c["op"] == "QUANTIZE" for t in op["outputs"] for c in consumers.get(t, []))
        if dequantized_inputs and requantized:
            fake_quant.append(op["op"])
    unexpected = [name for name in fake_quant if name in INT8_EXPECTED_OPS and name not in allow_float_ops]
    num_compute = sum(op["op"] in COMPUTE_OPS for op in ops)
    return {
        "float_compute_ops": float_compute,
        "float_compute_allowed": max_float_compute,
        "int8_compute_ops": num_compute - len(float_compute),
        "fake_quant_pairs": fake_quant,
        "unexpected_fake_quant": unexpected,
        "num_quantize": sum(op["op"] == "QUANTIZE" for op in ops),
        "num_dequantize": sum(op["op"] == "DEQUANTIZE" for op in ops),
        "ok": len(float_compute) <= max_float_compute and num_compute > len(float_compute) and not unexpected,
    }


def verify_artifact(
    predictor,
    inputs: np.ndarray,
    reference: dict[str, np.ndarray],
    *,
    precision: str,
    float_reference: dict[str, np.ndarray] | None = None,
    int8_report: dict[str, Any] | None = None,
    ops: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Run `predictor.run_normalized` on (N, 3, S, S) inputs, compare with PyTorch, apply the checks."""
    got = run_all(predictor.run_normalized, inputs)
    report: dict[str, Any] = {
        "runtime": predictor.runtime,
        "precision": precision,
        "num_inputs": int(len(inputs)),
        "parity": {"pytorch": compare_outputs(got, reference)},
        "ops": ops or {},
    }
    if float_reference is not None:
        report["parity"]["float"] = compare_outputs(got, float_reference)
    if int8_report is not None:
        report["int8"] = int8_report
    failures = []
    parity = report["parity"]["pytorch"]
    if any(v.get("missing") for v in parity.values()):
        failures.append(f"outputs missing from the artifact: {parity}")
    landmark_tol = (FLOAT_LANDMARK_TOL, FLOAT_LANDMARK_TOL) if precision == "fp32" else LOSSY_LANDMARK_TOL[precision]
    tolerances = {"landmarks": landmark_tol, **OTHER_OUTPUT_TOL[precision]}
    report["landmark_tolerance"] = {"mean_abs": landmark_tol[0], "max_abs": landmark_tol[1]}
    report["tolerance"] = {name: {"mean_abs": mean, "max_abs": worst} for name, (mean, worst) in tolerances.items()}
    for name, (mean_tol, max_tol) in tolerances.items():
        diff = parity.get(name, {})
        if diff.get("max_abs", 0.0) > max_tol:
            failures.append(f"{name} differ from PyTorch by {diff['max_abs']:.3g} at worst (> {max_tol:g})")
        if diff.get("mean_abs", 0.0) > mean_tol:
            failures.append(f"{name} differ from PyTorch by {diff['mean_abs']:.3g} on average (> {mean_tol:g})")
    if int8_report is not None and not int8_report["ok"]:
        failures.append(f"not int8: float compute {int8_report['float_compute_ops']} "
                        f"(allowed: {int8_report.get('float_compute_allowed', 0)} kept in float by the recipe), "
                        f"fake-quant pairs {int8_report.get('unexpected_fake_quant', [])}")
    report["ok"] = not failures
    report["failures"] = failures
    if failures:
        raise VerificationError(f"{predictor.name}: " + "; ".join(failures), report)
    return report
