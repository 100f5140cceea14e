"""Latency measurement: warm-up, then timed runs; median and p90 with the number of runs.

On a shared CPU the absolute numbers drift; compare ratios measured in the same run (the harness
interleaves the models round by round so that drift hits all of them alike).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TimingConfig:
    warmup_runs: int = 20  # untimed calls before measuring (allocations, caches, XNNPACK packing)
    runs_per_round: int = 50  # timed calls per round
    rounds: int = 3  # rounds, interleaved across the models of one run
    min_seconds_per_round: float = 0.2  # keep timing a round until at least this long has passed

    def __post_init__(self) -> None:
        if self.runs_per_round < 1 or self.rounds < 1 or self.warmup_runs < 0:
            raise ValueError("timing needs at least one run per round, one round and no negative warm-up")


@dataclass(frozen=True)
class LatencyStats:
    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    runs: int
    round_medians_ms: tuple[float, ...] = ()

    def to_json(self) -> dict:
        return {"median": self.median_ms, "p90": self.p90_ms, "runs": self.runs, "mean": self.mean_ms,
                "min": self.min_ms, "round_medians": list(self.round_medians_ms)}


def summarize(samples_ms: list[float] | np.ndarray, round_medians: tuple[float, ...] = ()) -> LatencyStats:
    s = np.asarray(samples_ms, dtype=np.float64)
    if s.size == 0:
        raise ValueError("no latency samples")
    return LatencyStats(float(np.median(s)), float(np.percentile(s, 90)), float(s.mean()), float(s.min()), int(s.size),
                        tuple(round_medians))


def time_round(fn: Callable[[], object], runs: int, min_seconds: float) -> list[float]:
    """Call fn at least `runs` times and for at least `min_seconds`; -> per-call milliseconds."""
    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < runs or time.perf_counter() - started < min_seconds:
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
        if len(samples) >= 20 * runs:  # a very fast model: enough samples
            break
    return samples


def time_callable(fn: Callable[[], object], config: TimingConfig = TimingConfig()) -> LatencyStats:
    for _ in range(config.warmup_runs):
        fn()
    samples: list[float] = []
    medians = []
    for _ in range(config.rounds):
        got = time_round(fn, config.runs_per_round, config.min_seconds_per_round)
        medians.append(float(np.median(got)))
        samples.extend(got)
    return summarize(samples, tuple(medians))


def time_interleaved(fns: dict[str, Callable[[], object]], config: TimingConfig = TimingConfig(),
                     on_round: Callable[[str], None] | None = None,
                     before: Callable[[str], None] | None = None) -> dict[str, LatencyStats]:
    """Time several callables round-robin: warm each up, then `rounds` rounds visiting each in turn.

    `before(key)` runs untimed before each visit (e.g. torch.set_num_threads); a callable that
    raises is dropped and its exception is returned in place of its stats.
    """
    samples: dict[str, list[float]] = {k: [] for k in fns}
    medians: dict[str, list[float]] = {k: [] for k in fns}
    failed: dict[str, Exception] = {}
    for key, fn in fns.items():
        try:
            if before:
                before(key)
            for _ in range(config.warmup_runs):
                fn()
        except Exception as e:  # noqa: BLE001 - a model that fails becomes a failed row
            failed[key] = e
    for _ in range(config.rounds):
        for key, fn in fns.items():
            if key in failed:
                continue
            try:
                if before:
                    before(key)
                got = time_round(fn, config.runs_per_round, config.min_seconds_per_round)
            except Exception as e:  # noqa: BLE001
                failed[key] = e
                continue
            samples[key].extend(got)
            medians[key].append(float(np.median(got)))
            if on_round:
                on_round(key)
    result: dict = {k: summarize(samples[k], tuple(medians[k])) for k in fns if k not in failed}
    result.update(failed)
    return result
