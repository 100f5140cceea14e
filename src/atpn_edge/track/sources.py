"""Frame sources for `track`: a synthetic sequence (with ground truth), a video file, a folder of
frames, a camera index, or a 300VW video folder (vid.avi + annot/, with ground truth).

`open_source(spec)` checks what it can before the first frame (the file opens and yields a frame,
the folder has images of one size, the camera opens) and raises UserError with one line naming
the input; `iter_frames()` then yields `SourceFrame`s in order.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from atpn_edge.errors import UserError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
DEFAULT_SYNTHETIC_SEED = 2  # Haar finds the face on most frames of this one
DEFAULT_SYNTHETIC_FRAMES = 150


@dataclass
class SourceFrame:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    landmarks: np.ndarray | None = None  # (P, 2) ground truth in pixels, when known
    pose: np.ndarray | None = None  # (3,) ground-truth yaw, pitch, roll, when known
    visible: bool | None = None  # ground truth: is the face visible (None = unknown)


@dataclass
class FrameSource:
    kind: str  # "synthetic", "video", "frames", "camera", "300vw"
    name: str  # for reports: the path, "synthetic:SEED", "camera:0"
    fps: float
    num_frames: int | None  # None when unknown (camera, some containers)
    replayable: bool  # can iter_frames() run twice (needed by nothing now; the baseline runs interleaved)
    _iterate: object = None

    def iter_frames(self) -> Iterator[SourceFrame]:
        return self._iterate()


def _read_rgb(path: str) -> np.ndarray | None:
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _synthetic(seed: int, num_frames: int, num_points: int) -> FrameSource:
    from atpn_edge.data.synthetic import render_sequence

    log.info("rendering synthetic sequence seed %d, %d frames", seed, num_frames)
    seq = render_sequence(seed, num_frames=num_frames, num_points=num_points)

    def iterate():
        for t in range(len(seq)):
            yield SourceFrame(seq.frames[t], seq.landmarks[t], seq.pose[t], bool(seq.face_visible[t]))

    return FrameSource("synthetic", f"synthetic:{seed}", 30.0, len(seq), True, iterate)


def _video(path: str, max_frames: int | None) -> FrameSource:
    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            raise UserError(f"{path}: cannot open the video (unreadable file or unsupported format)")
        ok, first = capture.read()
        if not ok or first is None:
            raise UserError(f"{path}: the video has no readable frame (empty or corrupt)")
        fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    finally:
        capture.release()

    def iterate():
        capture = cv2.VideoCapture(path)
        try:
            read = 0
            while max_frames is None or read < max_frames:
                ok, frame = capture.read()
                if not ok or frame is None:
                    break
                read += 1
                yield SourceFrame(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        finally:
            capture.release()

    n = count if max_frames is None or count is None else min(count, max_frames)
    return FrameSource("video", path, float(fps) if 1 <= fps <= 240 else 30.0, n, True, iterate)


def _image_size(path: str) -> tuple[int, int] | None:
    """(width, height) from the file header when Pillow is there (no decode), else by decoding."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            return image.size
    except ImportError:
        image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        return None if image is None else (image.shape[1], image.shape[0])
    except Exception:  # noqa: BLE001 - any unreadable image is reported with its name below
        return None


def _frames_folder(folder: str, max_frames: int | None, fps: float) -> FrameSource:
    paths = sorted(str(p) for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if max_frames is not None:
        paths = paths[:max_frames]
    if not paths:
        raise UserError(f"{folder}: no image frames in the folder (expected {', '.join(IMAGE_SUFFIXES)})")
    first_size = _image_size(paths[0])
    for path in paths:
        size = _image_size(path)
        if size is None:
            raise UserError(f"{path}: cannot read the image")
        if size != first_size:
            raise UserError(f"{path}: frame size {size[0]}x{size[1]} differs from {paths[0]} "
                            f"({first_size[0]}x{first_size[1]}): a frame folder must hold frames of one size")

    def iterate():
        for path in paths:
            image = _read_rgb(path)
            if image is None:
                raise UserError(f"{path}: cannot read the image")
            yield SourceFrame(image)

    return FrameSource("frames", folder, fps, len(paths), True, iterate)


def _camera(index: int, max_frames: int | None) -> FrameSource:
    capture = cv2.VideoCapture(index)
    if not capture.isOpened():
        capture.release()
        raise UserError(f"camera {index}: cannot open the camera (no device, or in use)")
    ok, first = capture.read()
    if not ok or first is None:
        capture.release()
        raise UserError(f"camera {index}: opened but returned no frame")
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    limit = max_frames if max_frames is not None else 300

    def iterate():
        try:
            yield SourceFrame(cv2.cvtColor(first, cv2.COLOR_BGR2RGB))
            for _ in range(limit - 1):
                ok, frame = capture.read()
                if not ok or frame is None:
                    log.warning("camera %d: stopped returning frames", index)
                    break
                yield SourceFrame(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        finally:
            capture.release()

    return FrameSource("camera", f"camera:{index}", float(fps) if 1 <= fps <= 240 else 30.0, limit, False, iterate)


def is_300vw_video(folder: str | os.PathLike) -> bool:
    folder = Path(folder)
    return (folder / "vid.avi").is_file() and (folder / "annot").is_dir()


def _vw300(folder: str, max_frames: int | None) -> FrameSource:
    from atpn_edge.data.vw300 import annotated_frames, iter_video

    capture = cv2.VideoCapture(str(Path(folder) / "vid.avi"))
    opened = capture.isOpened()
    fps = capture.get(cv2.CAP_PROP_FPS) if opened else 0.0
    capture.release()
    if not opened:
        raise UserError(f"{folder}/vid.avi: cannot open the video")
    count = len(annotated_frames(Path(folder)))
    if not count:
        raise UserError(f"{folder}/annot: no NNNNNN.pts annotation files")

    def iterate():
        for number, (image, landmarks) in enumerate(iter_video(folder)):
            if max_frames is not None and number >= max_frames:
                break
            yield SourceFrame(image, landmarks, None, None if landmarks is None else True)

    n = count if max_frames is None else min(count, max_frames)
    return FrameSource("300vw", folder, float(fps) if 1 <= fps <= 240 else 30.0, n, True, iterate)


def open_source(spec: str, *, num_points: int = 98, max_frames: int | None = None,
                synthetic_frames: int = DEFAULT_SYNTHETIC_FRAMES, fps: float = 30.0) -> FrameSource:
    """`synthetic[:SEED]`, a camera index (`0`), a video file, a folder of frames, or a 300VW video folder."""
    if max_frames is not None and max_frames < 1:
        raise UserError(f"--max-frames {max_frames}: must be at least 1")
    if spec == "synthetic" or spec.startswith("synthetic:"):
        seed_text = spec.partition(":")[2] or str(DEFAULT_SYNTHETIC_SEED)
        try:
            seed = int(seed_text)
        except ValueError:
            raise UserError(f"{spec}: expected synthetic or synthetic:SEED with an integer seed") from None
        frames = synthetic_frames if max_frames is None else min(synthetic_frames, max_frames)
        return _synthetic(seed, frames, num_points if num_points in (68, 98) else 98)
    if spec.isdigit():
        return _camera(int(spec), max_frames)
    path = Path(spec)
    if path.is_dir():
        if is_300vw_video(path):
            return _vw300(str(path), max_frames)
        return _frames_folder(str(path), max_frames, fps)
    if path.is_file():
        return _video(str(path), max_frames)
    raise UserError(f"{spec}: no such video file, frame folder or camera index (or use 'synthetic')")
