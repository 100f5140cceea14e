"""Parsers for the text that benchmark tools print (formats: TFLite benchmark_model,
ai_edge_litert.tools.benchmark_litert_model, onnxruntime_perf_test; tests/fixtures/bench/README.md says where each format comes from).

Every parser returns a `ToolResult`: latencies in milliseconds, what the tool said about memory
and delegation, and the lines it could not make sense of are ignored. A text that holds no
inference timing raises `ToolOutputError` with the tool's last error-looking line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


class ToolOutputError(ValueError):
    """The tool's output holds no inference timing (it failed, or this is not its output)."""


@dataclass(frozen=True)
class ToolResult:
    tool: str
    median_ms: float | None  # the tool's median; None when it prints none (then avg_ms is the figure)
    avg_ms: float
    p90_ms: float | None = None
    p95_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    std_ms: float | None = None
    runs: int | None = None
    init_ms: float | None = None
    first_ms: float | None = None
    warmup_avg_ms: float | None = None
    peak_memory_mb: float | None = None
    init_memory_mb: float | None = None
    delegated_nodes: int | None = None
    total_nodes: int | None = None
    partitions: int | None = None
    fully_delegated: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def typical_ms(self) -> float:
        """The median when the tool reports one, else its average."""
        return self.median_ms if self.median_ms is not None else self.avg_ms


def _strip_prefix(line: str) -> str:
    line = line.strip()
    for prefix in ("INFO: ", "INFO:", "I "):
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    return line


def parse_stat_line(line: str) -> dict[str, float] | None:
    """`count=50 first=1 curr=2 min=1 max=3 avg=1.5 std=0 [p5=.. median=.. p95=..]` or
    `count=1 curr=2.95e+06 (all same)` -> {name: value} (values as printed, microseconds)."""
    line = _strip_prefix(line)
    if not line.startswith("count="):
        return None
    values = {k: float(v) for k, v in re.findall(rf"(\w+)=({_NUMBER})", line)}
    if "(all same)" in line and "curr" in values:
        for key in ("first", "min", "max", "avg", "median", "p5", "p95"):
            values.setdefault(key, values["curr"])
        values.setdefault("std", 0.0)
    return values


def _error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.search(r"error|failed|fail|cannot|can't|not found|aborted|denied", ln, re.I)]
    return (errors or lines or ["(no output)"])[-1][:300]


def parse_benchmark_model(text: str) -> ToolResult:
    """TFLite's native `benchmark_model` (desktop lines start with `INFO: `; Android logs without it).

    The tool prints two `count=` statistics lines: the warm-up block, then the measured block; the
    last one is the measured inference. Its values are microseconds.
    """
    lines = [_strip_prefix(ln) for ln in text.splitlines()]
    stats = [s for s in (parse_stat_line(ln) for ln in lines) if s is not None]
    timings: dict[str, float] = {}
    memory: dict[str, float] = {}
    delegate: dict[str, int] = {}
    for line in lines:
        if line.startswith("Inference timings in us:"):
            for key, value in re.findall(rf"([A-Za-z][A-Za-z ()]*?):\s*({_NUMBER})", line.split(":", 1)[1]):
                timings[key.strip()] = float(value)
        m = re.match(rf"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\):\s*init=({_NUMBER})\s+overall=({_NUMBER})", line)
        if m:
            memory = {"init": float(m.group(1)), "overall": float(m.group(2))}
        m = re.search(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \(([^)]+)\) node, yielding (\d+) partitions", line)
        if m:
            delegate = {"delegated": int(m.group(1)), "total": int(m.group(2)), "partitions": int(m.group(4))}
            delegate_name = m.group(3)
    if "Inference (avg)" not in timings and not stats:
        raise ToolOutputError(f"benchmark_model printed no inference timing: {_error_line(text)}")
    measured = stats[-1] if stats else {}
    us = 1e-3

    def ms(key: str) -> float | None:
        return measured[key] * us if key in measured else None

    avg = timings.get("Inference (avg)", measured.get("avg"))
    return ToolResult(
        tool="benchmark_model",
        median_ms=ms("median"),
        avg_ms=float(avg) * us,
        p95_ms=ms("p95"),
        min_ms=ms("min"),
        max_ms=ms("max"),
        std_ms=ms("std"),
        runs=int(measured["count"]) if "count" in measured else None,
        init_ms=timings["Init"] * us if "Init" in timings else None,
        first_ms=timings["First inference"] * us if "First inference" in timings else None,
        warmup_avg_ms=timings["Warmup (avg)"] * us if "Warmup (avg)" in timings else None,
        peak_memory_mb=memory.get("overall"),
        init_memory_mb=memory.get("init"),
        delegated_nodes=delegate.get("delegated"),
        total_nodes=delegate.get("total"),
        partitions=delegate.get("partitions"),
        fully_delegated=(delegate["delegated"] == delegate["total"] and delegate["partitions"] == 1) if delegate else None,
        extra={**({"delegate": delegate_name} if delegate else {}), **_op_profile_extra(text)},
    )


def _op_profile_extra(text: str) -> dict[str, Any]:
    """{"op_profile": [ProfiledOp, ...]} when the run was made with --enable_op_profiling=true."""
    if "Operator-wise Profiling Info" not in text:
        return {}
    try:
        return {"op_profile": parse_op_profile(text)}
    except ToolOutputError:
        return {}


_LITERT_FIELDS = {
    "Model initialization": "init_ms",
    "Warmup (first)": "first_ms",
    "Warmup (avg)": "warmup_avg_ms",
    "Inference (avg)": "avg_ms",
    "Inference (min)": "min_ms",
    "Inference (max)": "max_ms",
    "Inference (median)": "median_ms",
    "Inference (std)": "std_ms",
    "Inference (p95)": "p95_ms",
}


def parse_litert_benchmark(text: str) -> ToolResult:
    """`python -m ai_edge_litert.tools.benchmark_litert_model` (its BENCHMARK RESULTS block, ms)."""
    values: dict[str, Any] = {}
    runs = None
    fully = None
    for raw in text.splitlines():
        line = raw.strip()
        m = re.match(rf"^(.+?):\s+({_NUMBER})\s*ms(?:\s*\((\d+) runs\))?", line)
        if m and m.group(1) in _LITERT_FIELDS:
            values[_LITERT_FIELDS[m.group(1)]] = float(m.group(2))
            if m.group(1) == "Inference (avg)" and m.group(3):
                runs = int(m.group(3))
            continue
        m = re.match(r"^Fully accelerated:\s+(True|False)", line)
        if m:
            fully = m.group(1) == "True"
    if "avg_ms" not in values:
        raise ToolOutputError(f"benchmark_litert_model printed no inference timing: {_error_line(text)}")
    return ToolResult(tool="benchmark_litert_model", runs=runs, fully_delegated=fully, **values)


def parse_litert_benchmark_json(result: dict[str, Any]) -> ToolResult:
    """The --result_json file of benchmark_litert_model."""
    latency = result.get("latency") or {}
    if "avg_ms" not in latency:
        raise ToolOutputError("benchmark_litert_model's result JSON has no latency.avg_ms")
    return ToolResult(
        tool="benchmark_litert_model",
        median_ms=latency.get("median_ms"), avg_ms=latency["avg_ms"], p95_ms=latency.get("p95_ms"),
        min_ms=latency.get("min_ms"), max_ms=latency.get("max_ms"), std_ms=latency.get("std_ms"),
        runs=latency.get("num_runs"), init_ms=latency.get("init_ms"), first_ms=latency.get("warmup_first_ms"),
        warmup_avg_ms=latency.get("warmup_avg_ms"), fully_delegated=result.get("fully_accelerated"),
    )


def parse_onnxruntime_perf_test(text: str) -> ToolResult:
    """`onnxruntime_perf_test [-s] model result_file`: average in ms, percentiles in seconds."""
    avg = re.search(rf"Average inference time cost:\s*({_NUMBER})\s*ms", text)
    if not avg:
        raise ToolOutputError(f"onnxruntime_perf_test printed no inference timing: {_error_line(text)}")
    percentiles = {int(p): float(v) * 1e3 for p, v in re.findall(rf"P(\d+) Latency:\s*({_NUMBER})\s*s", text)}
    runs = re.search(r"Total inference requests:\s*(\d+)", text)
    peak = re.search(r"Peak working set size:\s*(\d+)\s*bytes", text)
    per_second = re.search(rf"Number of inferences per second:\s*({_NUMBER})", text)
    return ToolResult(
        tool="onnxruntime_perf_test",
        median_ms=percentiles.get(50), avg_ms=float(avg.group(1)), p90_ms=percentiles.get(90),
        p95_ms=percentiles.get(95), max_ms=percentiles.get(999) or None,
        runs=int(runs.group(1)) if runs else None,
        peak_memory_mb=int(peak.group(1)) / 2**20 if peak else None,
        extra={"inferences_per_second": float(per_second.group(1))} if per_second else {},
    )


@dataclass(frozen=True)
class ProfiledOp:
    """One row of benchmark_model's operator-wise "Run Order" table."""

    op: str  # node type: a TFLite builtin (CONV_2D), a delegate node, or an XNNPACK operator inside the delegate
    name: str
    first_ms: float
    avg_ms: float  # per run (all calls of the op in one inference)
    percent: float
    times_called: int  # per run
    node_index: int | None  # the TFLite node ("[tensor names]:N"); None inside a delegate
    inside_delegate: bool  # an XNNPACK operator (named "Delegate/...:k"), k counts the delegate's own operators


_OP_ROW = re.compile(rf"^(?P<op>\S.*?)\s+(?:(?P<start>{_NUMBER})\s+)?(?P<first>{_NUMBER})\s+(?P<avg>{_NUMBER})\s+"
                     rf"(?P<pct>{_NUMBER})%\s+(?P<cdf>{_NUMBER})%\s+(?P<mem>{_NUMBER})\s+(?P<times>\d+)\s+(?P<name>\S.*)$")


def parse_op_profile(text: str) -> list[ProfiledOp]:
    """The operator-wise table of `benchmark_model --enable_op_profiling=true` (its Run Order table under
    "Operator-wise Profiling Info for Regular Benchmark Runs"; the initialization profile is skipped).

    Both layouts of the tool's stats table are read: older releases print a [start] column, newer ones
    do not; rows are tab- or space-separated; XNNPACK reports its own operators ("Delegate/Convolution
    (NHWC, QC8) IGEMM:3") and the nodes it left to TFLite keep their names ("[tensor]:17").
    """
    lines = [_strip_prefix(line) for line in text.splitlines()]
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("Operator-wise Profiling Info for Regular Benchmark Runs"))
        table = next(i for i in range(start, len(lines)) if "= Run Order =" in lines[i])
    except StopIteration:
        raise ToolOutputError(f"benchmark_model printed no operator-wise profile (run it with --enable_op_profiling=true): "
                              f"{_error_line(text)}") from None
    has_start = "[start]" in lines[table + 1]
    ops = []
    for line in lines[table + 2:]:
        if not line.strip() or line.startswith("="):
            break
        m = _OP_ROW.match(line.strip())
        if not m or (m["start"] is not None) != has_start:
            continue
        name = m["name"].strip()
        index = re.search(r"\]:(\d+)$", name)
        ops.append(ProfiledOp(op=m["op"].strip(), name=name, first_ms=float(m["first"]), avg_ms=float(m["avg"]),
                              percent=float(m["pct"]), times_called=int(m["times"]),
                              node_index=int(index.group(1)) if index else None,
                              inside_delegate=name.startswith("Delegate/")))
    if not ops:
        raise ToolOutputError("benchmark_model's operator-wise profile has an empty Run Order table")
    return ops
