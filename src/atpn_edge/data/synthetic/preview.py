"""A PNG grid of synthetic samples with their labels drawn (`atpn-edge data preview`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from atpn_edge.data.draw import draw_box, draw_landmarks, draw_pose_axes, image_grid
from atpn_edge.data.synthetic.dataset import SyntheticConfig, SyntheticFaces
from atpn_edge.errors import UserError

log = logging.getLogger(__name__)


def labelled_image(sample, upscale: int = 2, draw_labels: bool = True) -> np.ndarray:
    """A sample's crop, enlarged, with landmarks, face box, pose axes and score drawn."""
    s = sample.image.shape[0]
    big = s * upscale
    image = cv2.resize(sample.image, (big, big), interpolation=cv2.INTER_CUBIC)
    if not draw_labels:
        return image
    if sample.face_score:
        pts = sample.landmarks * big - 0.5
        draw_landmarks(image, pts, radius=1)
        box = sample.face_box * big - 0.5
        draw_box(image, box)
        yaw, pitch, roll = (float(v) for v in sample.pose)
        draw_pose_axes(image, yaw, pitch, roll, pts.mean(axis=0), big * 0.18)
        text = f"y{yaw:+.0f} p{pitch:+.0f} r{roll:+.0f}"
    else:
        text = "non-face"
    cv2.putText(image, text, (3, big - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
    return image


def preview(path_png: str | os.PathLike, seed: int = 0, count: int = 36,
            config: SyntheticConfig | None = None, draw_labels: bool = True) -> Path:
    """Write a grid of `count` samples of SyntheticFaces(seed) with their labels drawn; return the path."""
    path = Path(path_png)
    if count < 1:
        raise UserError(f"{path}: preview count must be >= 1, got {count}")
    ds = SyntheticFaces(count, seed=seed, config=config or SyntheticConfig())
    tiles = [labelled_image(ds[i], draw_labels=draw_labels) for i in range(count)]
    grid = image_grid(tiles, cols=int(np.ceil(np.sqrt(count))))
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise UserError(f"{path}: could not write the preview image")
    log.info("wrote a preview of %d synthetic samples to %s", count, path)
    return path
