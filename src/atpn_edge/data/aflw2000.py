"""AFLW2000-3D: 2,000 images, each `imageNNNNN.jpg` with a `.mat` beside it.

The .mat holds `pt3d_68` (3, 68; x and y are used as 0-based pixels) and `Pose_Para` (1, 7:
pitch, yaw, roll radians, ...). Protocol: keep only images whose yaw, pitch and roll all lie
within +-99 degrees (the published head-pose MAE protocol; 31 images fall outside in the
release); how many were excluded is logged and kept in `excluded_out_of_range`. The face box
is the landmarks' extent, as for 300W-LP. Every split name (`test`, `val`) gives the same set.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from atpn_edge.data.crop import box_from_landmarks
from atpn_edge.data.dataset import FaceDataset, RawFace, check_split, read_image_rgb
from atpn_edge.data.w300lp import load_mat, points_from_mat, pose_from_mat
from atpn_edge.errors import UserError

log = logging.getLogger(__name__)

NUM_POINTS = 68
POSE_LIMIT_DEG = 99.0


class AFLW2000(FaceDataset):
    kind = "aflw2000"
    native_points = NUM_POINTS

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "test",
        pose_limit: float = POSE_LIMIT_DEG,
        **kwargs,
    ) -> None:
        check_split(self.kind, split, ("test", "val"))
        super().__init__(root, split, **kwargs)
        if not self.root.is_dir():
            raise UserError(f"{self.root}: AFLW2000-3D folder not found")
        names = sorted(e.name for e in os.scandir(self.root) if e.name.endswith(".jpg"))
        if not names:
            raise UserError(f"{self.root}: no AFLW2000-3D images (expected image00002.jpg + .mat, ...)")
        missing_mat = self._missing_images("image without its .mat annotation")
        items = []
        self.excluded_out_of_range = 0
        for name in names:
            image_path = self.root / name
            mat_path = image_path.with_suffix(".mat")
            if not mat_path.is_file():
                self._drop_or_raise(missing_mat, mat_path)
                continue
            mat = load_mat(mat_path)
            pose = pose_from_mat(mat, mat_path)
            if np.any(np.abs(pose) > pose_limit):
                self.excluded_out_of_range += 1
                continue
            landmarks = points_from_mat(mat, "pt3d_68", 3, mat_path)
            items.append((str(image_path), landmarks, pose))
        log.info(
            "%s: excluded %d of %d images with yaw, pitch or roll outside +-%g degrees",
            self.root, self.excluded_out_of_range, len(names), pose_limit,
        )
        self._finish(items)

    def skip_counts(self) -> dict[str, int]:
        counts = super().skip_counts()
        counts["pose outside the +-99 degree protocol"] = self.excluded_out_of_range
        return counts

    def _raw(self, item) -> RawFace:
        image_path, landmarks, pose = item
        return RawFace(
            image=read_image_rgb(image_path),
            box=box_from_landmarks(landmarks),
            landmarks=landmarks,
            pose=pose,
            face_score=1.0,
            source=image_path,
        )
