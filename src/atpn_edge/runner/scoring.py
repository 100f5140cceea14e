"""A variant's measurement row: its evaluation set and the built-in real photographs, against float."""

from __future__ import annotations

import numpy as np

from atpn_edge.measurement import Row


def scored(predict_fn, sets: tuple, label: str, role: str, measured_on: str, reference: Row | None, progress: bool,
           **fields) -> tuple[Row, np.ndarray]:
    """The Row of one variant on the recipe's evaluation set and, when installed, the built-in real photographs
    (`--data real`: is the drop the same on real faces?), its drops against `reference` (the float row; None for
    the float row itself) -> (row, per-image NMEs of the evaluation set). `fields`: Row's params, macs, size_bytes,
    artifact; anything else goes to its details."""
    from atpn_edge.evaluate import evaluate

    eval_set, real_set = sets
    result, nmes = evaluate(predict_fn, eval_set, progress=progress)
    real = evaluate(predict_fn, real_set, progress=False)[0] if real_set is not None else None
    known = {k: fields.pop(k) for k in ("params", "macs", "size_bytes", "artifact") if k in fields}
    row = Row(label, role, measured_on, result, real, details=fields, **known)
    return (row.against(reference) if reference is not None else row), nmes
