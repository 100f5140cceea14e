"""What an exported artifact says about itself: preprocessing, outputs, quantization, provenance."""

from __future__ import annotations

from typing import Any

import atpn_edge
from atpn_edge.data.schemes import scheme_for
from atpn_edge.runtime.base import PREPROCESSING


def build_metadata(
    *,
    model_name: str,
    model_options: dict[str, Any],
    fmt: str,
    precision: str,
    layout: str,
    output_names: tuple[str, ...],
    num_landmarks: int,
    source_checkpoint: str | None,
    quantization: dict[str, Any] | None = None,
    io: dict[str, Any] | None = None,
) -> dict[str, Any]:
    input_size = int(model_options.get("input_size", PREPROCESSING["input_size"]))
    return {
        "atpn_edge_version": atpn_edge.__version__,
        "model_name": model_name,
        "model_options": model_options,
        "source_checkpoint": source_checkpoint,
        "format": fmt,
        "precision": precision,
        "input_size": input_size,
        "channel_order": PREPROCESSING["channel_order"],
        "layout": layout,
        "input_shape": [1, input_size, input_size, 3] if layout == "NHWC" else [1, 3, input_size, input_size],
        "normalisation": {"mean": PREPROCESSING["mean"], "std": PREPROCESSING["std"], "text": PREPROCESSING["normalisation"]},
        "preprocessing": dict(PREPROCESSING, layout=layout, input_size=input_size),
        "landmark_scheme": scheme_for(num_landmarks).name if num_landmarks in (68, 98) else f"{num_landmarks} points",
        "num_landmarks": num_landmarks,
        "output_names": list(output_names),
        "batch_size": 1,
        "quantization": quantization or {},
        "io": io or {},  # per input/output tensor: name, dtype, shape, scale, zero_point
    }
