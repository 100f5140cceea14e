"""300W-LP: about 61k synthesised large-pose faces (122k with the mirrored `*_Flip` folders).

Layout as distributed:
    <root>/{AFW,HELEN,IBUG,LFPW}/<name>.jpg + <name>.mat
    <root>/{AFW,HELEN,IBUG,LFPW}_Flip/<name>.jpg + <name>.mat
    <root>/landmarks/...  (`*_pts.mat`, ignored)
Each .mat holds `pt2d` (2, 68) 0-based pixel coordinates and `Pose_Para` (1, 7): pitch, yaw,
roll in radians, then translation and scale. Labels become landmarks (68, 2) and pose
(yaw, pitch, roll) in degrees. The face box is the landmarks' extent (the common protocol),
cropped with `data/crop.py`.

300W-LP has no official validation split: `val` is a deterministic 5 % chosen by a hash of
the source-face key (the file name without its trailing view index, e.g. `HELEN_232194_1`
for `HELEN_232194_1_7.jpg`), so all synthesised views of one face and their flips stay on
the same side; `train` is the rest and `trainval` everything. Its test set is AFLW2000-3D.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import scipy.io

from atpn_edge.data.crop import box_from_landmarks
from atpn_edge.data.dataset import (
    FaceDataset,
    RawFace,
    check_finite,
    check_points,
    check_split,
    in_val_split,
    read_image_rgb,
)
from atpn_edge.errors import UserError

NUM_POINTS = 68
SOURCES = ("AFW", "HELEN", "IBUG", "LFPW")
FOLDERS = SOURCES + tuple(f"{s}_Flip" for s in SOURCES)
VAL_FRACTION = 0.05
_VIEW_SUFFIX = re.compile(r"_\d+$")


def load_mat(path: str | os.PathLike) -> dict:
    path = str(path)
    if not os.path.isfile(path):
        raise UserError(f"{path}: annotation file not found")
    try:
        return scipy.io.loadmat(path)
    except Exception as error:  # scipy raises several types for a damaged file
        raise UserError(f"{path}: cannot read .mat file ({type(error).__name__}: {error})") from None


def pose_from_mat(mat: dict, path: str | os.PathLike) -> np.ndarray:
    """`Pose_Para` (1, 7) radians pitch, yaw, roll, ... -> (3,) float32 yaw, pitch, roll degrees."""
    if "Pose_Para" not in mat:
        raise UserError(f"{path}: no 'Pose_Para' variable")
    para = np.asarray(mat["Pose_Para"], np.float64).reshape(-1)
    if para.size < 3:
        raise UserError(f"{path}: 'Pose_Para' has {para.size} values, expected 7")
    pitch, yaw, roll = check_finite(para[:3], "Pose_Para", str(path))
    return np.degrees(np.array([yaw, pitch, roll])).astype(np.float32)


def points_from_mat(mat: dict, key: str, rows: int, path: str | os.PathLike) -> np.ndarray:
    """`key` shaped (rows, 68) -> (68, 2) x, y float32 (the first two rows)."""
    if key not in mat:
        raise UserError(f"{path}: no '{key}' variable")
    value = np.asarray(mat[key], np.float64)
    if value.ndim != 2 or value.shape[0] != rows:
        raise UserError(f"{path}: '{key}' has shape {value.shape}, expected ({rows}, {NUM_POINTS})")
    return check_points(value[:2].T, NUM_POINTS, f"{path}: '{key}'")


def source_face_key(image_name: str) -> str:
    """`HELEN_232194_1_7.jpg` -> `HELEN_232194_1`: the face all its views and flips come from."""
    return _VIEW_SUFFIX.sub("", Path(image_name).stem)


class W300LP(FaceDataset):
    kind = "300w-lp"
    native_points = NUM_POINTS

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        include_flipped: bool = True,
        **kwargs,
    ) -> None:
        check_split(self.kind, split, ("train", "val", "trainval"))
        super().__init__(root, split, **kwargs)
        folders = FOLDERS if include_flipped else SOURCES
        present = [f for f in folders if (self.root / f).is_dir()]
        if not present:
            raise UserError(
                f"{self.root}: not a 300W-LP folder: expected sub-folders {', '.join(FOLDERS)}"
            )
        missing_mat = self._missing_images("image without its .mat annotation")
        items = []
        for folder in present:
            names = sorted(e.name for e in os.scandir(self.root / folder) if e.name.endswith(".jpg"))
            for name in names:
                if split != "trainval" and in_val_split(source_face_key(name), VAL_FRACTION) != (
                    split == "val"
                ):
                    continue
                image_path = self.root / folder / name
                mat_path = image_path.with_suffix(".mat")
                if not mat_path.is_file():
                    self._drop_or_raise(missing_mat, mat_path)
                    continue
                items.append((str(image_path), str(mat_path)))
        self._finish(items)

    def _raw(self, item) -> RawFace:
        image_path, mat_path = item
        mat = load_mat(mat_path)
        landmarks = points_from_mat(mat, "pt2d", 2, mat_path)
        pose = pose_from_mat(mat, mat_path)
        return RawFace(
            image=read_image_rgb(image_path),
            box=box_from_landmarks(landmarks),
            landmarks=landmarks,
            pose=pose,
            face_score=1.0,
            source=image_path,
        )
