"""WIDER Face: face crops (score 1) and non-face crops (score 0) for the tracking head.

Layout as distributed:
    <root>/wider_face_split/wider_face_{train,val}_bbx_gt.txt
    <root>/WIDER_{train,val}/images/<event>/<image>.jpg
The ground-truth file repeats: an image path line, a face-count line, then one line per face
`x1 y1 w h blur expression illumination invalid occlusion pose`; a count of 0 is followed by
one line of zeros.

Face crops: every face with `invalid` = 0 and a shorter side of at least `min_face_size`
pixels (default 20: smaller faces have too few pixels to upsample to a 112 crop), cropped
with `data/crop.py` around its box; `face_box` is that box inside the crop; no landmarks, no
pose. Skipped faces are counted by reason and logged.
Non-face crops: square windows inside a training image with IoU < 0.3 against every face
box of that image (invalid and tiny ones included), drawn by a generator seeded with
(seed, index), so the same index is always the same window; `negative_ratio` of them per
face crop. Items alternate face / non-face so any prefix (`limit`) stays balanced.
`subsets()` gives `face` and `non_face`. Splits: `train` uses the train file, `val` and
`test` the val file (WIDER's test labels are not public).
"""

from __future__ import annotations

import os

import numpy as np

from atpn_edge.data.dataset import FaceDataset, RawFace, SkipReport, check_split, read_image_rgb
from atpn_edge.errors import UserError

MIN_FACE_SIZE = 20
MAX_NEGATIVE_IOU = 0.3
_NEGATIVE_TRIES = 50
_FACE_FIELDS = 10


def parse_bbx_gt(path: str | os.PathLike) -> list[tuple[str, np.ndarray]]:
    """-> [(relative image path, (N, 10) int64 face rows)], N = 0 for a count-0 entry."""
    path = str(path)
    if not os.path.isfile(path):
        raise UserError(f"{path}: WIDER Face ground-truth file not found")
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    entries = []
    i = 0
    while i < len(lines):
        image_line = lines[i].strip()
        if not image_line:
            i += 1
            continue
        if i + 1 >= len(lines):
            raise UserError(f"{path}:{i + 1}: truncated: image '{image_line}' has no face-count line")
        count_text = lines[i + 1].strip()
        try:
            count = int(count_text)
        except ValueError:
            raise UserError(f"{path}:{i + 2}: expected a face count, got '{count_text}'") from None
        if count < 0:
            raise UserError(f"{path}:{i + 2}: negative face count {count}")
        rows = []
        for k in range(max(count, 1)):
            number = i + 3 + k
            if number > len(lines):
                raise UserError(
                    f"{path}:{number}: truncated: image '{image_line}' declares {count} faces, "
                    f"file ends after {k}"
                )
            fields = lines[number - 1].split()
            if len(fields) != _FACE_FIELDS:
                raise UserError(
                    f"{path}:{number}: expected {_FACE_FIELDS} values "
                    f"(x1 y1 w h blur expression illumination invalid occlusion pose), got {len(fields)}"
                )
            try:
                values = [float(v) for v in fields]
            except ValueError:
                raise UserError(f"{path}:{number}: not a number in '{lines[number - 1].strip()}'") from None
            if not np.all(np.isfinite(values)):
                raise UserError(f"{path}:{number}: NaN or inf in a face line")
            rows.append(values)
        face_rows = np.array(rows[:count], np.float64).reshape(count, _FACE_FIELDS)
        entries.append((image_line, face_rows))
        i += 2 + max(count, 1)
    return entries


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (4,) x1, y1, x2, y2 box against (N, 4) boxes -> (N,)."""
    if len(boxes) == 0:
        return np.zeros(0)
    ix1 = np.maximum(box[0], boxes[:, 0])
    iy1 = np.maximum(box[1], boxes[:, 1])
    ix2 = np.minimum(box[2], boxes[:, 2])
    iy2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def sample_negative_window(
    image_shape: tuple[int, int], faces: np.ndarray, rng: np.random.Generator
) -> np.ndarray | None:
    """A square (4,) window inside the image with IoU < 0.3 against every face, or None."""
    height, width = image_shape
    short = min(height, width)
    lo = max(12.0, 0.08 * short)
    hi = max(lo, 0.6 * short)
    for _ in range(_NEGATIVE_TRIES):
        side = float(rng.uniform(lo, hi))
        if side > short:
            return None
        x1 = float(rng.uniform(0, width - side))
        y1 = float(rng.uniform(0, height - side))
        window = np.array([x1, y1, x1 + side, y1 + side])
        if np.all(box_iou(window, faces) < MAX_NEGATIVE_IOU):
            return window
    return None


class WIDERFace(FaceDataset):
    kind = "wider"
    native_points = None

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        min_face_size: int = MIN_FACE_SIZE,
        negative_ratio: float = 1.0,
        **kwargs,
    ) -> None:
        check_split(self.kind, split, ("train", "val", "test"))
        super().__init__(root, split, **kwargs)
        file_split = "train" if split == "train" else "val"
        gt_path = self.root / "wider_face_split" / f"wider_face_{file_split}_bbx_gt.txt"
        if not gt_path.is_file():
            raise UserError(f"{gt_path}: WIDER Face ground-truth file not found")
        image_dir = self.root / f"WIDER_{file_split}" / "images"
        entries = parse_bbx_gt(gt_path)
        missing = self._missing_images()
        invalid = SkipReport("face marked invalid")
        empty = SkipReport("face box with zero width or height")
        tiny = SkipReport(f"face shorter side under {min_face_size} px")
        self.skipped += [invalid, empty, tiny]
        self._images: list[str] = []
        self._image_faces: list[np.ndarray] = []  # per image (N, 4) x1, y1, x2, y2, all faces
        faces = []  # (image index, (4,) box)
        for rel_path, rows in entries:
            image_path = image_dir / rel_path
            if not image_path.is_file():
                self._drop_or_raise(missing, image_path)
                continue
            index = len(self._images)
            self._images.append(str(image_path))
            boxes = np.column_stack([rows[:, 0], rows[:, 1], rows[:, 0] + rows[:, 2], rows[:, 1] + rows[:, 3]])
            self._image_faces.append(boxes)
            for k, row in enumerate(rows):
                where = f"{image_path} face {k + 1}"
                if row[7] == 1:
                    invalid.add(where)
                elif row[2] <= 0 or row[3] <= 0:
                    empty.add(where)
                elif min(row[2], row[3]) < min_face_size:
                    tiny.add(where)
                else:
                    faces.append((index, boxes[k]))
        if not self._images:
            raise UserError(f"{image_dir}: none of the {len(entries)} images listed in {gt_path} found")
        num_negatives = int(round(negative_ratio * len(faces)))
        items, attributes = [], []
        for i in range(max(len(faces), num_negatives)):
            if i < len(faces):
                items.append(("face",) + faces[i])
                attributes.append({"face": True})
            if i < num_negatives:
                items.append(("non_face", i))
                attributes.append({"non_face": True})
        self._finish(items, attributes)

    def _raw(self, item) -> RawFace:
        if item[0] == "face":
            _, image_index, box = item
            path = self._images[image_index]
            return RawFace(image=read_image_rgb(path), box=box, face_score=1.0, source=path)
        negative_index = item[1]
        rng = np.random.default_rng([self.seed, 7919, negative_index])
        for _ in range(len(self._images)):
            image_index = int(rng.integers(len(self._images)))
            path = self._images[image_index]
            image = read_image_rgb(path)
            window = sample_negative_window(image.shape[:2], self._image_faces[image_index], rng)
            if window is not None:
                return RawFace(
                    image=image, box=window, face_score=0.0, crop_scale=1.0,
                    source=f"{path}#non_face{negative_index}",
                )
        raise UserError(f"{self.root}: found no window with IoU < {MAX_NEGATIVE_IOU} against the faces in any image")

