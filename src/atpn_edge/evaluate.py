"""Evaluation over a data set with any predictor (numpy only: checkpoints and exported artifacts alike).

`predict_fn` maps (B, S, S, 3) uint8 RGB crops to the named outputs of runtime/base.py. The scores
follow docs/INTERFACES.md: NME, FR and AUC as fractions, pose MAE in degrees, and per-subset numbers
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


@dataclass(frozen=True)
class EvalResult:
    """What one evaluation measured (torch-free). `to_json()` is the eval JSON of docs/INTERFACES.md:
    NME, FR@0.1 and AUC@0.1 as fractions, pose MAE in degrees per axis and their mean."""

    n_samples: int  # crops evaluated (faces and non-faces)
    n_images: int  # crops with landmarks, the ones NME is over
    nme: float  # mean inter-ocular NME (nan when no crop had landmarks)
    fr_10: float
    auc_10: float
    pose_mae: dict[str, float] = field(default_factory=dict)  # {"yaw", "pitch", "roll", "mean"}, {} without pose
    face_score_acc: float | None = None
    box_iou: float | None = None
    subsets: dict[str, dict] = field(default_factory=dict)  # name -> {"n_images", "nme", "fr_10", "auc_10"[, "pose_mae"]}

    @property
    def pose_mae_mean(self) -> float | None:
        return self.pose_mae.get("mean")

    @property
    def pose_mae_axes(self) -> dict[str, float]:
        return {k: v for k, v in self.pose_mae.items() if k != "mean"}

    def to_json(self) -> dict:
        out: dict = {"n_samples": self.n_samples, "n_images": self.n_images, "nme": self.nme, "fr_10": self.fr_10,
                     "auc_10": self.auc_10, "pose_mae": dict(self.pose_mae)}
        if self.face_score_acc is not None:
            out["face_score_acc"] = self.face_score_acc
        if self.box_iou is not None:
            out["box_iou"] = self.box_iou
        out["subsets"] = {name: dict(entry) for name, entry in self.subsets.items()}
        return out

    @classmethod
    def from_json(cls, d: dict) -> "EvalResult":
        return cls(n_samples=int(d.get("n_samples", d["n_images"])), n_images=int(d["n_images"]), nme=d["nme"],
                   fr_10=d["fr_10"], auc_10=d["auc_10"], pose_mae=dict(d.get("pose_mae") or {}),
                   face_score_acc=d.get("face_score_acc"), box_iou=d.get("box_iou"), subsets=dict(d.get("subsets") or {}))


def score(p: Predictions, subsets: dict[str, np.ndarray] | None = None) -> EvalResult:
    """Scores of gathered predictions, per data-set subset too (WFLW's attribute subsets)."""
    nmes = per_image_nme(p)
    pose = metrics.pose_mae(np.stack(p.pose_pred), np.stack(p.pose_gt)) if p.pose_pred else {}
    scored_subsets = {}
    for name, indices in (subsets or {}).items():
        chosen = np.isin(np.asarray(p.landmark_index), np.asarray(indices))
        entry = metrics.landmark_summary(nmes[chosen])
        if p.pose_pred:
            pose_chosen = np.isin(np.asarray(p.pose_index), np.asarray(indices))
            if pose_chosen.any():
                entry["pose_mae"] = metrics.pose_mae(
                    np.stack(p.pose_pred)[pose_chosen], np.stack(p.pose_gt)[pose_chosen]
                )
        scored_subsets[name] = entry
    return EvalResult(
        n_samples=p.n_samples, **metrics.landmark_summary(nmes), pose_mae=pose,
        face_score_acc=(metrics.face_score_accuracy(np.array(p.score_pred), np.array(p.score_gt))
                        if p.score_pred else None),
        box_iou=float(np.mean(metrics.box_iou(np.stack(p.box_pred), np.stack(p.box_gt)))) if p.box_pred else None,
        subsets=scored_subsets,
    )


def evaluate(
    predict_fn: PredictFn,
    dataset: Sequence[Sample],
    batch_size: int = 64,
    progress: bool = True,
) -> tuple[EvalResult, np.ndarray]:
    """-> (the scores, per-image NMEs for CED plots)."""
    predictions = collect(predict_fn, dataset, batch_size, progress)
    subsets = dataset.subsets() if hasattr(dataset, "subsets") else None
    return score(predictions, subsets), per_image_nme(predictions)
