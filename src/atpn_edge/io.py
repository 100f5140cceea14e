"""Atomic file writes: nothing half-written ever sits under a final name."""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from atpn_edge.errors import UserError


_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]{8}\.tmp")
_LEGACY_TEMP_AGE_S = 3600.0  # temp files from before the pid was in the name: removed once this old


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove the temporary files a killed writer of `path` left beside it (`.NAME.PID.xxxxxxxx.tmp`
    whose process is gone, or the older `.NAME.xxxxxxxx.tmp` when empty and an hour old); nothing else."""
    removed = []
    legacy = re.compile(rf"\.{re.escape(path.name)}\.[A-Za-z0-9_]{{8}}\.tmp")
    for candidate in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        match = _TEMP_NAME.fullmatch(candidate.name)
        try:
            if match and match["name"] == path.name:
                stale = not _pid_alive(int(match["pid"]))
            else:
                info = candidate.stat()
                stale = bool(legacy.fullmatch(candidate.name)) and info.st_size == 0 and \
                    time.time() - info.st_mtime > _LEGACY_TEMP_AGE_S
            if stale:
                candidate.unlink()
                removed.append(candidate)
        except OSError:
            continue
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path beside `path`; on success rename it to `path` with the mode a plain
    open() would give (0666 less the umask), on error remove it. Temp files of killed earlier
    writers of the same path are removed first."""
    path = Path(path)
    if not path.parent.is_dir():
        raise UserError(f"{path}: the folder {path.parent} does not exist")
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _json_safe(value: Any) -> Any:
    """NaN/inf are not JSON: write them as null so every JSON parser can read our reports."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return _json_safe(value.tolist())
    return value


def write_json(path: str | os.PathLike, data: Any) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(_json_safe(data), f, indent=2)
            f.write("\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def write_png(path: str | os.PathLike, image_rgb) -> None:
    """Save an RGB uint8 image as PNG, atomically."""
    import cv2

    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"{path}: OpenCV could not encode the image")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(encoded.tobytes())


def read_json_or_none(path: str | os.PathLike) -> Any:
    """The parsed file, or None when it does not exist or is not valid JSON (e.g. from a crash)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


RECIPES_DIR = Path(__file__).parent / "recipes"  # shipped in the wheel; `recipes/` at the repo root links here


def recipe_path(path: str | os.PathLike) -> Path:
    """A recipe given by path, or by name ("ptq_int8", "ptq_int8.yaml") from the recipes shipped with the package."""
    path = Path(path)
    if path.is_file() or len(path.parts) > 1 or path.suffix not in ("", ".yaml"):
        return path
    shipped = RECIPES_DIR / f"{path.stem}.yaml"
    return shipped if shipped.is_file() else path


def read_yaml(path: str | os.PathLike, what: str = "YAML") -> Any:
    """Parse a YAML file with safe_load; a missing file or bad YAML is one UserError naming the file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such {what} file")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from e
