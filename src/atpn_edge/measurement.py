"""A measurement row: one variant of a model, where it was measured, how accurate, how big (torch-free).

A compression report is a table of these rows, all on the same evaluation images:

    float = Row("float", "float", "pytorch", result, real=real_result, params=674_000, macs=38_900_000)
    int8 = Row("ptq_int8_tflite", "deployed", "tflite", result8, float_nme=float.nme, size_bytes=1_003_520)
    int8.nme_drop_rel   # NME / float NME - 1
    int8.to_json()      # the report.json row of docs/INTERFACES.md

Roles say what a row is for, so readers find rows by role instead of parsing labels:
float (the starting model), compressed (the recipe's model in PyTorch, int8 ones simulated),
control (the same training without the compression: what the compression itself costs is measured
against it), deployed (an exported artifact run in its own runtime).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from atpn_edge.evaluate import EvalResult

ROLES = ("float", "compressed", "control", "deployed")


@dataclass(frozen=True)
class Row:
    label: str
    role: str
    measured_on: str  # pytorch | tflite | onnx
    result: EvalResult  # on the evaluation set
    real: EvalResult | None = None  # on the built-in real photographs (`--data real`), when installed
    float_nme: float | None = None  # the float row's NME on the same images; None for the float row itself
    float_real_nme: float | None = None
    params: int | None = None
    macs: int | None = None
    size_bytes: int | None = None
    artifact: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # what else the row's producer records (route, int8 check)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"row {self.label!r}: role must be one of {ROLES}, got {self.role!r}")

    @property
    def nme(self) -> float:
        return self.result.nme

    @property
    def pose_mae(self) -> float | None:
        return self.result.pose_mae_mean

    @property
    def nme_drop_rel(self) -> float:
        return 0.0 if self.float_nme is None else self.result.nme / self.float_nme - 1.0

    @property
    def real_nme(self) -> float | None:
        return None if self.real is None else self.real.nme

    @property
    def real_nme_drop_rel(self) -> float | None:
        if self.real is None:
            return None
        if self.float_nme is None:
            return 0.0
        return self.real.nme / self.float_real_nme - 1.0 if self.float_real_nme else None

    def against(self, reference: "Row") -> "Row":
        """This row with its drops measured against `reference` (the float row)."""
        return replace(self, float_nme=reference.nme, float_real_nme=reference.real_nme)

    def to_json(self) -> dict[str, Any]:
        r = self.result
        out: dict[str, Any] = {
            "nme": r.nme, "fr_10": r.fr_10, "auc_10": r.auc_10, "pose_mae": r.pose_mae_mean,
            "pose_mae_axes": r.pose_mae_axes, "face_score_acc": r.face_score_acc, "box_iou": r.box_iou,
            "n_images": r.n_images, "measured_on": self.measured_on, "role": self.role,
            "nme_drop_rel": self.nme_drop_rel,
        }
        for key in ("params", "macs", "size_bytes", "artifact"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out.update(self.details)
        if self.real is not None:
            out.update(real_nme=self.real.nme, real_n_images=self.real.n_images, real_nme_drop_rel=self.real_nme_drop_rel)
        return out
