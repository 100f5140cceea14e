"""Where a benchmark runs besides this process: an Android phone over adb (TFLite's benchmark_model,
supplied by the user) or, on the host, ai-edge-litert's benchmark tool as a second opinion.

adb sequence per run: check `adb` on PATH and the device (`adb devices`), `adb push` the binary and
the .tflite files into a fresh folder under /data/local/tmp, `adb shell` the binary once per model
with --graph --num_threads --num_runs --warmup_runs and the delegate flag, parse its output, and
remove the folder on the phone at the end (also after an error).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from atpn_edge.bench.parsers import (
    ToolOutputError,
    ToolResult,
    parse_benchmark_model,
    parse_litert_benchmark,
    parse_litert_benchmark_json,
)
from atpn_edge.errors import UserError

log = logging.getLogger(__name__)

DELEGATE_FLAGS = {
    "xnnpack": ["--use_xnnpack=true"],
    "gpu": ["--use_gpu=true"],
    "nnapi": ["--use_nnapi=true"],
    "cpu": ["--use_xnnpack=false"],
}
REMOTE_ROOT = "/data/local/tmp"


def parse_target(target: str) -> tuple[str, str | None]:
    """'host' | 'local-benchmark' | 'adb' | 'adb:SERIAL' -> (kind, serial)."""
    kind, _, serial = target.partition(":")
    if kind not in ("host", "local-benchmark", "adb") or (serial and kind != "adb"):
        raise UserError(f"--target {target}: expected host, local-benchmark, adb or adb:SERIAL")
    return kind, serial or None


@dataclass(frozen=True)
class AdbTarget:
    binary: str
    serial: str | None = None
    delegate: str = "xnnpack"
    adb: str = "adb"
    timeout_s: float = 600.0

    def _adb(self, *args: str, check: bool = True, timeout: float | None = None) -> str:
        cmd = [self.adb] + (["-s", self.serial] if self.serial else []) + list(args)
        log.debug("running %s", " ".join(shlex.quote(c) for c in cmd))
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout or self.timeout_s)
        except subprocess.TimeoutExpired as e:
            raise UserError(f"adb {' '.join(args[:2])}: no answer from the phone within {e.timeout:.0f} s") from e
        output = (done.stdout or "") + (done.stderr or "")
        if check and done.returncode != 0:
            line = next((ln for ln in reversed(output.splitlines()) if ln.strip()), f"exit status {done.returncode}")
            raise UserError(f"adb {' '.join(args[:2])}: the phone refused: {line.strip()[:200]}")
        return output

    def check(self) -> str:
        """adb on PATH, the binary present, exactly the wanted device attached and authorised -> serial."""
        if shutil.which(self.adb) is None:
            raise UserError("adb not found on PATH: install Android platform-tools (sdkmanager platform-tools) and add it to PATH")
        if not Path(self.binary).is_file():
            raise UserError(f"--benchmark-binary {self.binary}: no such file (download TFLite's Android benchmark_model, see docs/bench.md)")
        if self.delegate not in DELEGATE_FLAGS:
            raise UserError(f"--delegate {self.delegate}: one of {', '.join(DELEGATE_FLAGS)}")
        listing = subprocess.run([self.adb, "devices"], capture_output=True, text=True, timeout=60).stdout
        devices = {}
        for line in listing.splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 2:
                devices[parts[0]] = parts[1]
        if not devices:
            raise UserError("adb: no Android device attached (connect a phone with USB debugging on; `adb devices` lists none)")
        serial = self.serial
        if serial is None:
            if len(devices) > 1:
                raise UserError(f"adb: {len(devices)} devices attached ({', '.join(devices)}): choose one with --target adb:SERIAL")
            serial = next(iter(devices))
        if serial not in devices:
            raise UserError(f"adb: device {serial} is not attached (attached: {', '.join(devices)})")
        if devices[serial] != "device":
            raise UserError(f"adb: device {serial} is {devices[serial]}: accept the USB debugging prompt on the phone")
        return serial

    def run(self, tflite_paths: list[str], threads: int, num_runs: int, warmup_runs: int,
            extra_flags: tuple[str, ...] = ()) -> dict[str, ToolResult | Exception]:
        serial = self.check()
        target = AdbTarget(self.binary, serial, self.delegate, self.adb, self.timeout_s)
        remote = f"{REMOTE_ROOT}/atpn_edge_bench_{os.getpid()}"
        results: dict[str, ToolResult | Exception] = {}
        target._adb("shell", f"mkdir -p {remote}")
        try:
            binary = f"{remote}/benchmark_model"
            target._adb("push", self.binary, binary)
            target._adb("shell", f"chmod 755 {binary}")
            for i, path in enumerate(tflite_paths):
                remote_model = f"{remote}/model_{i}.tflite"
                target._adb("push", path, remote_model)
                command = " ".join([binary, f"--graph={remote_model}", f"--num_threads={threads}", f"--num_runs={num_runs}",
                                    f"--warmup_runs={warmup_runs}", *DELEGATE_FLAGS[self.delegate], *extra_flags])
                output = target._adb("shell", command, check=False)
                try:
                    results[path] = parse_benchmark_model(output)
                except ToolOutputError as e:
                    results[path] = e
        finally:
            target._adb("shell", f"rm -rf {remote}", check=False)
        return results


def run_local_benchmark(path: str, threads: int, num_runs: int, warmup_runs: int, timeout_s: float = 300.0) -> ToolResult:
    """ai_edge_litert.tools.benchmark_litert_model on the host (CPU accelerator, XNNPACK)."""
    with tempfile.TemporaryDirectory() as work:
        result_json = os.path.join(work, "result.json")
        cmd = [sys.executable, "-m", "ai_edge_litert.tools.benchmark_litert_model", "--model", str(path),
               "--num_threads", str(threads), "--num_runs", str(num_runs), "--warmup_runs", str(warmup_runs),
               "--result_json", result_json]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        if os.path.isfile(result_json):
            with open(result_json) as f:
                return parse_litert_benchmark_json(json.load(f))
        return parse_litert_benchmark((done.stdout or "") + (done.stderr or ""))


def run_target(config, entries, threads: int) -> dict[str, ToolResult | Exception]:
    """Time the .tflite entries on config.target -> {entry path: ToolResult or the error}."""
    kind, serial = parse_target(config.target)
    runs = config.timing.runs_per_round * config.timing.rounds
    from atpn_edge.bench.entries import PEER_MEDIAPIPE

    files = {}
    for e in entries:
        if e.path == PEER_MEDIAPIPE:
            from atpn_edge.bench.mediapipe_peer import find_face_landmark_model

            files[str(find_face_landmark_model())] = e.path
        elif e.format == "tflite" and Path(e.path).is_file():
            files[e.path] = e.path
    paths = list(files)
    if kind == "adb":
        if not config.benchmark_binary:
            raise UserError("--target adb needs --benchmark-binary PATH (TFLite's Android benchmark_model, see docs/bench.md)")
        found = AdbTarget(config.benchmark_binary, serial, config.delegate).run(paths, threads, runs, config.timing.warmup_runs)
        return {files[p]: r for p, r in found.items()}
    results: dict[str, ToolResult | Exception] = {}
    for path in paths:
        try:
            results[files[path]] = run_local_benchmark(path, threads, runs, config.timing.warmup_runs)
        except (ToolOutputError, subprocess.TimeoutExpired, OSError) as e:
            results[files[path]] = e
    return results
