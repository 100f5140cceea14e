"""Scene parts around the face: textured backgrounds, clutter, occluders, camera degradations."""

from __future__ import annotations

import cv2
import numpy as np


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB: a gradient, a low-frequency noise field, shapes and blurred stripes."""
    base = rng.uniform(20, 235, 3)
    other = rng.uniform(20, 235, 3)
    t = np.linspace(0, 1, width if rng.random() < 0.5 else height, dtype=np.float32)
    grad = t[None, :, None] if len(t) == width else t[:, None, None]
    img = base * (1 - grad) + other * grad  # broadcasts to (H, W, 3) or (H, 1, 3)/(1, W, 3)
    img = np.broadcast_to(img, (height, width, 3)).astype(np.float32)
    cells = int(rng.integers(2, 9))
    noise = cv2.resize(rng.normal(0, rng.uniform(5, 45), (cells, cells, 3)).astype(np.float32),
                       (width, height), interpolation=cv2.INTER_LINEAR)
    img = img + noise
    if rng.random() < 0.3:  # stripes (curtains, blinds, shelves)
        period = rng.uniform(4, 30)
        angle = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        phase = (xx * np.cos(angle) + yy * np.sin(angle)) / period
        img = img + (np.sin(2 * np.pi * phase)[..., None] * rng.uniform(10, 40))
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, 8))):
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        kind = rng.integers(3)
        x, y = int(rng.integers(width)), int(rng.integers(height))
        size = int(rng.uniform(0.05, 0.4) * max(height, width))
        if kind == 0:
            cv2.rectangle(img, (x, y), (x + size, y + int(size * rng.uniform(0.3, 2))), colour, -1)
        elif kind == 1:
            cv2.circle(img, (x, y), size // 2, colour, -1, cv2.LINE_AA)
        else:
            x2, y2 = int(rng.integers(width)), int(rng.integers(height))
            cv2.line(img, (x, y), (x2, y2), colour, int(rng.integers(1, 6)), cv2.LINE_AA)
    if rng.random() < 0.5:
        sigma = rng.uniform(0.5, 3.0)  # out-of-focus background
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    return img


def hair_clutter(img: np.ndarray, rng: np.random.Generator, count: int, colour=None) -> None:
    """Thin curved strokes (hair, cables, twigs) drawn in place."""
    h, w = img.shape[:2]
    for _ in range(count):
        p = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        step = rng.normal(0, 1, 2) * max(h, w) * 0.04
        pts = [p]
        for _ in range(int(rng.integers(3, 7))):
            step = step + rng.normal(0, 1, 2) * max(h, w) * 0.015
            pts.append(pts[-1] + step)
        c = colour if colour is not None else rng.uniform(0, 255, 3)
        c = tuple(float(v) for v in np.clip(np.asarray(c) * rng.uniform(0.7, 1.3), 0, 255))
        cv2.polylines(img, [np.round(np.array(pts) * 16).astype(np.int32)], False, c, 1, cv2.LINE_AA, 4)


def occlude(img: np.ndarray, rng: np.random.Generator, box: np.ndarray, skin: np.ndarray) -> str:
    """Draw one occluder over the face box (x1, y1, x2, y2) in place; return its kind."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    cx = rng.uniform(x1, x2)
    cy = rng.uniform(y1 + 0.2 * h, y2 + 0.1 * h)
    kind = ["hand", "rectangle", "ellipse", "scarf"][int(rng.integers(4))]
    if kind == "hand":  # a palm with fingers, skin-coloured
        colour = tuple(float(v) for v in np.clip(skin * rng.uniform(0.8, 1.1), 0, 255))
        palm = (int(w * rng.uniform(0.18, 0.28)), int(h * rng.uniform(0.2, 0.3)))
        angle = rng.uniform(0, 360)
        cv2.ellipse(img, (int(cx), int(cy)), palm, angle, 0, 360, colour, -1, cv2.LINE_AA)
        for k in range(4):
            a = np.deg2rad(angle - 90 + (k - 1.5) * 14)
            end = (int(cx + np.cos(a) * palm[1] * 2.0), int(cy + np.sin(a) * palm[1] * 2.0))
            cv2.line(img, (int(cx), int(cy)), end, colour, max(2, int(w * 0.07)), cv2.LINE_AA)
    elif kind == "rectangle":
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        rw, rh = w * rng.uniform(0.2, 0.6), h * rng.uniform(0.2, 0.5)
        pts = cv2.boxPoints(((cx, cy), (rw, rh), rng.uniform(0, 180)))
        cv2.fillConvexPoly(img, np.round(pts).astype(np.int32), colour, cv2.LINE_AA)
    elif kind == "ellipse":
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        axes = (int(w * rng.uniform(0.1, 0.3)), int(h * rng.uniform(0.1, 0.3)))
        cv2.ellipse(img, (int(cx), int(cy)), axes, rng.uniform(0, 180), 0, 360, colour, -1, cv2.LINE_AA)
    else:  # scarf / mask over the lower face
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        top = y1 + h * rng.uniform(0.6, 0.8)
        pts = np.array([[x1 - 0.1 * w, top], [x2 + 0.1 * w, top + rng.normal(0, 0.05) * h],
                        [x2 + 0.1 * w, y2 + 0.3 * h], [x1 - 0.1 * w, y2 + 0.3 * h]])
        cv2.fillConvexPoly(img, np.round(pts).astype(np.int32), colour, cv2.LINE_AA)
    return kind


def degrade(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, bool]]:
    """Camera/ISP effects on a crop: colour cast, gamma, blur (motion or focus), noise, JPEG."""
    flags = {"blur": False, "illumination": False}
    out = img.astype(np.float32)
    cast = rng.normal(1.0, 0.07, 3)
    gain = rng.uniform(0.6, 1.3)
    if gain < 0.75 or gain > 1.2:
        flags["illumination"] = True
    out = out * cast * gain
    if rng.random() < 0.3:
        gamma = rng.uniform(0.7, 1.4)
        out = 255.0 * (np.clip(out, 0, 255) / 255.0) ** gamma
    out = np.clip(out, 0, 255).astype(np.uint8)
    r = rng.random()
    if r < 0.25:
        length = int(rng.integers(3, 10))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0
        rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), rng.uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (length, length))
        kernel /= max(kernel.sum(), 1e-6)
        out = cv2.filter2D(out, -1, kernel, borderType=cv2.BORDER_REFLECT)
        flags["blur"] = length >= 6
    elif r < 0.5:
        sigma = rng.uniform(0.4, 1.6)
        out = cv2.GaussianBlur(out, (0, 0), sigma)
        flags["blur"] = sigma > 1.1
    if rng.random() < 0.6:
        sigma = rng.uniform(1, 9)
        out = np.clip(out + rng.normal(0, sigma, out.shape), 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 95))])
        assert ok
        out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return out, flags
