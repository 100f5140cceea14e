#!/usr/bin/env python
"""Fetch the peer models that `atpn-edge compare` times beside ours (run by `make setup`).

MediaPipe's face landmark model (192x192 input, 468 points + face presence) ships inside the
mediapipe wheel. Installing mediapipe clashes with our stack (protobuf<5), so the wheel is only
downloaded (`pip download --no-deps`, a registry download at setup time) and the .tflite files are
read out of it with zipfile into <venv>/share/atpn-edge/peers/. Nothing is downloaded at run time.

    python scripts/fetch_peers.py [--dest DIR] [--wheel-cache DIR]

Idempotent: files already present with the recorded SHA-256 are kept.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

MEDIAPIPE_VERSION = "0.10.14"
# wheel member -> file name under the peers folder
MEMBERS = {
    "mediapipe/modules/face_landmark/face_landmark.tflite": "face_landmark.tflite",
    "mediapipe/modules/face_detection/face_detection_short_range.tflite": "face_detection_short_range.tflite",
}
MANIFEST = "peers.json"


def default_dest() -> Path:
    return Path(sys.prefix) / "share" / "atpn-edge" / "peers"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def already_fetched(dest: Path) -> bool:
    manifest = dest / MANIFEST
    if not manifest.is_file():
        return False
    try:
        recorded = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError):
        return False
    return all((dest / name).is_file() and sha256(dest / name) == recorded.get(name) for name in MEMBERS.values())


def download_wheel(cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob(f"mediapipe-{MEDIAPIPE_VERSION}-*.whl"))
    if found:
        return found[0]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
           f"mediapipe=={MEDIAPIPE_VERSION}", "-d", str(cache)]
    print(f"fetch_peers: {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, check=True)
    found = sorted(cache.glob(f"mediapipe-{MEDIAPIPE_VERSION}-*.whl"))
    if not found:
        raise SystemExit(f"fetch_peers: pip did not leave a mediapipe {MEDIAPIPE_VERSION} wheel in {cache}")
    return found[0]


def extract(wheel: Path, dest: Path) -> dict[str, str]:
    dest.mkdir(parents=True, exist_ok=True)
    digests = {}
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for member, name in MEMBERS.items():
            if member not in names:
                raise SystemExit(f"fetch_peers: {wheel.name} has no {member}")
            fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{name}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(archive.read(member))
            os.replace(tmp, dest / name)
            digests[name] = sha256(dest / name)
    return digests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=default_dest())
    parser.add_argument("--wheel-cache", type=Path, default=None, help="where the wheel is kept (default: DEST/../wheels)")
    args = parser.parse_args(argv)
    if already_fetched(args.dest):
        print(f"fetch_peers: peer models already in {args.dest}")
        return 0
    wheel = download_wheel(args.wheel_cache or args.dest.parent / "wheels")
    digests = extract(wheel, args.dest)
    manifest = {"source": f"mediapipe=={MEDIAPIPE_VERSION} wheel from PyPI ({wheel.name})", "members": MEMBERS, "files": digests}
    (args.dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"fetch_peers: wrote {', '.join(digests)} to {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
