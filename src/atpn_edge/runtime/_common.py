"""Shared helpers of the torch-free adapters: sidecar metadata, output naming, int8 (de)quantization."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from atpn_edge.errors import UserError
from atpn_edge.runtime.base import FACE_LOGIT, OUTPUT_NAMES, face_score_from_logit, preprocess

log = logging.getLogger(__name__)


def peers_dir() -> Path:
    """Where `make setup` (scripts/fetch_peers.py) puts the MediaPipe models read out of its wheel."""
    override = os.environ.get("ATPN_EDGE_PEERS")
    return Path(override) if override else Path(sys.prefix) / "share" / "atpn-edge" / "peers"


def sidecar_path(artifact: str | os.PathLike) -> Path:
    """`model.tflite` -> `model.tflite.json` (metadata written next to a .tflite)."""
    return Path(str(artifact) + ".json")


def read_sidecar(artifact: str | os.PathLike) -> dict[str, Any]:
    path = sidecar_path(artifact)
    if not path.exists():
        return {}
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: cannot read the artifact's metadata: {e}") from e


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return ((q.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)).astype(np.float32)


def guess_output_name(shape: tuple[int, ...], num_landmarks: int | None) -> str | None:
    """Fallback when an artifact's output names were lost: recognise outputs by shape (batch 1)."""
    dims = tuple(int(d) for d in shape)
    if len(dims) == 3 and dims[-1] == 2:
        return "landmarks"
    if dims in ((1,), ()):
        return "face_score"
    if dims == (1, 3):
        return "pose"
    if dims == (1, 4):
        return "face_box"
    return None


def map_output_names(raw_names: list[str], shapes: list[tuple[int, ...]], metadata: dict) -> dict[str, str]:
    """Artifact output name -> Predictor output name, by name, then metadata order, then shape."""
    mapping: dict[str, str] = {}
    for raw in raw_names:
        for name in OUTPUT_NAMES:
            # TFLite tensor names can look like "StatefulPartitionedCall:0" or "serving_default_landmarks:0".
            if raw == name or raw.endswith("_" + name) or raw.split(":")[0].endswith(name):
                mapping[raw] = name
                break
    if len(mapping) == len(raw_names):
        return mapping
    ordered = metadata.get("output_names")
    if ordered and len(ordered) == len(raw_names):
        return dict(zip(raw_names, ordered))
    for raw, shape in zip(raw_names, shapes):
        if raw not in mapping:
            guessed = guess_output_name(shape, metadata.get("num_landmarks"))
            if guessed is None:
                raise UserError(f"cannot tell what artifact output '{raw}' with shape {shape} is")
            mapping[raw] = guessed
    return mapping


def finish_outputs(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Predictor conventions: face_score a probability in (B,), face_logit turned into face_score."""
    if FACE_LOGIT in outputs and "face_score" not in outputs:
        outputs["face_score"] = face_score_from_logit(outputs.pop(FACE_LOGIT))
    if "face_score" in outputs:
        outputs["face_score"] = outputs["face_score"].reshape(-1).astype(np.float32)
    return {k: v.astype(np.float32) for k, v in outputs.items()}


class BatchOneAdapter:
    """Common predict(): preprocess, loop the batch (exported models are batch 1), stack named outputs."""

    name: str
    runtime: str
    num_landmarks: int
    outputs: tuple[str, ...]
    layout: str  # "NCHW" or "NHWC": what run_normalized expects

    def run_normalized(self, x: np.ndarray) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        """(1, 3, S, S) float32 in [-1, 1] (always NCHW) -> named float outputs with batch 1."""
        raise NotImplementedError

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        x = preprocess(images, layout="NCHW")  # (B, 3, S, S)
        rows = [self.run_normalized(x[i : i + 1]) for i in range(x.shape[0])]
        return {name: np.concatenate([r[name] for r in rows]) for name in self.outputs}
