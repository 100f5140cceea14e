"""3-D face geometry: the mean face, the 98-point WFLW layout derived from it, a face mesh, poses.

Model space is y-up, x to the image right of a frontal face, z toward the camera (right-handed),
roughly unit scale (the outer eye corners are about 0.76 apart).

Pose convention (300W-LP / AFLW2000-3D, 3DDFA's RotationMatrix): with the "passive" elementary
matrices below, R = Rx(pitch) @ Ry(yaw) @ Rz(roll) applied to column vectors; this is the same as
points_as_rows @ (Rz Ry Rx) with the standard right-handed matrices (data/sample.py's wording).
Consequences (checked by tests): yaw > 0 turns the nose toward the image left, pitch > 0 raises
the nose (looking up), roll > 0 tilts the top of the head toward the image right (clockwise).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import numpy as np

from atpn_edge.data.schemes import WFLW98_TO_IBUG68

NUM_LANDMARKS = 98


def angles_to_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Degrees -> (3, 3) rotation R (column-vector convention, see the module docstring)."""
    x, y, z = np.deg2rad([pitch, yaw, roll])
    cx, sx, cy, sy, cz, sz = np.cos(x), np.sin(x), np.cos(y), np.sin(y), np.cos(z), np.sin(z)
    rx = np.array([[1, 0, 0], [0, cx, sx], [0, -sx, cx]])
    ry = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    rz = np.array([[cz, sz, 0], [-sz, cz, 0], [0, 0, 1]])
    return rx @ ry @ rz


def matrix_to_angles(r: np.ndarray) -> tuple[float, float, float]:
    """Inverse of `angles_to_matrix`: (3, 3) -> (yaw, pitch, roll) in degrees."""
    yaw = np.arcsin(np.clip(-r[0, 2], -1.0, 1.0))
    roll = np.arctan2(r[0, 1], r[0, 0])
    pitch = np.arctan2(r[1, 2], r[2, 2])
    return tuple(float(v) for v in np.rad2deg([yaw, pitch, roll]))  # type: ignore[return-value]


def load_mean_shape_68() -> np.ndarray:
    """(68, 3) ibug mean face in model space (y-up, z toward the camera)."""
    text = resources.files("atpn_edge.data").joinpath("assets/meanshape_68.txt").read_text()
    pts = np.loadtxt(text.splitlines(), dtype=np.float64)
    assert pts.shape == (68, 3)
    return pts * np.array([1.0, -1.0, 1.0])  # the asset is y-down


def _catmull_rom_midpoints(points: np.ndarray) -> np.ndarray:
    """Midpoints (t = 0.5) of a Catmull-Rom curve through (K, 3) points -> (K-1, 3)."""
    padded = np.vstack([2 * points[0] - points[1], points, 2 * points[-1] - points[-2]])
    p0, p1, p2, p3 = padded[:-3], padded[1:-2], padded[2:-1], padded[3:]
    return (-p0 + 9 * p1 + 9 * p2 - p3) / 16.0


def wflw98_from_ibug68(s68: np.ndarray) -> np.ndarray:
    """(68, 3) -> (98, 3) WFLW layout; the result satisfies out[WFLW98_TO_IBUG68] == s68 exactly."""
    out = np.zeros((98, 3))
    contour = s68[0:17]
    out[0:33:2] = contour
    out[1:33:2] = _catmull_rom_midpoints(contour)

    def brow(upper: np.ndarray, outer_first: bool) -> np.ndarray:
        # upper: 5 points, outer -> inner (left brow) or inner -> outer (right brow).
        # Lower arc: 4 points under the upper one, thicker toward the inner end, going back.
        u = upper if outer_first else upper[::-1]  # outer -> inner
        t = np.array([0.875, 0.625, 0.375, 0.125])  # inner -> outer along the arc
        idx = t * 4
        lo = np.floor(idx).astype(int)
        frac = (idx - lo)[:, None]
        base = u[lo] * (1 - frac) + u[np.minimum(lo + 1, 4)] * frac
        thickness = 0.035 + 0.035 * t
        lower = base - np.outer(thickness, [0, 1, 0]) + np.outer(thickness * 0.2, [0, 0, 1])
        return lower if outer_first else lower[::-1]

    out[33:38] = s68[17:22]
    out[38:42] = brow(s68[17:22], outer_first=True)  # 38 inner ... 41 outer
    out[42:47] = s68[22:27]
    out[47:51] = brow(s68[22:27], outer_first=False)  # 47 outer ... 50 inner
    out[51:60] = s68[27:36]

    def eye(e: np.ndarray) -> np.ndarray:
        # ibug eye: corner, top, top, corner, bottom, bottom -> WFLW 8 points.
        top = _catmull_rom_midpoints(e[0:4])[1]
        bottom = _catmull_rom_midpoints(np.vstack([e[3], e[4], e[5], e[0]]))[1]
        return np.vstack([e[0], e[1], top, e[2], e[3], e[4], bottom, e[5]])

    out[60:68] = eye(s68[36:42])
    out[68:76] = eye(s68[42:48])
    out[76:96] = s68[48:68]
    out[96] = out[60:68].mean(axis=0)
    out[97] = out[68:76].mean(axis=0)
    return out


@dataclass(frozen=True)
class FaceMesh:
    """Neutral mesh: the 98 landmarks are vertices 0..97, then extra surface vertices."""

    vertices: np.ndarray  # (V, 3) model space
    triangles: np.ndarray  # (T, 3) int, counter-clockwise seen from the front
    region: np.ndarray  # (V,) int region id, see REGION_*
    forehead_height: np.ndarray  # (V,) float, 0 at the brows, 1 at the top of the mesh
    ring: np.ndarray  # (V,) bool: vertices on the side ring (behind the contour)


REGION_SKIN, REGION_LIP, REGION_FOREHEAD, REGION_RING = 0, 1, 2, 3


MESH_ASSET = "assets/mean_face_mesh.npz"  # build_mean_face_mesh() saved: rendering then needs no scipy


@functools.lru_cache(maxsize=1)
def mean_face_mesh() -> FaceMesh:
    """The neutral mesh, read from MESH_ASSET (a runtime install renders synthetic crops without scipy);
    `python scripts/build_mesh_asset.py` rewrites it, tests check it equals build_mean_face_mesh()."""
    asset = resources.files("atpn_edge.data").joinpath(MESH_ASSET)
    if not asset.is_file():
        return build_mean_face_mesh()
    with asset.open("rb") as f, np.load(f, allow_pickle=False) as saved:
        return FaceMesh(**{name: saved[name] for name in FaceMesh.__dataclass_fields__})


def build_mean_face_mesh() -> FaceMesh:
    s68 = load_mean_shape_68()
    lm = wflw98_from_ibug68(s68)
    contour = lm[0:33]
    # Forehead: arcs above the brows, following an ellipse toward the top of the head.
    brow_top = max(lm[33:51, 1])
    extra: list[np.ndarray] = []
    heights: list[float] = []
    half_width = 0.64
    for level, (dy, shrink) in enumerate([(0.12, 0.99), (0.3, 0.95), (0.5, 0.86), (0.68, 0.70)]):
        n = 9 - level
        xs = np.linspace(-1, 1, n) * half_width * shrink
        ys = brow_top + dy - 0.05 * (xs / half_width) ** 2
        extra.extend(np.stack([xs, ys, np.zeros_like(xs)], axis=1))
        heights.extend([(level + 1) / 4.0] * n)
    # Temples between the outer brow ends and the forehead sides.
    for sign in (-1, 1):
        extra.append(np.array([sign * 0.66, brow_top - 0.05, 0]))
        heights.append(0.0)
    # Cheeks: from each contour point toward the nose base.
    centre = lm[54] * np.array([1, 1, 0]) + np.array([0, 0.02, 0])
    for i in range(2, 31, 2):
        for t in (0.3, 0.55):
            extra.append(contour[i] + t * (centre - contour[i]))
            heights.append(0.0)
    extra_arr = np.array(extra)
    # Drop extra points too close (frontal 2-D) to landmarks or each other.
    keep: list[int] = []
    for k, p in enumerate(extra_arr):
        d_lm = np.linalg.norm(lm[:, :2] - p[:2], axis=1).min()
        d_kept = min((np.linalg.norm(extra_arr[j, :2] - p[:2]) for j in keep), default=1.0)
        if d_lm > 0.06 and d_kept > 0.06:
            keep.append(k)
    extra_arr = extra_arr[keep]
    heights_arr = np.array(heights)[keep]
    # Depth of the extra points: thin-plate interpolation of the landmarks inside the face; the
    # forehead follows a sphere-like cap that starts at the brows' depth.
    inner = extra_arr[:, 1] < brow_top
    from scipy.interpolate import RBFInterpolator  # imported here: the pose helpers above serve torch-free drawing

    rbf = RBFInterpolator(lm[:96, :2], lm[:96, 2], kernel="thin_plate_spline", smoothing=1e-3)
    extra_arr[inner, 2] = rbf(extra_arr[inner, :2])
    fh = ~inner
    brow_z = 0.40
    x_rel = extra_arr[fh, 0] / 0.75
    y_rel = (extra_arr[fh, 1] - brow_top + 0.05) / 0.95
    extra_arr[fh, 2] = brow_z - 0.75 * (1 - np.sqrt(np.clip(1 - x_rel**2 - y_rel**2, 0.05, 1)))
    # Side ring: behind the contour and the forehead edge, so turned heads keep a round outline.
    outline_idx = list(range(0, 33, 2))
    ring = []
    for i in outline_idx:
        p = contour[i]
        direction = np.array([p[0], p[1] + 0.1, 0.0])
        direction /= np.linalg.norm(direction) + 1e-9
        ring.append(p + 0.07 * direction + np.array([0, 0, -0.28]))
    top_row = extra_arr[heights_arr == heights_arr.max()]
    for p in top_row[[0, -1]]:
        ring.append(p + np.array([np.sign(p[0]) * 0.07, 0.05, -0.25]))
    ring_arr = np.array(ring)
    vertices = np.vstack([lm, extra_arr, ring_arr])
    region = np.zeros(len(vertices), np.int64)
    region[76:96] = REGION_LIP
    n_lm, n_extra = len(lm), len(extra_arr)
    region[n_lm : n_lm + n_extra][heights_arr > 0] = REGION_FOREHEAD
    region[n_lm + n_extra :] = REGION_RING
    forehead_height = np.zeros(len(vertices))
    forehead_height[n_lm : n_lm + n_extra] = heights_arr
    forehead_height[n_lm + n_extra :] = np.where(ring_arr[:, 1] > brow_top, 1.0, 0.0)
    # Triangulate in the frontal projection, without the pupils (they sit inside the eyes).
    usable = np.ones(len(vertices), bool)
    usable[96:98] = False
    index = np.flatnonzero(usable)
    from scipy.spatial import Delaunay

    tri = index[Delaunay(vertices[index, :2]).simplices]
    # Remove triangles that bridge the mouth opening and the eyes' interiors; they are drawn as parts.
    inner_mouth = set(range(88, 96))
    eyes = [set(range(60, 68)), set(range(68, 76))]
    keep_tri = []
    for t in tri:
        s = set(int(v) for v in t)
        if s <= inner_mouth or any(s <= e for e in eyes):
            continue
        keep_tri.append(t)
    tri = np.array(keep_tri)
    # Counter-clockwise in a y-up frame.
    a, b, c = (vertices[tri[:, k], :2] for k in range(3))
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    tri[cross < 0] = tri[cross < 0][:, [0, 2, 1]]
    ring_mask = np.zeros(len(vertices), bool)
    ring_mask[n_lm + n_extra :] = True
    return FaceMesh(vertices, tri, region, forehead_height, ring_mask)


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(V, 3), (T, 3) -> unit vertex normals (V, 3), area-weighted."""
    a, b, c = vertices[triangles[:, 0]], vertices[triangles[:, 1]], vertices[triangles[:, 2]]
    face_n = np.cross(b - a, c - a)
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, triangles[:, k], face_n)
    return normals / (np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12)


assert WFLW98_TO_IBUG68.shape == (68,)
