"""Evaluation over a data set with any predictor (numpy only: checkpoints and exported artifacts alike).

`predict_fn` maps (B, S, S, 3) uint8 RGB crops to the named outputs of runtime/base.py. The scores
follow INTERFACES.md: NME, FR and AUC as fractions, pose MAE in degrees, and per-subset numbers
where the data set has subsets (WFLW's six attribute subsets).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from atpn_edge import metrics
from atpn_edge.data.sample import Sample
from atpn_edge.data.schemes import to_68

log = logging.getLogger(__name__)

PredictFn = Callable[[np.ndarray], dict[str, np.ndarray]]


@dataclass
class Predictions:
    """Predictions and labels gathered over a data set, aligned by sample index."""

    landmarks_pred: list = field(default_factory=list)
    landmarks_gt: list = field(default_factory=list)
    landmark_index: list = field(default_factory=list)  # sample index of each landmark pair
    pose_pred: list = field(default_factory=list)
    pose_gt: list = field(default_factory=list)
    pose_index: list = field(default_factory=list)
    score_pred: list = field(default_factory=list)
    score_gt: list = field(default_factory=list)
    box_pred: list = field(default_factory=list)
    box_gt: list = field(default_factory=list)
    n_samples: int = 0


def collect(
    predict_fn: PredictFn,
    dataset: Sequence[Sample],
    batch_size: int = 64,
    progress: bool = True,
    description: str = "eval",
) -> Predictions:
    from tqdm import tqdm

    out = Predictions()
    n = len(dataset)
    bar = tqdm(total=n, desc=description, unit="img", disable=not progress, leave=False)
    for start in range(0, n, batch_size):
        batch = [dataset[i] for i in range(start, min(n, start + batch_size))]
        result = predict_fn(np.stack([s.image for s in batch]))
        for j, sample in enumerate(batch):
            index = start + j
            if sample.landmarks is not None and "landmarks" in result:
                pred = result["landmarks"][j]
                gt = sample.landmarks
                if pred.shape[0] != gt.shape[0]:  # e.g. a 98-point model on 68-point data
                    pred, gt = to_68(pred), to_68(gt)
                out.landmarks_pred.append(pred)
                out.landmarks_gt.append(gt)
                out.landmark_index.append(index)
            if sample.pose is not None and "pose" in result:
                out.pose_pred.append(result["pose"][j])
                out.pose_gt.append(sample.pose)
                out.pose_index.append(index)
            if sample.face_score is not None and "face_score" in result:
                out.score_pred.append(float(result["face_score"][j]))
                out.score_gt.append(float(sample.face_score))
            if sample.face_box is not None and "face_box" in result:
                out.box_pred.append(result["face_box"][j])
                out.box_gt.append(sample.face_box)
        out.n_samples += len(batch)
        bar.update(len(batch))
    bar.close()
    return out


def per_image_nme(p: Predictions) -> np.ndarray:
    if not p.landmarks_pred:
        return np.zeros(0)
    return metrics.nme(np.stack(p.landmarks_pred), np.stack(p.landmarks_gt))


def score(p: Predictions, subsets: dict[str, np.ndarray] | None = None) -> dict:
    """The eval JSON of INTERFACES.md from gathered predictions."""
    nmes = per_image_nme(p)
    result: dict = {"n_samples": p.n_samples, **metrics.landmark_summary(nmes)}
    if p.pose_pred:
        result["pose_mae"] = metrics.pose_mae(np.stack(p.pose_pred), np.stack(p.pose_gt))
    else:
        result["pose_mae"] = {}
    if p.score_pred:
        result["face_score_acc"] = metrics.face_score_accuracy(np.array(p.score_pred), np.array(p.score_gt))
    if p.box_pred:
        result["box_iou"] = float(np.mean(metrics.box_iou(np.stack(p.box_pred), np.stack(p.box_gt))))
    result["subsets"] = {}
    for name, indices in (subsets or {}).items():
        chosen = np.isin(np.asarray(p.landmark_index), np.asarray(indices))
        entry = metrics.landmark_summary(nmes[chosen])
        if p.pose_pred:
            pose_chosen = np.isin(np.asarray(p.pose_index), np.asarray(indices))
            if pose_chosen.any():
                entry["pose_mae"] = metrics.pose_mae(
                    np.stack(p.pose_pred)[pose_chosen], np.stack(p.pose_gt)[pose_chosen]
                )
        result["subsets"][name] = entry
    return result


def evaluate(
    predict_fn: PredictFn,
    dataset: Sequence[Sample],
    batch_size: int = 64,
    progress: bool = True,
) -> tuple[dict, np.ndarray]:
    """-> (eval JSON dict, per-image NMEs for CED plots)."""
    predictions = collect(predict_fn, dataset, batch_size, progress)
    subsets = dataset.subsets() if hasattr(dataset, "subsets") else None
    return score(predictions, subsets), per_image_nme(predictions)
