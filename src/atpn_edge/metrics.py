"""Accuracy metrics (numpy only): NME, FR@0.1, AUC@0.1, the cumulative error curve, pose MAE,
face-score accuracy and box IoU.

Definitions follow the literature (see ATPN_BRIEF.md): NME is the mean point-to-point error divided
by the inter-ocular distance (outer eye corners: WFLW 60/72, 68-point scheme 36/45); FR@t is the
share of images whose NME exceeds t; AUC@t is the area under the cumulative error distribution
from 0 to t, divided by t.
"""

from __future__ import annotations

import numpy as np

from atpn_edge.data.schemes import scheme_for


def nme(pred: np.ndarray, gt: np.ndarray, norm: str = "inter-ocular") -> np.ndarray:
    """Per-image NME for (N, P, 2) arrays, P = 98 or 68 picking the eye-corner indices."""
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 2:
        raise ValueError(f"nme needs two (N, P, 2) arrays of one shape, got {pred.shape} and {gt.shape}")
    if norm != "inter-ocular":
        raise ValueError(f"unknown NME normalisation {norm!r} (supported: 'inter-ocular')")
    left, right = scheme_for(pred.shape[1]).eye_corners
    distance = np.linalg.norm(gt[:, left] - gt[:, right], axis=-1)  # (N,)
    if np.any(distance <= 0):
        raise ValueError("ground truth with coincident outer eye corners: inter-ocular distance is 0")
    return np.linalg.norm(pred - gt, axis=-1).mean(axis=-1) / distance


def failure_rate(nmes: np.ndarray, threshold: float = 0.1) -> float:
    nmes = np.asarray(nmes, np.float64)
    return float(np.mean(nmes > threshold)) if nmes.size else float("nan")


def ced_curve(nmes: np.ndarray, threshold: float = 0.1, steps: int = 1001) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative error distribution: (thresholds (steps,), share of images with NME <= each)."""
    nmes = np.sort(np.asarray(nmes, np.float64))
    xs = np.linspace(0.0, threshold, steps)
    ys = np.searchsorted(nmes, xs, side="right") / max(len(nmes), 1)
    return xs, ys


def auc(nmes: np.ndarray, threshold: float = 0.1) -> float:
    """Area under the CED from 0 to `threshold`, divided by `threshold` (exact for a step curve)."""
    nmes = np.asarray(nmes, np.float64)
    if not nmes.size:
        return float("nan")
    # The CED is a step function; its integral over [0, t] is the mean of (t - e) over errors e < t.
    return float(np.mean(np.clip(threshold - nmes, 0.0, None)) / threshold)


def pose_mae(pred: np.ndarray, gt: np.ndarray, limit: float = 99.0) -> dict[str, float]:
    """Yaw, pitch, roll and mean MAE in degrees for (N, 3) yaw/pitch/roll arrays.

    Images whose ground-truth angles are not all within +-limit are left out (the AFLW2000-3D
    protocol); "n_images" says how many were scored.
    """
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.ndim != 2 or pred.shape[1] != 3:
        raise ValueError(f"pose_mae needs two (N, 3) arrays of one shape, got {pred.shape} and {gt.shape}")
    keep = np.all(np.abs(gt) <= limit, axis=1)
    err = np.abs(pred[keep] - gt[keep])
    if not len(err):
        nan = float("nan")
        return {"yaw": nan, "pitch": nan, "roll": nan, "mean": nan, "n_images": 0}
    yaw, pitch, roll = err.mean(axis=0)
    return {
        "yaw": float(yaw),
        "pitch": float(pitch),
        "roll": float(roll),
        "mean": float(err.mean()),
        "n_images": int(keep.sum()),
    }


def face_score_accuracy(scores: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> float:
    """Share of crops whose face probability is on the right side of `threshold`."""
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels, np.float64)
    return float(np.mean((scores >= threshold) == (labels >= 0.5))) if scores.size else float("nan")


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of (N, 4) x1, y1, x2, y2 boxes."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    area = lambda r: np.clip(r[:, 2] - r[:, 0], 0, None) * np.clip(r[:, 3] - r[:, 1], 0, None)  # noqa: E731
    union = area(a) + area(b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def landmark_summary(nmes: np.ndarray, threshold: float = 0.1) -> dict[str, float]:
    return {
        "n_images": int(len(nmes)),
        "nme": float(np.mean(nmes)) if len(nmes) else float("nan"),
        "fr_10": failure_rate(nmes, threshold),
        "auc_10": auc(nmes, threshold),
    }


def plot_ced(curves: dict[str, np.ndarray], path: str, threshold: float = 0.1) -> None:
    """Save the cumulative error curves of several models/variants ({label: per-image NMEs}) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4), dpi=120)
    for label, nmes in curves.items():
        xs, ys = ced_curve(nmes, threshold)
        ax.plot(xs, ys, label=f"{label} (NME {np.mean(nmes):.2%}, AUC {auc(nmes, threshold):.3f})")
    ax.set_xlabel("NME (inter-ocular)")
    ax.set_ylabel("share of images")
    ax.set_xlim(0, threshold)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    from atpn_edge.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
