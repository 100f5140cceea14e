"""`run_track`: a video through the tracker and, interleaved frame by frame, through the
detect-every-frame baseline; writes the annotated MP4, the per-frame JSON Lines and the summary.

Outputs in `out_dir`:
    track.mp4        annotated (landmarks, pose axes, box, a red "DET" mark where the detector ran)
    frames.jsonl     one JSON object per frame, written and flushed as each frame finishes
    summary.json     the summary (docs/INTERFACES.md `track --json`), also returned

Both pipelines see the same decoded frame, one after the other, so CPU contention hits them
alike. Compared milliseconds are detect + crop + infer + post; decoding, drawing and writing are
not counted. Accuracy (definitions also written into the summary):
- `nme`: mean inter-ocular NME over frames with ground truth where the face is visible and the
  pipeline output a face; `missed_visible_rate`: share of those frames where it output none
  (counted separately, not folded into the NME); `nme_missed_as_failure`: the same mean with
  every missed visible frame counted as NME 1.0, for a single number that punishes misses.
- `lost_rate`: share of frames with a visible face (all frames when visibility is unknown) on
  which the pipeline output no face.
- `false_face_rate`: share of frames with no visible face (occluded / out of frame) on which it
  still output one.
"""

from __future__ import annotations

import functools

import json
import logging
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from atpn_edge.errors import UserError
from atpn_edge.track.sources import FrameSource, open_source
from atpn_edge.track.tracker import STAGES, DetectEveryFrame, FrameResult, Tracker, TrackerConfig

log = logging.getLogger(__name__)

VIDEO_NAME = "track.mp4"
FRAMES_NAME = "frames.jsonl"
SUMMARY_NAME = "summary.json"
DEFINITIONS = {
    "ms_per_frame": "detect + crop + infer + post per frame (perf_counter); decode and draw excluded",
    "nme": "mean inter-ocular NME over frames with ground truth, face visible and a face output",
    "missed_visible_rate": "share of visible-face frames with ground truth where no face was output",
    "nme_missed_as_failure": "mean NME over visible-face frames with ground truth, a missed frame counting 1.0",
    "lost_rate": "share of visible-face frames (all frames if visibility unknown) with no face output",
    "false_face_rate": "share of frames with no visible face on which a face was output",
    "detector_calls_per_100": "detector runs per 100 frames",
}


class _Accumulator:
    """Per-pipeline per-frame numbers, summarised at the end."""

    def __init__(self) -> None:
        self.ms = {s: [] for s in STAGES}
        self.total_ms: list[float] = []
        self.detector_calls = 0
        self.track_losses = 0
        self.has_face: list[bool] = []
        self.visible: list[bool | None] = []
        self.nmes: list[float | None] = []  # None: no GT or not visible or no prediction
        self.missed_visible = 0
        self.gt_visible_frames = 0
        self.pose_pred: list[np.ndarray] = []
        self.pose_gt: list[np.ndarray] = []

    def add(self, result: FrameResult, gt_landmarks, gt_pose, visible: bool | None) -> float | None:
        for s in STAGES:
            self.ms[s].append(result.ms[s])
        self.total_ms.append(result.total_ms)
        self.detector_calls += int(result.detector_ran)
        self.track_losses += int(result.lost)
        self.has_face.append(result.has_face)
        self.visible.append(visible)
        frame_nme = None
        if gt_landmarks is not None and visible is not False:
            self.gt_visible_frames += 1
            if result.has_face:
                frame_nme = _nme(result.landmarks, gt_landmarks)
                if gt_pose is not None and result.pose is not None:
                    self.pose_pred.append(result.pose)
                    self.pose_gt.append(np.asarray(gt_pose, np.float64))
            else:
                self.missed_visible += 1
        self.nmes.append(frame_nme)
        return frame_nme

    def summary(self) -> dict:
        from atpn_edge.metrics import pose_mae

        n = len(self.total_ms)
        total = np.asarray(self.total_ms)
        has_face = np.asarray(self.has_face, bool)
        visible = [v for v in self.visible]
        face_frames = np.array([v is not False for v in visible], bool)  # visible or unknown
        no_face_frames = np.array([v is False for v in visible], bool)
        nmes = np.array([v for v in self.nmes if v is not None], np.float64)
        pose = pose_mae(np.stack(self.pose_pred), np.stack(self.pose_gt)) if self.pose_pred else None
        with_misses = np.concatenate([nmes, np.ones(self.missed_visible)]) if self.gt_visible_frames else np.array([])
        return {
            "frames": n,
            "frames_with_face": int(has_face.sum()),
            "detector_calls": self.detector_calls,
            "detector_calls_per_100": 100.0 * self.detector_calls / n if n else None,
            "track_losses": self.track_losses,
            "lost_rate": float(np.mean(~has_face[face_frames])) if face_frames.any() else None,
            "false_face_rate": float(np.mean(has_face[no_face_frames])) if no_face_frames.any() else None,
            "ms_per_frame": _stats(total),
            "ms_per_stage": {s: _stats(np.asarray(v)) for s, v in self.ms.items()},
            "nme": float(nmes.mean()) if nmes.size else None,
            "nme_median": float(np.median(nmes)) if nmes.size else None,
            "fr_10": float(np.mean(nmes > 0.1)) if nmes.size else None,
            "nme_frames": int(nmes.size),
            "missed_visible_frames": self.missed_visible,
            "missed_visible_rate": self.missed_visible / self.gt_visible_frames if self.gt_visible_frames else None,
            "nme_missed_as_failure": float(with_misses.mean()) if with_misses.size else None,
            "pose_mae": pose,
        }


def _stats(values: np.ndarray) -> dict:
    if not values.size:
        return {"median": None, "p90": None, "mean": None}
    return {"median": float(np.median(values)), "p90": float(np.percentile(values, 90)), "mean": float(values.mean())}


def _nme(pred: np.ndarray, gt: np.ndarray) -> float:
    from atpn_edge.data.schemes import WFLW98_TO_IBUG68
    from atpn_edge.metrics import nme

    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape[0] == 98 and gt.shape[0] == 68:
        pred = pred[WFLW98_TO_IBUG68]
    elif pred.shape[0] == 68 and gt.shape[0] == 98:
        gt = gt[WFLW98_TO_IBUG68]
    return float(nme(pred[None], gt[None])[0])


def annotate_frame(image: np.ndarray, result: FrameResult) -> np.ndarray:
    """A copy of the frame with the tracker's output drawn on it."""
    import cv2

    from atpn_edge.data.draw import RED, draw_box, draw_landmarks, draw_pose_axes

    canvas = image.copy()
    if result.has_face:
        draw_landmarks(canvas, result.landmarks, radius=2 if canvas.shape[0] >= 400 else 1)
        draw_box(canvas, result.box, label=f"{result.score:.2f}" if result.score is not None else None)
        if result.pose is not None:
            side = float(max(result.box[2] - result.box[0], result.box[3] - result.box[1]))
            centre = ((result.box[0] + result.box[2]) / 2, (result.box[1] + result.box[3]) / 2)
            draw_pose_axes(canvas, *(float(v) for v in result.pose), centre, side * 0.6)
    scale = max(0.4, canvas.shape[0] / 720)
    if result.detector_ran:
        cv2.circle(canvas, (int(14 * scale), int(14 * scale)), int(8 * scale), RED, -1, cv2.LINE_AA)
        cv2.putText(canvas, "DET", (int(26 * scale), int(20 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, RED, 2)
    cv2.putText(canvas, f"#{result.index}", (int(6 * scale), canvas.shape[0] - int(8 * scale)),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


class _VideoOut:
    """cv2.VideoWriter into a hidden partial file, renamed to its final name when closed (even on error)."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path = path
        self.partial = path.with_name(f".{path.stem}.partial{path.suffix}")
        self.fps = fps
        self._writer = None
        self.frames = 0

    def write(self, image_rgb: np.ndarray) -> None:
        import cv2

        if self._writer is None:
            h, w = image_rgb.shape[:2]
            self._writer = cv2.VideoWriter(str(self.partial), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                self._writer = None
                raise UserError(f"{self.path}: OpenCV cannot write an MP4 here (no mp4v encoder?)")
        self._writer.write(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> str | None:
        if self._writer is None:
            return None
        self._writer.release()
        self._writer = None
        os.replace(self.partial, self.path)
        return str(self.path)


def machine_info() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version()}


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def track_source(source: FrameSource, predict_fn, detect_fn, config: TrackerConfig, out_dir: Path, *,
                 baseline: bool = True, write_video: bool = True, progress: bool = True) -> dict:
    """One source through tracker (+ baseline, interleaved): writes the MP4 and JSONL, returns numbers."""
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    tracker = Tracker(predict_fn, detect_fn, config)
    reference = DetectEveryFrame(predict_fn, detect_fn, config) if baseline else None
    tracked, every = _Accumulator(), _Accumulator()
    video = _VideoOut(out_dir / VIDEO_NAME, source.fps) if write_video else None
    frames_path = out_dir / FRAMES_NAME
    interrupted, error = False, None
    started = time.perf_counter()
    bar = tqdm(total=source.num_frames, desc=f"track {Path(source.name).name}", unit="frame",
               disable=not progress, mininterval=1.0)
    with open(frames_path, "w", encoding="utf-8") as lines:
        try:
            for frame in source.iter_frames():
                result = tracker.step(frame.image)
                base = reference.step(frame.image) if reference is not None else None
                # both steps done before anything is recorded: an interrupt leaves no half frame
                frame_nme = tracked.add(result, frame.landmarks, frame.pose, frame.visible)
                record = result.to_json()
                record.update(gt_visible=frame.visible, nme=frame_nme)
                if base is not None:
                    base_nme = every.add(base, frame.landmarks, frame.pose, frame.visible)
                    record["baseline"] = {"face": base.has_face, "score": base.score, "detector_found": base.detector_found,
                                          "ms": {k: round(v, 4) for k, v in base.ms.items()},
                                          "ms_total": round(base.total_ms, 4), "nme": base_nme}
                lines.write(json.dumps(_jsonable(record)) + "\n")
                lines.flush()
                if video is not None:
                    video.write(annotate_frame(frame.image, result))
                bar.update(1)
        except KeyboardInterrupt:
            interrupted = True
            log.warning("interrupted after %d frames: writing what was processed", len(tracked.total_ms))
        except UserError as e:  # e.g. an unreadable frame in the middle of a folder
            error = str(e)
            log.error("%s (stopping; %d frames processed are kept)", e, len(tracked.total_ms))
        finally:
            bar.close()
            video_path = video.close() if video is not None else None
    result = tracked.summary()
    if reference is not None:
        result["baseline_detect_every_frame"] = every.summary()
        base_ms, track_ms = result["baseline_detect_every_frame"]["ms_per_frame"]["median"], result["ms_per_frame"]["median"]
        result["speedup_median"] = base_ms / track_ms if base_ms and track_ms else None
    result.update(input=source.name, input_kind=source.kind, fps=source.fps,
                  outputs={"video": video_path, "frames_jsonl": str(frames_path)},
                  wall_s=time.perf_counter() - started)
    if interrupted:
        result["interrupted"] = True
    if error:
        result["error"] = error
    if result["frames"] == 0:
        result["warning"] = "no frame was processed"
    elif result["frames_with_face"] == 0:
        result["warning"] = "no face was found in any frame"
    if result.get("warning"):
        log.warning("%s: %s", source.name, result["warning"])
    return result, interrupted


def _aggregate(per_video: dict[str, dict]) -> dict:
    """Frame-weighted means of the per-video numbers (medians of ms are frame-weighted means of medians)."""
    def weighted(getter):
        pairs = [(getter(v), v["frames"]) for v in per_video.values()]
        pairs = [(x, w) for x, w in pairs if x is not None and w]
        return float(sum(x * w for x, w in pairs) / sum(w for _, w in pairs)) if pairs else None

    def block(get):
        frames = sum(get(v)["frames"] for v in per_video.values())
        calls = sum(get(v)["detector_calls"] for v in per_video.values())
        return {
            "frames": frames, "detector_calls": calls,
            "detector_calls_per_100": 100.0 * calls / frames if frames else None,
            "lost_rate": weighted(lambda v: get(v)["lost_rate"]),
            "ms_per_frame": {k: weighted(lambda v, k=k: get(v)["ms_per_frame"][k]) for k in ("median", "p90", "mean")},
            "nme": weighted(lambda v: get(v)["nme"]),
            "missed_visible_rate": weighted(lambda v: get(v)["missed_visible_rate"]),
            "pose_mae": None,
        }

    out = block(lambda v: v)
    if all("baseline_detect_every_frame" in v for v in per_video.values()):
        out["baseline_detect_every_frame"] = block(lambda v: v["baseline_detect_every_frame"])
    return out


def run_track(model_path: str | os.PathLike, out_dir: str | os.PathLike, input: str = "synthetic", *,
              data: str | None = None, categories: tuple[str, ...] = ("category1", "category2", "category3"),
              runtime: str | None = None, threads: int = 1, config: TrackerConfig = TrackerConfig(),
              baseline: bool = True, write_video: bool = True, max_frames: int | None = None,
              max_videos: int | None = None, synthetic_frames: int = 150, progress: bool = True,
              predict_fn=None, detect_fn=None, detector: str = "auto") -> dict:
    """Track `input` (or every 300VW test video of `categories` when `data="300vw:PATH"`).

    Returns the summary dict (also written to out_dir/summary.json). `predict_fn`/`detect_fn`
    replace the model/detector (tests); otherwise the model comes from `predictors.open_predictor` and the
    detector is `detector` (runtime.detector.DETECTORS).
    """
    from atpn_edge.io import write_json
    from atpn_edge.runtime.detector import DetectorConfig, detect_faces, detector_in_use

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    described = {"model": str(model_path), "runtime": runtime, "threads": threads}
    num_points = 98
    if predict_fn is None:
        from atpn_edge.predictors import open_predictor

        predictor = open_predictor(model_path, runtime=runtime, threads=threads)
        predict_fn, num_points = predictor.predict, predictor.num_landmarks
        described["runtime"] = predictor.runtime
        if "face_score" not in predictor.outputs:
            log.warning("%s has no face_score output: the track is only dropped when its box degenerates", model_path)
    if detect_fn is None:
        described["detector"] = detector_in_use(detector)
        detect_fn = functools.partial(detect_faces, config=DetectorConfig(method=detector))
    header = {**described, "machine": machine_info(), "config": asdict(config), "definitions": DEFINITIONS}

    interrupted = False
    if data:
        summary, interrupted = _run_300vw(data, categories, predict_fn, detect_fn, config, out_dir, baseline=baseline,
                             write_video=write_video, max_frames=max_frames, max_videos=max_videos, progress=progress)
    else:
        source = open_source(input, num_points=num_points, max_frames=max_frames, synthetic_frames=synthetic_frames,
                             fps=config.fps)
        summary, interrupted = track_source(source, predict_fn, detect_fn, config, out_dir, baseline=baseline,
                                            write_video=write_video, progress=progress)
    summary = {**summary, **header}
    write_json(out_dir / SUMMARY_NAME, summary)
    if interrupted:
        raise KeyboardInterrupt
    return summary


def _run_300vw(data: str, categories, predict_fn, detect_fn, config, out_dir: Path, *, baseline, write_video,
               max_frames, max_videos, progress) -> dict:
    from atpn_edge.data.registry import parse_data_spec
    from atpn_edge.data.vw300 import CATEGORIES, VW300

    spec = parse_data_spec(data)
    if spec.kind != "300vw":
        raise UserError(f"--data {data}: track evaluates on 300vw:PATH only (or give INPUT)")
    unknown = [c for c in categories if c not in CATEGORIES]
    if unknown:
        raise UserError(f"--categories {','.join(unknown)}: unknown (use 1, 2, 3)")
    dataset = VW300(spec.path, "test", num_points=68)
    per_category: dict[str, dict[str, dict]] = {c: {} for c in categories}
    videos = [(d, c) for d, c in dataset.video_dirs if c in categories][: max_videos or None]
    if not videos:
        raise UserError(f"--data {data}: no test videos of {', '.join(categories)} found")
    interrupted = False
    for video_dir, category in videos:
        name = Path(video_dir).name
        source = open_source(video_dir, num_points=68, max_frames=max_frames)
        result, interrupted = track_source(source, predict_fn, detect_fn, config, out_dir / category / name,
                                           baseline=baseline, write_video=write_video, progress=progress)
        per_category[category][name] = result
        if interrupted:
            break
    all_videos = {f"{c}/{n}": r for c, vids in per_category.items() for n, r in vids.items()}
    summary = _aggregate(all_videos)
    summary["categories"] = {c: {**_aggregate(v), "videos": len(v)} for c, v in per_category.items() if v}
    summary["videos"] = {k: {key: v.get(key) for key in ("frames", "nme", "lost_rate", "detector_calls", "ms_per_frame")}
                         for k, v in all_videos.items()}
    summary["input"] = data
    return summary, interrupted
