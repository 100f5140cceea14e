"""WFLW: 98 landmarks, 7,500 train / 2,500 test images, six test subsets.

Layout as distributed:
    <root>/WFLW_images/<event folder>/<image>.jpg
    <root>/WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_{train,test}.txt
One annotation line has 207 whitespace-separated fields: 196 floats (x0 y0 ... x97 y97), the
face box x_min y_min x_max y_max, six 0/1 flags (pose, expression, illumination, make-up,
occlusion, blur) and the image path relative to WFLW_images/. An image with several faces
has several lines. Coordinates are used as given (0-based pixels); crops come from the box.

Splits: `test` is the official test list; WFLW has no validation list, so `val` is a
deterministic 5 % of the train lines (by image-path hash, all faces of an image together),
`train` is the rest and `trainval` all 7,500 lines.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

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

NUM_POINTS = 98
NUM_FIELDS = 2 * NUM_POINTS + 4 + 6 + 1  # 207
ATTRIBUTES = ("pose", "expression", "illumination", "makeup", "occlusion", "blur")
ANNOTATION_DIR = Path("WFLW_annotations") / "list_98pt_rect_attr_train_test"
IMAGE_DIR = "WFLW_images"
VAL_FRACTION = 0.05


def annotation_file_name(split: str) -> str:
    return f"list_98pt_rect_attr_{split}.txt"


def find_root(path: str | os.PathLike) -> Path:
    """The WFLW root from the root itself, WFLW_annotations/, its list folder, or a list file."""
    path = Path(path)
    if path.is_file():
        candidates = [path.parent.parent.parent]
    elif path.name == ANNOTATION_DIR.parts[0]:
        candidates = [path.parent]
    elif path.name == ANNOTATION_DIR.parts[1]:
        candidates = [path.parent.parent]
    else:
        candidates = [path]
    for candidate in candidates:
        if (candidate / ANNOTATION_DIR).is_dir():
            return candidate
    raise UserError(
        f"{path}: not a WFLW folder: expected {path / ANNOTATION_DIR / annotation_file_name('train')}"
    )


def parse_annotation_line(line: str, path: str | os.PathLike, line_number: int):
    """-> (landmarks (98, 2) float32, box (4,) float64, flags dict, relative image path)."""
    fields = line.split()
    where = f"{path}:{line_number}"
    if len(fields) != NUM_FIELDS:
        raise UserError(
            f"{where}: expected {NUM_FIELDS} fields (196 coordinates, 4 box values, 6 flags, "
            f"image path), got {len(fields)}"
        )
    try:
        numbers = np.array([float(v) for v in fields[: NUM_FIELDS - 1]], np.float64)
    except ValueError as error:
        raise UserError(f"{where}: not a number ({error})") from None
    landmarks = check_points(numbers[: 2 * NUM_POINTS].reshape(NUM_POINTS, 2), NUM_POINTS, where)
    box = check_finite(numbers[2 * NUM_POINTS : 2 * NUM_POINTS + 4], "face box", where)
    if not (box[2] > box[0] and box[3] > box[1]):
        raise UserError(f"{where}: face box {box.tolist()} is empty (need x_max > x_min, y_max > y_min)")
    flag_values = numbers[2 * NUM_POINTS + 4 : 2 * NUM_POINTS + 10]
    if not np.all(np.isin(flag_values, (0.0, 1.0))):
        raise UserError(f"{where}: attribute flags must be 0 or 1, got {flag_values.tolist()}")
    flags = {name: bool(v) for name, v in zip(ATTRIBUTES, flag_values)}
    return landmarks, box, flags, fields[-1]


class WFLW(FaceDataset):
    kind = "wflw"
    native_points = NUM_POINTS

    def __init__(self, root: str | os.PathLike, split: str = "train", **kwargs) -> None:
        check_split(self.kind, split, ("train", "val", "trainval", "test"))
        root = find_root(root)
        super().__init__(root, split, **kwargs)
        file_split = "test" if split == "test" else "train"
        path = root / ANNOTATION_DIR / annotation_file_name(file_split)
        if not path.is_file():
            raise UserError(f"{path}: WFLW annotation file not found")
        missing = self._missing_images()
        items, attributes = [], []
        with open(path, encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                landmarks, box, flags, rel_path = parse_annotation_line(line, path, line_number)
                if split in ("train", "val") and in_val_split(rel_path, VAL_FRACTION) != (split == "val"):
                    continue
                image_path = root / IMAGE_DIR / rel_path
                if not image_path.is_file():
                    self._drop_or_raise(missing, image_path)
                    continue
                items.append((str(image_path), landmarks, box, flags))
                attributes.append(flags if split == "test" else {})
        self._finish(items, attributes)

    def _raw(self, item) -> RawFace:
        image_path, landmarks, box, flags = item
        return RawFace(
            image=read_image_rgb(image_path),
            box=box,
            landmarks=landmarks,
            face_score=1.0,
            attributes=flags,
            source=image_path,
        )
