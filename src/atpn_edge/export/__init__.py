"""Export a float or PT2E-quantized model to TFLite / ONNX, verify it in its runtime, write metadata.

    from atpn_edge.export import export_model
    result = export_model(model, "tflite", "int8", "runs/x/atpn_int8.tflite", calib_images=crops)

The names load on first use (export/artifact.py), so that importing the package, as the CLI's
parser does, needs no torch: a board install without torch can still list the commands.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["FORMATS", "PRECISIONS", "ExportFormat", "ExportResult", "default_layout_io", "export_model",
           "verification_path"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("atpn_edge.export.artifact"), name)
    raise AttributeError(f"module 'atpn_edge.export' has no attribute {name!r}")
