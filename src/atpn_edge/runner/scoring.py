"""A variant's accuracy row: its evaluation set and the built-in real photographs, against float."""

from __future__ import annotations

import numpy as np

from atpn_edge.evaluate import EvalResult


def metrics_row(result: EvalResult, measured_on: str, float_nme: float | None, **extra) -> dict:
    row = {
        "nme": result.nme, "fr_10": result.fr_10, "auc_10": result.auc_10,
        "pose_mae": result.pose_mae_mean, "pose_mae_axes": result.pose_mae_axes,
        "face_score_acc": result.face_score_acc, "box_iou": result.box_iou,
        "n_images": result.n_images, "measured_on": measured_on,
        "nme_drop_rel": 0.0 if float_nme is None else result.nme / float_nme - 1.0,
    }
    row.update(extra)
    return row


def scored(predict_fn, sets: tuple, measured_on: str, float_row: dict | None, progress: bool, **extra) -> tuple[dict, np.ndarray]:
    """A variant's row on the recipe's evaluation set and, when installed, the built-in real photographs
    (`--data real`: is the drop the same on real faces?) -> (row, per-image NMEs of the evaluation set)."""
    from atpn_edge.evaluate import evaluate

    eval_set, real_set = sets
    result, nmes = evaluate(predict_fn, eval_set, progress=progress)
    row = metrics_row(result, measured_on, None if float_row is None else float_row["nme"], **extra)
    if real_set is not None:
        real, _ = evaluate(predict_fn, real_set, progress=False)
        float_real = None if float_row is None else float_row.get("real_nme")
        row.update(real_nme=real.nme, real_n_images=real.n_images,
                   real_nme_drop_rel=0.0 if float_row is None else (real.nme / float_real - 1.0 if float_real else None))
    return row, nmes
