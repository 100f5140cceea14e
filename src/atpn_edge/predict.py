"""`atpn-edge predict`: detect faces in photographs, crop, predict, map back, draw (no torch needed)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from atpn_edge.data.crop import crop_face
from atpn_edge.errors import UserError
from atpn_edge.io import write_png
from atpn_edge.runtime.detector import DetectorConfig, detect_faces

log = logging.getLogger(__name__)


def read_rgb(path: str | Path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such image file")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"{path}: not a readable image (OpenCV could not decode it)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def predict_faces(predict_fn: Callable, image: np.ndarray, boxes: list[np.ndarray], size: int = 112) -> list[dict]:
    """Crop each box, run the model once on the batch, map results back to image pixels."""
    if not boxes:
        return []
    crops = [crop_face(image, np.asarray(b, np.float64), size) for b in boxes]
    out = predict_fn(np.stack([c.image for c in crops]))
    faces = []
    for i, (box, crop) in enumerate(zip(boxes, crops)):
        face: dict = {"box": [float(v) for v in box]}
        if "landmarks" in out:
            face["landmarks"] = crop.to_image(out["landmarks"][i]).round(2).tolist()
        if "pose" in out:
            yaw, pitch, roll = (float(v) for v in out["pose"][i])
            face["pose"] = {"yaw": yaw, "pitch": pitch, "roll": roll}
        if "face_score" in out:
            face["score"] = float(out["face_score"][i])
        if "face_box" in out:
            face["refined_box"] = [float(v) for v in crop.box_to_image(out["face_box"][i])]
        faces.append(face)
    return faces


def annotate(image: np.ndarray, faces: list[dict]) -> np.ndarray:
    from atpn_edge.data.draw import draw_box, draw_landmarks, draw_pose_axes

    canvas = image.copy()
    for face in faces:
        box = np.asarray(face["box"])
        side = float(max(box[2] - box[0], box[3] - box[1]))
        label = f"{face['score']:.2f}" if "score" in face else None
        canvas = draw_box(canvas, box, color=(0, 200, 255), label=label)
        if "landmarks" in face:
            canvas = draw_landmarks(canvas, np.asarray(face["landmarks"]), radius=max(1, int(side / 120)))
        if "pose" in face:
            p = face["pose"]
            centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
            canvas = draw_pose_axes(canvas, p["yaw"], p["pitch"], p["roll"], centre, side / 2)
    return canvas


def predict_images(predict_fn: Callable, paths: list[str], out_dir: str | None = None, box: list[float] | None = None,
                   detector: str = "auto") -> dict:
    """The `predict --json` document of docs/INTERFACES.md; annotated PNGs go to out_dir. `detector`: see
    runtime.detector.DETECTORS (unused with `box`)."""
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    results = []
    for path in paths:
        image = read_rgb(path)
        boxes = [np.asarray(box, np.float64)] if box is not None else detect_faces(image, DetectorConfig(method=detector))
        if not boxes:
            log.warning("%s: no face found by the detector (pass --box x1,y1,x2,y2 to give one)", path)
        faces = predict_faces(predict_fn, image, boxes)
        entry = {"path": str(path), "faces": faces}
        if out_dir:
            target = Path(out_dir) / (Path(path).stem + "_atpn.png")
            write_png(target, annotate(image, faces))
            entry["annotated"] = str(target)
        results.append(entry)
    return {"images": results}
