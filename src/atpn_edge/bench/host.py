"""The machine a benchmark ran on, and its measured compute peak ("distance to the limit").

Peak: one large matrix product timed in ONNX Runtime's MLAS kernels (the same kind of hand-tuned
GEMM that XNNPACK and ORT run convolutions on), single thread and all cores:
    fp32  MatMul         (M=N=K=768 by default)  -> GMAC/s
    int8  MatMulInteger  (uint8 x int8 -> int32)  -> GMAC/s (multiply-accumulates of 8-bit values)
A model's achieved GMAC/s is its MAC count / median latency; its share of the peak says how close
the runtime gets to what the core can do (small convolutions and depthwise layers reach far less
than a big GEMM: that gap is the headroom a better kernel or layout could win).
"""

from __future__ import annotations

import functools
import logging
import os
import platform
import time
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "neon", "asimd", "asimddp")
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    have = set(line.split(":", 1)[1].split())
                    return [w for w in wanted if w in have]
    except OSError:
        pass
    return []


def runtime_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {}
    for dist in ("torch", "ai-edge-litert", "onnxruntime", "executorch", "litert-torch", "numpy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return versions


def host_info() -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "runtimes": runtime_versions(),
        "load_average_1m": round(load[0], 2),
    }


@dataclass(frozen=True)
class PeakConfig:
    size: int = 768  # M = N = K
    repeats: int = 7  # timed products; the median is used


def _session(graph_bytes: bytes, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(graph_bytes, options, providers=["CPUExecutionProvider"])


def _matmul_graph(kind: str, size: int) -> tuple[bytes, np.ndarray]:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if kind == "fp32":
        a = rng.standard_normal((size, size)).astype(np.float32)
        b = rng.standard_normal((size, size)).astype(np.float32)
        node = helper.make_node("MatMul", ["a", "b"], ["y"])
        a_type, y_type = TensorProto.FLOAT, TensorProto.FLOAT
    else:
        a = rng.integers(0, 256, (size, size), dtype=np.uint8)
        b = rng.integers(-128, 128, (size, size), dtype=np.int8)
        node = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
        a_type, y_type = TensorProto.UINT8, TensorProto.INT32
    graph = helper.make_graph(
        [node], f"peak_{kind}", [helper.make_tensor_value_info("a", a_type, [size, size])],
        [helper.make_tensor_value_info("y", y_type, [size, size])], initializer=[numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString(), a


def measure_matmul_gmacs(kind: str, threads: int, config: PeakConfig = PeakConfig()) -> float:
    """GMAC/s of one size^3 matrix product in ONNX Runtime (median of `repeats`)."""
    graph, a = _matmul_graph(kind, config.size)
    session = _session(graph, threads)
    feed = {"a": a}
    session.run(None, feed)
    times = []
    for _ in range(config.repeats):
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - t0)
    return config.size**3 / float(np.median(times)) / 1e9


PEAK_RUNTIME = "onnxruntime"  # the runtime whose kernels measure_peak times (MLAS, AMX/VNNI where the CPU has them)


@functools.lru_cache(maxsize=8)
def measure_peak(threads: tuple[int, ...] = (1,), config: PeakConfig = PeakConfig()) -> dict:
    """{"fp32": {threads: GMAC/s}, "int8": {...}, "method": ...} measured now (cached per process)."""
    result: dict = {"method": f"ONNX Runtime MLAS {config.size}^3 MatMul (fp32) / MatMulInteger (u8 x s8), median of {config.repeats}"}
    for kind in ("fp32", "int8"):
        result[kind] = {}
        for t in threads:
            try:
                result[kind][str(t)] = round(measure_matmul_gmacs(kind, t, config), 2)
            except Exception as e:  # noqa: BLE001 - a missing runtime must not stop the benchmark
                log.warning("peak %s at %d threads not measured: %s", kind, t, e)
                result[kind][str(t)] = None
    log.info("host peak (GMAC/s): fp32 %s, int8 %s", result["fp32"], result["int8"])
    return result


def peak_share(macs: int | None, latency_ms: float | None, peak: dict, precision_kind: str, threads: int) -> tuple[float | None, float | None]:
    """-> (achieved GMAC/s, share of the host's peak for that precision and thread count)."""
    if not macs or not latency_ms:
        return None, None
    achieved = macs / (latency_ms * 1e-3) / 1e9
    ceiling = (peak.get(precision_kind) or {}).get(str(threads))
    return achieved, (achieved / ceiling if ceiling else None)
