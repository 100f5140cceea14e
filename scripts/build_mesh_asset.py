"""Rewrite src/atpn_edge/data/assets/mean_face_mesh.npz from build_mean_face_mesh() (needs scipy)."""

from dataclasses import asdict
from pathlib import Path

import numpy as np

from atpn_edge.data.synthetic.geometry import MESH_ASSET, build_mean_face_mesh

path = Path(__file__).resolve().parents[1] / "src" / "atpn_edge" / "data" / MESH_ASSET
np.savez_compressed(path, **asdict(build_mean_face_mesh()))
print(f"wrote {path}")
