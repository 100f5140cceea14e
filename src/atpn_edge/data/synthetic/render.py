"""Rendering a synthetic face into an RGB canvas: identity, expression, appearance, pose, lighting.

Everything is drawn with OpenCV in a painter's algorithm (mesh triangles and facial parts sorted
back to front). The 98 landmarks are mesh vertices, so the labels are the projected geometry itself,
except where a turned head hides its own contour: there the points follow the visible cheek outline, as
300-W's annotators (and 300W-LP's landmark marching) place them, not AFLW2000-3D's projected 3-D contour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from atpn_edge.data.synthetic.geometry import (
    REGION_LIP,
    angles_to_matrix,
    mean_face_mesh,
    vertex_normals,
)

# Skin tones from very light to very dark (RGB), interpolated; roughly the Monk scale's range.
_SKIN_TONES = np.array(
    [[246, 222, 204], [234, 196, 168], [214, 170, 138], [190, 140, 105],
     [160, 110, 78], [125, 82, 56], [92, 60, 42], [62, 42, 32]], np.float64
)
_HAIR_COLOURS = np.array(
    [[20, 16, 14], [45, 30, 22], [80, 55, 35], [120, 85, 50], [170, 130, 80],
     [200, 170, 120], [140, 60, 30], [150, 150, 150], [225, 220, 210]], np.float64
)
_IRIS_COLOURS = np.array([[60, 40, 25], [95, 65, 35], [70, 100, 130], [80, 110, 70], [40, 30, 25]])


@dataclass
class FaceParams:
    """Everything random about one face (drawn once per sample, or once per sequence)."""

    shape_scale: np.ndarray  # (3,) width, height, depth factors
    jaw: float
    eye_spacing: float
    nose_length: float
    nose_width: float
    mouth_width: float
    lip_thickness: float
    brow_height: float
    random_field: np.ndarray  # (4, 3) low-frequency deformation coefficients
    skin: np.ndarray  # (3,) RGB albedo
    lip: np.ndarray
    hair: np.ndarray
    iris: np.ndarray
    hairline: float  # forehead height above which the mesh is hair (1.1 = bald/high)
    long_hair: bool
    beard: float  # 0..1 darkening of the beard area
    glasses: int  # 0 none, 1 clear frames, 2 sunglasses
    texture_seed: int
    # expression
    mouth_open: float
    smile: float
    eye_closure: float
    brow_raise: float


def sample_face_params(rng: np.random.Generator) -> FaceParams:
    tone = rng.uniform(0, len(_SKIN_TONES) - 1)
    lo = int(tone)
    skin = _SKIN_TONES[lo] * (1 - (tone - lo)) + _SKIN_TONES[min(lo + 1, 7)] * (tone - lo)
    skin = skin * rng.uniform(0.92, 1.08, 3) * np.array([1.0, 1.0, rng.uniform(0.9, 1.05)])
    lip = skin * np.array([0.8, 0.45, 0.47]) * rng.uniform(0.8, 1.05) + np.array([25, 0, 0])
    hair = _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * rng.uniform(0.8, 1.2)
    if tone > 4.5 and rng.random() < 0.7:
        hair = _HAIR_COLOURS[rng.integers(2)] * rng.uniform(0.8, 1.2)
    expressive = rng.random() < 0.6
    return FaceParams(
        shape_scale=np.array([rng.normal(1, 0.06), rng.normal(1, 0.06), rng.normal(1, 0.1)]),
        jaw=rng.normal(0, 0.07),
        eye_spacing=rng.normal(0, 0.025),
        nose_length=rng.normal(0, 0.05),
        nose_width=rng.normal(1, 0.12),
        mouth_width=rng.normal(1, 0.08),
        lip_thickness=rng.normal(1, 0.25),
        brow_height=rng.normal(0, 0.025),
        random_field=rng.normal(0, 0.018, (4, 3)),
        skin=np.clip(skin, 0, 255),
        lip=np.clip(lip, 0, 255),
        hair=np.clip(hair, 0, 255),
        iris=_IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))].astype(np.float64),
        hairline=float(rng.choice([0.5, 0.75, 0.75, 1.0, 1.0, 1.3])) + rng.normal(0, 0.05),
        long_hair=bool(rng.random() < 0.4),
        beard=float(rng.random() < 0.2) * rng.uniform(0.2, 0.7),
        glasses=int(rng.choice([0, 0, 0, 0, 0, 0, 1, 2])),
        texture_seed=int(rng.integers(2**31)),
        mouth_open=float(expressive and rng.random() < 0.35) * rng.uniform(0.02, 0.22),
        smile=float(expressive) * rng.uniform(-0.3, 1.0),
        eye_closure=float(expressive and rng.random() < 0.2) * rng.uniform(0.3, 1.0),
        brow_raise=float(expressive) * rng.normal(0, 0.03),
    )


def deform(params: FaceParams) -> np.ndarray:
    """Neutral mesh -> this identity and expression, (V, 3) model space."""
    mesh = mean_face_mesh()
    v = mesh.vertices.copy()
    n0 = mesh.vertices
    x, y = n0[:, 0], n0[:, 1]
    # Jaw: widen/narrow the lower face progressively below the nose.
    below = np.clip((0.0 - y) / 0.6, 0, 1)
    v[:, 0] *= 1 + params.jaw * below
    # Low-frequency random field (smooth identity variation).
    f = params.random_field
    v += (
        np.outer(np.sin(2.5 * x), f[0]) + np.outer(np.sin(2.5 * y), f[1])
        + np.outer(np.cos(3.0 * x) * np.cos(2.0 * y), f[2]) + np.outer(x * y, f[3])
    )
    # Eyes (and their brows) apart/together.
    for idx, sign in ((list(range(60, 68)) + [96], -1), (list(range(68, 76)) + [97], 1)):
        v[idx, 0] += sign * params.eye_spacing
    v[33:42, 0] -= params.eye_spacing * 0.7
    v[42:51, 0] += params.eye_spacing * 0.7
    # Nose length (the base moves down) and width.
    v[53:60, 1] -= params.nose_length * np.array([0.5, 1, 1, 1, 1, 1, 1])
    v[55:60, 0] = v[57, 0] + (v[55:60, 0] - v[57, 0]) * params.nose_width
    # Brows: identity height plus expression raise.
    v[33:51, 1] += params.brow_height + params.brow_raise
    # Mouth: width and lip thickness around the mouth centre.
    mouth = list(range(76, 96))
    mc = v[mouth].mean(axis=0)
    v[mouth, 0] = mc[0] + (v[mouth, 0] - mc[0]) * params.mouth_width
    upper_outer, lower_outer = [77, 78, 79, 80, 81], [83, 84, 85, 86, 87]
    v[upper_outer, 1] += (params.lip_thickness - 1) * 0.03
    v[lower_outer, 1] -= (params.lip_thickness - 1) * 0.035
    # Smile: corners up and out.
    for idx, sign in (([76, 88], -1), ([82, 92], 1)):
        v[idx, 1] += params.smile * 0.045
        v[idx, 0] += sign * params.smile * 0.03
    # Mouth open: lower lip, chin and lower contour drop, weighted by distance below the mouth.
    if params.mouth_open > 0:
        lower = np.clip((mc[1] - n0[:, 1]) / 0.06, 0, 1) * np.exp(-np.abs(x) * 0.8)
        lower[[93, 94, 95, 83, 84, 85, 86, 87]] = 1.0
        v[:, 1] -= params.mouth_open * lower
    # Eye closure: upper lid moves toward the lower lid.
    for top, bottom in (([61, 62, 63], [67, 66, 65]), ([69, 70, 71], [75, 74, 73])):
        v[top] += params.eye_closure * 0.85 * (v[bottom] - v[top])
    v[96] = v[60:68].mean(axis=0)
    v[97] = v[68:76].mean(axis=0)
    v *= params.shape_scale
    return v


@dataclass(frozen=True)
class View:
    """Where and how the face is seen: pose in degrees, image centre/scale in pixels, camera."""

    yaw: float
    pitch: float
    roll: float
    center: tuple[float, float]  # pixel position of the model origin
    scale: float  # pixels per model unit at the origin's depth
    distance: float  # camera distance in model units (perspective strength; large = weak)
    light: tuple[float, float, float]  # unit direction toward the light, camera frame (y-up)
    ambient: float
    diffuse: float


def sample_view(rng: np.random.Generator, center: tuple[float, float], scale: float) -> View:
    yaw = rng.normal(0, 24) if rng.random() < 0.8 else rng.uniform(-75, 75)
    light = np.array([rng.normal(0, 0.6), rng.normal(0.3, 0.4), 1.0])
    light /= np.linalg.norm(light)
    ambient = rng.uniform(0.25, 0.6)
    return View(
        yaw=float(np.clip(yaw, -80, 80)),
        pitch=float(np.clip(rng.normal(0, 11), -32, 32)),
        roll=float(np.clip(rng.normal(0, 9), -28, 28)),
        center=center,
        scale=scale,
        distance=float(rng.uniform(3.5, 14.0)),
        light=tuple(light),  # type: ignore[arg-type]
        ambient=ambient,
        diffuse=float(rng.uniform(0.55, 0.95) * (1.15 - ambient)),
    )


def project(points: np.ndarray, view: View) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) model points -> (N, 2) pixel coordinates and (N,) camera-frame depth (z toward camera)."""
    r = angles_to_matrix(view.yaw, view.pitch, view.roll)
    cam = points @ r.T
    persp = view.distance / (view.distance - cam[:, 2])
    px = np.empty((len(points), 2))
    px[:, 0] = view.center[0] + view.scale * cam[:, 0] * persp
    px[:, 1] = view.center[1] - view.scale * cam[:, 1] * persp
    return px, cam[:, 2]


def _ellipse_ring(centre, axes_a, axes_b, n=16) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return centre + np.outer(np.cos(t), axes_a) + np.outer(np.sin(t), axes_b)


def render_face(canvas: np.ndarray, params: FaceParams, view: View, rng: np.random.Generator) -> np.ndarray:
    """Draw the head into `canvas` (H, W, 3) uint8 RGB in place; return the (98, 2) pixel landmarks.

    The shaded mesh is rasterised into its own smoothed layer; the facial parts (eyes, brows, mouth,
    ears, glasses) are primitives drawn back to front over it; the nostrils after the nose."""
    mesh = mean_face_mesh()
    verts = deform(params)
    rot = angles_to_matrix(view.yaw, view.pitch, view.roll)
    px, depth = project(verts, view)
    normals = vertex_normals(verts, mesh.triangles) @ rot.T
    colour_v, shade = _vertex_colours(params, view, verts, normals)
    layer = _MeshLayer.draw(canvas.shape, mesh.triangles, px, depth, normals, colour_v, view)
    prims = (_eye_prims(canvas, params, px, depth, normals, shade) + _brow_prims(canvas, params, px, depth, normals, shade)
             + _mouth_prims(canvas, params, px, depth, normals, shade) + _ear_prims(canvas, params, view, verts, rot)
             + _glasses_prims(canvas, params, view, verts, rng))
    nostrils = _nostril_prims(canvas, params, px, depth)
    _draw_head_back(canvas, params, view, rot, rng)
    layer.paste(canvas, layer.mask)
    for _, draw in sorted(prims, key=lambda item: item[0]):
        draw()
    if abs(view.yaw) > 25:  # the nose hides part of the far eye
        layer.paste(canvas, layer.nose_mask)
    for _, draw in nostrils:
        draw()
    if params.hairline < 1.05:
        _draw_fringe(canvas, params, px, mesh, view, rng)
    landmarks = px[:98].copy()
    landmarks[:33] = _contour_on_silhouette(landmarks[:33], verts[:33], normals[:33], layer, rot)
    return landmarks.astype(np.float32)


def _contour_on_silhouette(contour_px: np.ndarray, contour_model: np.ndarray, normals: np.ndarray,
                           layer: "_MeshLayer", rot: np.ndarray) -> np.ndarray:
    """(33, 2) face-contour pixels as 300-W's annotators place them: a contour point the turned head hides
    (its normal faces away from the camera) moves outward along the face's horizontal axis to the visible
    cheek outline, the last pixel of the face mesh (3DDFA's "landmark marching" for 300W-LP). Visible points
    and the chin stay where the 3-D contour projects."""
    out = contour_px.copy()
    x0, y0, x1, y1 = layer.window
    axis = np.array([rot[0, 0], -rot[1, 0]])  # the model x axis on screen (y down)
    axis /= np.linalg.norm(axis) + 1e-9
    for k in np.flatnonzero((normals[:, 2] < 0.0) & (np.abs(contour_model[:, 0]) > 0.05)):
        step = axis * 0.5 * np.sign(contour_model[k, 0])
        point, inside = out[k].copy(), out[k].copy()
        for _ in range(400):
            col, row = int(round(point[0])) - x0, int(round(point[1])) - y0
            if not (0 <= row < y1 - y0 and 0 <= col < x1 - x0) or not layer.mask[row, col]:
                break
            inside = point.copy()
            point = point + step
        out[k] = inside
    return out


Prim = tuple[float, Callable[[], None]]  # (camera depth, draw): drawn in increasing depth


def _vertex_colours(params: FaceParams, view: View, verts: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """-> per-vertex RGB (V, 3) (albedo x Lambert shading + specular, none on hair) and the shading (V,).
    Albedo: skin with per-face texture noise, lips, hair above the hairline, beard."""
    mesh = mean_face_mesh()
    light = np.asarray(view.light)
    lambert = np.clip(normals @ light, 0, 1)
    half = light + np.array([0, 0, 1.0])
    half /= np.linalg.norm(half)
    spec = np.clip(normals @ half, 0, 1) ** 18 * 0.18
    shade = view.ambient + view.diffuse * lambert  # (V,)
    tex_rng = np.random.default_rng(params.texture_seed)
    albedo = np.tile(params.skin, (len(verts), 1)) * tex_rng.uniform(0.93, 1.07, (len(verts), 1))
    albedo[:, 0] *= 1 + 0.06 * np.exp(-((mesh.vertices[:, 0] ** 2) * 4))  # redder centre
    albedo[mesh.region == REGION_LIP] = params.lip
    albedo[33:51] *= 0.8  # eye sockets and brow ridge read darker than cheeks (what detectors key on)
    albedo[60:76] *= 0.72
    hair_v = mesh.forehead_height >= params.hairline
    albedo[hair_v] = params.hair
    if params.beard > 0:
        beard_v = (mesh.vertices[:, 1] < -0.05) & (np.abs(mesh.vertices[:, 0]) < 0.62)
        beard_v &= mesh.region != REGION_LIP
        albedo[beard_v] = albedo[beard_v] * (1 - params.beard) + params.hair * params.beard
    return albedo * shade[:, None] + 255 * spec[:, None] * (~hair_v)[:, None], shade


@dataclass
class _MeshLayer:
    """The mesh rasterised back to front in the face's bounding window, then a mask-normalised blur of
    that layer: smooth (Gouraud-like) shading while the silhouette stays sharp."""

    window: tuple[int, int, int, int]  # x0, y0, x1, y1 in the canvas
    smooth: np.ndarray  # (h, w, 3) uint8, the blurred layer
    mask: np.ndarray  # (h, w) bool, the mesh
    nose_mask: np.ndarray  # (h, w) bool, the nose triangles (restored over the far eye)

    @classmethod
    def draw(cls, shape, tri: np.ndarray, px: np.ndarray, depth: np.ndarray, normals: np.ndarray,
             colour_v: np.ndarray, view: View) -> "_MeshLayer":
        tri_normal_z = normals[tri].mean(axis=1)[:, 2]
        tri_depth = depth[tri].mean(axis=1)
        tri_colour = np.clip(colour_v[tri].mean(axis=1), 0, 255)
        tri_px = np.round(px[tri] * 16).astype(np.int32)  # 4 fractional bits for fillConvexPoly
        h, w = shape[:2]
        pad = int(max(view.scale * 0.1, 3))
        # Clamped so the window stays inside the canvas (at least 1 px) when the face leaves the frame:
        # a negative end would otherwise slice from the far side of the canvas.
        x0 = min(max(int(px[:, 0].min()) - pad, 0), w - 1)
        y0 = min(max(int(px[:, 1].min()) - pad, 0), h - 1)
        x1 = max(min(int(px[:, 0].max()) + pad + 1, w), x0 + 1)
        y1 = max(min(int(px[:, 1].max()) + pad + 1, h), y0 + 1)
        # RGBA layer: alpha 255 = face mesh, 254 = a nose triangle.
        layer = np.zeros((y1 - y0, x1 - x0, 4), np.uint8)
        is_nose = np.isin(tri, np.arange(51, 60)).sum(axis=1) >= 2
        fill = np.concatenate([tri_colour, np.where(is_nose, 254.0, 255.0)[:, None]], axis=1).tolist()
        visible = np.flatnonzero(tri_normal_z > -0.05)
        local_px = tri_px - np.array([x0, y0]) * 16
        for k in visible[np.argsort(tri_depth[visible])].tolist():
            cv2.fillConvexPoly(layer, local_px[k], fill[k], cv2.LINE_8, 4)
        alpha = layer[..., 3]
        mask = alpha > 0
        sigma = max(view.scale * 0.03, 0.6)
        m = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma)[..., None] + 1e-3
        smooth = cv2.GaussianBlur(layer[..., :3], (0, 0), sigma).astype(np.float32) / m
        return cls((x0, y0, x1, y1), np.clip(smooth, 0, 255).astype(np.uint8), mask, alpha == 254)

    def paste(self, canvas: np.ndarray, where: np.ndarray) -> None:
        x0, y0, x1, y1 = self.window
        canvas[y0:y1, x0:x1][where] = self.smooth[where]


def _eye_prims(canvas, params: FaceParams, px, depth, normals, shade) -> list[Prim]:
    """Eyes: sclera, clipped iris and pupil, upper lid line."""
    prims: list[Prim] = []
    skin_shade = float(np.mean(shade[60:76]))
    for eye_idx, pupil in ((list(range(60, 68)), 96), (list(range(68, 76)), 97)):
        if float(normals[eye_idx, 2].mean()) < 0.1:
            continue
        poly = px[eye_idx]

        def draw_eye(poly=poly, pupil=pupil) -> None:
            x0, y0 = np.floor(poly.min(axis=0)).astype(int) - 1
            x1, y1 = np.ceil(poly.max(axis=0)).astype(int) + 2
            h, w = canvas.shape[:2]
            x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
            if x1 - x0 < 2 or y1 - y0 < 1:
                return
            roi = canvas[y0:y1, x0:x1]
            mask = np.zeros(roi.shape[:2], np.uint8)
            local = np.round((poly - [x0, y0]) * 16).astype(np.int32)
            cv2.fillPoly(mask, [local], 255, cv2.LINE_AA, 4)
            eye = np.empty_like(roi)
            eye[:] = np.clip(np.array([235, 228, 222]) * min(1.0, skin_shade * 1.05), 0, 255)
            eye_w = np.linalg.norm(poly[4] - poly[0])
            centre = px[pupil] - [x0, y0]
            iris_r = max(eye_w * 0.22, 0.8)
            c16 = tuple(int(v) for v in np.round(centre * 16))
            cv2.circle(eye, c16, int(iris_r * 16), tuple(float(v) for v in params.iris * skin_shade), -1, cv2.LINE_AA, 4)
            cv2.circle(eye, c16, int(iris_r * 0.45 * 16), (10, 10, 10), -1, cv2.LINE_AA, 4)
            alpha = mask[..., None].astype(np.float32) / 255.0
            roi[:] = (roi * (1 - alpha) + eye * alpha).astype(np.uint8)
            lid = np.round(poly[0:5] * 16).astype(np.int32)
            cv2.polylines(canvas, [lid], False, (25, 18, 15), max(1, int(eye_w / 14)), cv2.LINE_AA, 4)

        prims.append((float(depth[eye_idx].mean()) + 0.01, draw_eye))
    return prims


def _brow_prims(canvas, params: FaceParams, px, depth, normals, shade) -> list[Prim]:
    prims: list[Prim] = []
    brow_colour = params.skin * 0.2 + np.minimum(params.hair, 90) * 0.8
    if params.hair.mean() > 150:
        brow_colour = params.skin * 0.5 + np.array([90, 70, 50]) * 0.5
    for brow_idx in (list(range(33, 42)), list(range(42, 51))):
        if float(normals[brow_idx, 2].mean()) < 0.0:
            continue
        pts = np.round(px[brow_idx] * 16).astype(np.int32)
        colour = tuple(float(c) for c in np.clip(brow_colour * np.mean(shade[brow_idx]), 0, 255))
        prims.append((float(depth[brow_idx].mean()) + 0.01,
                      lambda pts=pts, colour=colour: cv2.fillPoly(canvas, [pts], colour, cv2.LINE_AA, 4)))
    return prims


def _nostril_prims(canvas, params: FaceParams, px, depth) -> list[Prim]:
    prims: list[Prim] = []
    nose_scale = np.linalg.norm(px[55] - px[59])
    for a, b in ((56, 55), (58, 59)):
        centre = px[a] * 0.6 + px[b] * 0.4 + (px[57] - px[54]) * -0.08
        axes = (max(nose_scale * 0.09, 0.6), max(nose_scale * 0.05, 0.4))
        angle = float(np.degrees(np.arctan2(*(px[59] - px[55])[::-1])))
        colour = tuple(float(c) for c in params.skin * 0.25)
        prims.append((float(depth[[a, b]].mean()) + 0.005,
                      lambda c=centre, ax=axes, an=angle, col=colour: cv2.ellipse(
                          canvas, (int(c[0] * 16), int(c[1] * 16)), (int(ax[0] * 16), int(ax[1] * 16)),
                          an, 0, 360, col, -1, cv2.LINE_AA, 4)))
    return prims


def _mouth_prims(canvas, params: FaceParams, px, depth, normals, shade) -> list[Prim]:
    """The lips and the mouth interior (open: dark with teeth) or the line between the lips (closed)."""
    if normals[76:96, 2].mean() <= 0.05:
        return []
    inner = np.round(px[88:96] * 16).astype(np.int32)
    dark = tuple(float(c) for c in params.lip * 0.3)
    gap = np.linalg.norm(px[90] - px[94])
    mouth_w = np.linalg.norm(px[76] - px[82])
    outer = np.round(px[76:88] * 16).astype(np.int32)
    lip_colour = tuple(float(c) for c in np.clip(params.lip * np.mean(shade[76:88]), 0, 255))

    def draw_mouth() -> None:
        cv2.fillPoly(canvas, [outer], lip_colour, cv2.LINE_AA, 4)
        if gap > 1.5:
            cv2.fillPoly(canvas, [inner], dark, cv2.LINE_AA, 4)
            teeth = np.round(np.vstack([px[88:93], px[92:87:-1] * 0.65 + px[[94, 94, 94, 94, 94]] * 0.35]) * 16)
            cv2.fillPoly(canvas, [teeth.astype(np.int32)], (225, 220, 205), cv2.LINE_AA, 4)
        else:
            cv2.polylines(canvas, [inner[0:5]], False, dark, max(1, int(mouth_w / 30)), cv2.LINE_AA, 4)

    return [(float(depth[88:96].mean()) + 0.005, draw_mouth)]


def _ear_prims(canvas, params: FaceParams, view: View, verts, rot) -> list[Prim]:
    """Ellipses on the sides of the head, visible when their side faces the camera."""
    prims: list[Prim] = []
    for sign, contour_idx in ((-1, 2), (1, 30)):
        c = verts[contour_idx] + np.array([-sign * 0.02, 0.05, -0.2])
        ring = _ellipse_ring(c, np.array([0, 0.2, 0]), np.array([0.03 * sign, 0, 0.1]), 14)
        ear_px, ear_depth = project(ring, view)
        side_normal = (rot @ np.array([sign, 0, 0.3]))[2]
        if side_normal > 0.05:
            colour = tuple(float(v) for v in params.skin * (view.ambient + view.diffuse * 0.6) * 0.9)
            pts = np.round(ear_px * 16).astype(np.int32)
            prims.append((float(ear_depth.mean()) - 0.05,
                          lambda pts=pts, colour=colour: cv2.fillConvexPoly(canvas, pts, colour, cv2.LINE_AA, 4)))
    return prims


def _glasses_prims(canvas, params: FaceParams, view: View, verts, rng: np.random.Generator) -> list[Prim]:
    """Rims in front of the eyes (filled dark for sunglasses), a bridge, temples toward the ears."""
    if not params.glasses:
        return []
    prims: list[Prim] = []
    frame = tuple(float(v) for v in rng.uniform(0, 90, 3)) if rng.random() < 0.8 else (180.0, 160, 120)
    thick = max(1, int(view.scale / 55))
    for pupil, sign in ((96, -1), (97, 1)):
        c = verts[pupil] + np.array([0.0, 0.0, 0.1])
        rim = _ellipse_ring(c, np.array([0.17, 0, 0]), np.array([0, 0.12, 0]), 16)
        rim_px, rim_depth = project(rim, view)
        pts = np.round(rim_px * 16).astype(np.int32)

        def draw_rim(pts=pts) -> None:
            if params.glasses == 2:
                cv2.fillPoly(canvas, [pts], (25, 25, 30), cv2.LINE_AA, 4)
            cv2.polylines(canvas, [pts], True, frame, thick, cv2.LINE_AA, 4)

        prims.append((float(rim_depth.mean()) + 0.1, draw_rim))
        temple = np.array([c + np.array([sign * 0.17, 0.02, 0]), c + np.array([sign * 0.26, 0.02, -0.55])])
        t_px, t_depth = project(temple, view)
        tp = np.round(t_px * 16).astype(np.int32)
        prims.append((float(t_depth.mean()), lambda tp=tp: cv2.polylines(canvas, [tp], False, frame, thick, cv2.LINE_AA, 4)))
    bridge = np.array([verts[96] + [0.17, 0.02, 0.1], verts[51] + [0, 0.0, 0.12], verts[97] + [-0.17, 0.02, 0.1]])
    b_px, b_depth = project(bridge, view)
    bp = np.round(b_px * 16).astype(np.int32)
    prims.append((float(b_depth.max()) + 0.1, lambda bp=bp: cv2.polylines(canvas, [bp], False, frame, thick, cv2.LINE_AA, 4)))
    return prims


def _hull_fill(canvas: np.ndarray, points_px: np.ndarray, colour) -> None:
    hull = cv2.convexHull(np.round(points_px * 16).astype(np.int32))
    cv2.fillConvexPoly(canvas, hull, tuple(float(c) for c in np.clip(colour, 0, 255)), cv2.LINE_AA, 4)


def _draw_head_back(canvas, params: FaceParams, view: View, rot, rng) -> None:
    """Neck, the skull behind the face mesh (skin), then the hair cap over it."""
    light_level = view.ambient + view.diffuse * 0.45
    s = params.shape_scale
    neck = np.vstack([
        _ellipse_ring(np.array([0, -0.45, -0.3]), [0.38, 0, 0], [0, 0, 0.36], 12),
        _ellipse_ring(np.array([0, -2.2, -0.35]), [0.46, 0, 0], [0, 0, 0.4], 12),
    ]) * s
    neck_px, _ = project(neck, view)
    _hull_fill(canvas, neck_px, params.skin * light_level * 0.75)
    u = np.linspace(0, np.pi, 9)[1:-1]
    w = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    uu, ww = np.meshgrid(u, w)
    sphere = np.stack([np.sin(uu) * np.cos(ww), np.cos(uu), np.sin(uu) * np.sin(ww)], -1).reshape(-1, 3)
    skull = sphere * np.array([0.7, 0.92, 0.82]) + np.array([0, 0.22, -0.38])
    skull *= s
    skull_px, _ = project(skull, view)
    _hull_fill(canvas, skull_px, params.skin * light_level * 0.85)
    # Hair cap: the upper skull, and for long hair the back down to the shoulders.
    bald = params.hairline > 1.2 and not params.long_hair
    if bald:
        return
    cap = skull[(skull[:, 1] > 0.35 * s[1]) | (skull[:, 2] < -0.55 * s[2])] * 1.04
    if params.long_hair:
        cap = np.vstack([cap, skull[skull[:, 2] < -0.2] + np.array([0, -0.45, -0.05])])
    cap_px, _ = project(cap, view)
    _hull_fill(canvas, cap_px, params.hair * light_level)


def _draw_fringe(canvas, params: FaceParams, px, mesh, view: View, rng) -> None:
    """Hair-like strokes along the hairline (drawn over the forehead's top)."""
    top = np.flatnonzero(mesh.forehead_height >= max(params.hairline, 0.5))
    if len(top) < 2:
        return
    scale = view.scale
    colour = params.hair * (view.ambient + view.diffuse * 0.5)
    for _ in range(int(rng.integers(6, 16))):
        a = px[top[rng.integers(len(top))]]
        d = rng.normal(0, 1, 2) * scale * 0.08
        b = a + d + np.array([0, scale * 0.05])
        tone = tuple(float(c) for c in np.clip(colour * rng.uniform(0.7, 1.3), 0, 255))
        cv2.line(canvas, tuple(int(v) for v in a * 16), tuple(int(v) for v in b * 16), tone,
                 max(1, int(scale / 60)), cv2.LINE_AA, 4)
