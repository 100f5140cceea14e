"""data/draw.py: pose axes follow the label convention, grids tile, marks land where asked."""

from __future__ import annotations

import numpy as np

from atpn_edge.data.draw import draw_box, draw_landmarks, draw_pose_axes, image_grid, pose_axes_endpoints
from atpn_edge.data.synthetic import SyntheticConfig, SyntheticFaces


def test_yaw_positive_nose_axis_points_where_rendered_faces_turn():
    ends = pose_axes_endpoints(30.0, 0.0, 0.0, (50.0, 50.0), 40.0)
    assert ends[2, 0] < 50.0 - 15  # nose (z) axis to the image left
    assert abs(ends[2, 1] - 50.0) < 1e-9
    up = pose_axes_endpoints(0.0, 20.0, 0.0, (50.0, 50.0), 40.0)
    assert up[2, 1] < 50.0 - 10  # pitch > 0: nose axis up (smaller image y)
    roll = pose_axes_endpoints(0.0, 0.0, 20.0, (50.0, 50.0), 40.0)
    assert roll[1, 0] > 50.0 + 10  # roll > 0: the head's up axis tilts to the image right
    # Rendered faces with yaw > 0 have the nose tip left of the eye-corner midpoint, like the axis.
    ds = SyntheticFaces(30, seed=9, config=SyntheticConfig(nonface_fraction=0.0, degrade=False))
    checked = 0
    for i in range(len(ds)):
        s = ds[i]
        yaw, pitch, roll_deg = (float(v) for v in s.pose)
        if abs(yaw) < 15 or abs(roll_deg) > 20:
            continue
        lm = s.landmarks * 112
        nose_dx = lm[54, 0] - (lm[60, 0] + lm[72, 0]) / 2
        axis_dx = pose_axes_endpoints(yaw, pitch, roll_deg, (0.0, 0.0), 10.0)[2, 0]
        assert np.sign(nose_dx) == np.sign(axis_dx)
        checked += 1
    assert checked >= 5


def test_draw_pose_axes_colours_pixels_along_the_axis():
    img = np.zeros((100, 100, 3), np.uint8)
    draw_pose_axes(img, 40.0, 0.0, 0.0, (50, 50), 30)
    end = pose_axes_endpoints(40.0, 0.0, 0.0, (50, 50), 30)[2]
    mid = np.round((np.array([50, 50]) + end) / 2).astype(int)
    assert img[mid[1], mid[0], 2] > 150  # blue channel of the nose axis


def test_landmarks_and_box_marks():
    img = np.zeros((64, 64, 3), np.uint8)
    draw_landmarks(img, np.array([[10.0, 20.0], [40.0, 50.0]]), color=(0, 255, 0), radius=1)
    assert img[20, 10, 1] == 255 and img[50, 40, 1] == 255 and img[5, 5].sum() == 0
    draw_box(img, (5, 5, 30, 30), color=(255, 0, 0), label="face")
    assert img[30, 18, 0] > 200 and img[18, 18].sum() == 0


def test_image_grid_places_tiles_row_major():
    tiles = [np.full((8, 10, 3), k * 40, np.uint8) for k in range(5)]
    grid = image_grid(tiles, cols=3, pad=2)
    assert grid.shape == (2 * 10 + 2, 3 * 12 + 2, 3)
    assert grid[2, 2, 0] == 0 and grid[2, 14, 0] == 40 and grid[12, 14, 0] == 160
    assert grid[12, 26, 0] == 255  # the empty sixth slot keeps the pad value
