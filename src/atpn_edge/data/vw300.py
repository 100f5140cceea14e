"""300VW: 114 videos with 68 landmarks on every frame (50 train, 64 test in three categories).

Layout as distributed:
    <root>/<video id>/vid.avi
    <root>/<video id>/annot/000001.pts, 000002.pts, ...   (frames numbered from 1)
A .pts file: `version: 1`, `n_points: 68`, `{`, 68 lines `x y`, `}`; coordinates are 1-based
(300W convention) and become 0-based here (x - 1, y - 1).

Frames are decoded with cv2.VideoCapture strictly in order (seeking in AVI files is not
frame-exact), so random access into a video re-reads it from the start: shuffle videos, not
frames, or use `frame_step` to subsample. Splits come from `assets/300vw_splits.json` (the
published lists): `train` = the 50 training videos minus a deterministic 10 % (`val`, by
video-id hash); `trainval` = all 50; `test` = the 64 test videos, with `subsets()` giving
`category1`, `category2`, `category3` (31/19/14 videos).

Two views: `VW300` yields one cropped Sample per annotated frame, cropped around the current
frame's ground-truth landmark extent (`box_source="current"`) or the previous frame's
(`box_source="previous"`, what a tracker would have); `iter_video` yields (frame_rgb,
landmarks_px) for the tracker.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from atpn_edge.data.crop import box_from_landmarks
from atpn_edge.data.dataset import FaceDataset, RawFace, check_points, check_split, in_val_split
from atpn_edge.errors import UserError

log = logging.getLogger(__name__)

NUM_POINTS = 68
SPLITS_FILE = Path(__file__).parent / "assets" / "300vw_splits.json"
CATEGORIES = ("category1", "category2", "category3")
VAL_FRACTION = 0.1
_PTS_NAME = re.compile(r"^(\d{6})\.pts$")
_OPEN_VIDEOS = 4  # decoders kept open per process for sequential access


def load_splits() -> dict[str, list[str]]:
    """{"train": [...50 ids], "category1": [...31], "category2": [...19], "category3": [...14]}."""
    with open(SPLITS_FILE, encoding="utf-8") as handle:
        raw = json.load(handle)
    return {k: list(v) for k, v in raw.items() if not k.startswith("_")}


def read_pts(path: str | os.PathLike, expected: int = NUM_POINTS) -> np.ndarray:
    """A 300W .pts file -> (expected, 2) float32 0-based pixel coordinates."""
    path = str(path)
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        raise UserError(f"{path}: annotation file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read annotation ({error})") from None
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "{")
    except StopIteration:
        raise UserError(f"{path}: no '{{' line: not a .pts file") from None
    header = {}
    for line in lines[:start]:
        if ":" in line:
            key, value = line.split(":", 1)
            header[key.strip()] = value.strip()
    if header.get("n_points") not in (None, str(expected)):
        raise UserError(f"{path}: n_points is {header['n_points']}, expected {expected}")
    points = []
    for number, line in enumerate(lines[start + 1 :], start=start + 2):
        text = line.strip()
        if text == "}":
            break
        if not text:
            continue
        fields = text.split()
        if len(fields) != 2:
            raise UserError(f"{path}:{number}: expected 'x y', got '{text}'")
        try:
            points.append((float(fields[0]), float(fields[1])))
        except ValueError:
            raise UserError(f"{path}:{number}: not a number: '{text}'") from None
    else:
        raise UserError(f"{path}: truncated: no closing '}}' after {len(points)} points")
    array = check_points(np.array(points, np.float64).reshape(-1, 2), expected, path)
    return array - 1.0


def annotated_frames(video_dir: Path) -> list[int]:
    annot = video_dir / "annot"
    if not annot.is_dir():
        return []
    frames = [int(m.group(1)) for e in os.scandir(annot) if (m := _PTS_NAME.match(e.name))]
    return sorted(frames)


def pts_path(video_dir: Path, frame: int) -> Path:
    return video_dir / "annot" / f"{frame:06d}.pts"


class SequentialVideo:
    """Decodes one video in order; asking for an earlier frame reopens it."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = str(path)
        self._capture: cv2.VideoCapture | None = None
        self._next = 1  # 1-based number of the frame the next read returns

    def _open(self) -> None:
        self.close()
        if not os.path.isfile(self.path):
            raise UserError(f"{self.path}: video file not found")
        capture = cv2.VideoCapture(self.path)
        if not capture.isOpened():
            raise UserError(f"{self.path}: cannot open video (corrupt or unsupported codec)")
        self._capture, self._next = capture, 1

    def frame(self, number: int) -> np.ndarray:
        """Frame `number` (1-based) as (H, W, 3) uint8 RGB."""
        if self._capture is None or number < self._next:
            self._open()
        assert self._capture is not None
        while self._next < number:
            if not self._capture.grab():
                raise UserError(f"{self.path}: video ends at frame {self._next - 1}, before frame {number}")
            self._next += 1
        ok, frame = self._capture.read()
        if not ok or frame is None:
            raise UserError(f"{self.path}: video ends at frame {self._next - 1}, before frame {number}")
        self._next += 1
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


def iter_video(video_dir: str | os.PathLike) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """(frame_rgb (H, W, 3) uint8, landmarks_px (68, 2) float32 0-based) for every frame.

    Runs from frame 1 to the last annotated frame; a frame without a .pts file yields None
    landmarks (counted and logged at the end; 300VW annotates every frame).
    """
    video_dir = Path(video_dir)
    frames = annotated_frames(video_dir)
    if not frames:
        raise UserError(f"{video_dir / 'annot'}: no NNNNNN.pts annotations found")
    annotated = set(frames)
    video = SequentialVideo(video_dir / "vid.avi")
    unannotated = 0
    try:
        for number in range(1, frames[-1] + 1):
            image = video.frame(number)
            if number in annotated:
                yield image, read_pts(pts_path(video_dir, number))
            else:
                unannotated += 1
                yield image, None
    finally:
        video.close()
        if unannotated:
            log.warning("%s: %d frame(s) without annotation (yielded with None)", video_dir, unannotated)


class VW300(FaceDataset):
    kind = "300vw"
    native_points = NUM_POINTS

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        box_source: str = "current",
        frame_step: int = 1,
        **kwargs,
    ) -> None:
        check_split(self.kind, split, ("train", "val", "trainval", "test"))
        if box_source not in ("current", "previous"):
            raise UserError(f"300vw: box_source must be 'current' or 'previous', got '{box_source}'")
        if frame_step < 1:
            raise UserError(f"300vw: frame_step must be >= 1, got {frame_step}")
        super().__init__(root, split, **kwargs)
        if not self.root.is_dir():
            raise UserError(f"{self.root}: 300VW folder not found")
        self.box_source = box_source
        splits = load_splits()
        if split == "test":
            video_ids = [(v, c) for c in CATEGORIES for v in splits[c]]
        else:
            video_ids = [
                (v, "train")
                for v in splits["train"]
                if split == "trainval" or in_val_split(v, VAL_FRACTION) == (split == "val")
            ]
        missing = self._missing_images("video folder, vid.avi or annotations not found")
        self.video_dirs: list[tuple[str, str]] = []  # (video folder, category)
        items, attributes = [], []
        for video_id, category in video_ids:
            video_dir = self.root / video_id
            frames = annotated_frames(video_dir)
            if not (video_dir / "vid.avi").is_file() or not frames:
                self._drop_or_raise(missing, video_dir)
                continue
            self.video_dirs.append((str(video_dir), category))
            for frame in frames[::frame_step]:
                items.append((str(video_dir), frame))
                attributes.append({category: True} if split == "test" else {})
        if not items:
            raise UserError(f"{self.root}: none of the {len(video_ids)} 300VW {split} videos found "
                            f"(expected <root>/<id>/vid.avi and annot/, e.g. {video_ids[0][0]})")
        self._videos: OrderedDict[str, SequentialVideo] = OrderedDict()
        self._videos_pid = os.getpid()
        self._finish(items, attributes)

    def _video(self, video_dir: str) -> SequentialVideo:
        if self._videos_pid != os.getpid():  # a forked DataLoader worker: own decoders
            self._videos, self._videos_pid = OrderedDict(), os.getpid()
        if video_dir in self._videos:
            self._videos.move_to_end(video_dir)
            return self._videos[video_dir]
        video = SequentialVideo(Path(video_dir) / "vid.avi")
        self._videos[video_dir] = video
        if len(self._videos) > _OPEN_VIDEOS:
            _, oldest = self._videos.popitem(last=False)
            oldest.close()
        return video

    def _raw(self, item) -> RawFace:
        video_dir, frame = item
        landmarks = read_pts(pts_path(Path(video_dir), frame))
        box_points = landmarks
        previous = pts_path(Path(video_dir), frame - 1)
        if self.box_source == "previous" and previous.is_file():
            box_points = read_pts(previous)
        image = self._video(video_dir).frame(frame)
        return RawFace(
            image=image,
            box=box_from_landmarks(box_points),
            landmarks=landmarks,
            face_score=1.0,
            source=f"{video_dir}/vid.avi#{frame}",
        )

    def iter_videos(self) -> Iterator[tuple[str, str, Iterator[tuple[np.ndarray, np.ndarray | None]]]]:
        """(video folder, category, iter_video(...)) for every video of the split."""
        for video_dir, category in self.video_dirs:
            yield video_dir, category, iter_video(video_dir)
