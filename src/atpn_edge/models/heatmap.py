"""The cheap heatmap: rendered analytically from predicted landmarks, no learned weights.

    landmarks (B, P, 2) normalised crop coords  ->  heatmap (B, K, H, H), values in [0, 1]

Each landmark puts a bump on an H x H grid of cell centres ((i + 0.5) / H, the same convention as
the landmarks), 1 where the landmark sits. Landmarks are reduced by max into K channels: one per
facial-part group (`channels="parts"`, K = 5: contour, brows, eyes, nose, mouth) or one for the
whole face (`channels="single"`). Two bump kernels:

- "bump" (the default): separable, b(dx) * b(dy) with b(d) = 1 - clamp(d / r, -1, 1)^2 and
  r = 2 sqrt(ln 2) sigma = 1.67 sigma cells, so that along the axes it is half high where a
  Gaussian of the same sigma is (their half-maximum regions overlap 95 %). Only sub, mul,
  clamp (RELU_N1_TO_1), slices, concatenation and reduce-max: every op runs inside XNNPACK in int8,
  so the int8 .tflite stays one delegate partition; the elementwise work is on (P, H) rows, not
  (P, H * H) cells, up to one product. Clamping before squaring keeps the int8 steps fine where the
  bump is not zero.
- "gaussian" (the first ATPN): exp(-d^2 / 2 sigma^2). Its int8 EXP and the elementwise MAXIMUM that
  merged a group's index runs have no XNNPACK int8 kernel: the int8 graph split into 3 partitions
  and the heatmap ran in TFLite's reference kernels. Kept for checkpoints trained with it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from atpn_edge.data.schemes import scheme_for

# Facial-part groups of the heatmap channels, as unions of the schemes' parts.
PART_GROUPS: dict[str, tuple[str, ...]] = {
    "contour": ("contour",),
    "brows": ("left_brow", "right_brow"),
    "eyes": ("left_eye", "right_eye", "pupils"),
    "nose": ("nose_bridge", "nose_base"),
    "mouth": ("outer_lips", "inner_lips"),
}
HEATMAP_CHANNEL_MODES = ("parts", "single")
HEATMAP_KERNELS = ("bump", "gaussian")
BUMP_RADIUS_PER_SIGMA = 2.0 * math.sqrt(math.log(2.0))  # b(r / sqrt 2) = 1/2 = Gaussian(1.177 sigma)


def contiguous_runs(indices: list[int]) -> list[tuple[int, int]]:
    """Sorted point indices -> [(start, stop), ...] half-open runs, so a group is a few slices."""
    runs: list[tuple[int, int]] = []
    for i in sorted(indices):
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs


def heatmap_groups(num_landmarks: int, channels: str) -> list[list[tuple[int, int]]]:
    """One list of index runs per heatmap channel."""
    if channels == "single":
        return [[(0, num_landmarks)]]
    scheme = scheme_for(num_landmarks)
    groups = []
    for parts in PART_GROUPS.values():
        indices = [i for part in parts if part in scheme.parts for i in scheme.parts[part]]
        groups.append(contiguous_runs(indices))
    covered = sorted(i for runs in groups for a, b in runs for i in range(a, b))
    assert covered == list(range(num_landmarks)), "heatmap part groups must cover every point once"
    return groups


class CheapHeatmap(nn.Module):
    def __init__(self, num_landmarks: int, size: int = 14, sigma: float = 1.0, channels: str = "parts",
                 kernel: str = "bump") -> None:
        """`sigma` is in heatmap cells (1.0 = one cell = 1/size of the crop)."""
        super().__init__()
        assert channels in HEATMAP_CHANNEL_MODES and kernel in HEATMAP_KERNELS
        self.size = size
        self.kernel = kernel
        self.groups = heatmap_groups(num_landmarks, channels)
        self.out_channels = len(self.groups)
        centres = (torch.arange(size, dtype=torch.float32) + 0.5) / size
        # (1, 1, H): broadcast against (B, P, 1) landmark coordinates
        self.register_buffer("centres", centres.reshape(1, 1, size), persistent=False)
        sigma_normalised = sigma / size
        self.inv_radius = 1.0 / (BUMP_RADIUS_PER_SIGMA * sigma_normalised)
        self.neg_inv_two_sigma_sq = -1.0 / (2.0 * sigma_normalised**2)  # gaussian

    def per_point(self, landmarks: torch.Tensor) -> torch.Tensor:
        """(B, P, 2) -> (B, P, H * H): each landmark's bump on the grid, row-major (y, x)."""
        dx = self.centres - landmarks[:, :, 0:1]  # (B, P, H)
        dy = self.centres - landmarks[:, :, 1:2]
        if self.kernel == "gaussian":
            d2 = dy.unsqueeze(3) ** 2 + dx.unsqueeze(2) ** 2  # (B, P, H, H)
            return torch.exp(d2 * self.neg_inv_two_sigma_sq).flatten(2)
        tx = torch.clamp(dx * self.inv_radius, -1.0, 1.0)
        ty = torch.clamp(dy * self.inv_radius, -1.0, 1.0)
        bump_x, bump_y = 1.0 - tx * tx, 1.0 - ty * ty  # (B, P, H) each, in [0, 1]
        return (bump_y.unsqueeze(3) * bump_x.unsqueeze(2)).flatten(2)  # (B, P, H * H)

    def forward(self, landmarks: torch.Tensor) -> torch.Tensor:
        per_point = self.per_point(landmarks)
        channels = []
        for runs in self.groups:
            pieces = [per_point[:, start:stop] for start, stop in runs]
            group = pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=1)  # (B, n, H*H)
            channels.append(group.amax(dim=1, keepdim=True))  # (B, 1, H*H)
        heatmap = channels[0] if len(channels) == 1 else torch.cat(channels, dim=1)  # (B, K, H*H)
        return heatmap.unflatten(2, (self.size, self.size))  # (B, K, H, H)

    def elementwise_ops(self, num_landmarks: int) -> int:
        """Arithmetic ops per image (sub, mul, clamp, exp, max): not MACs, reported beside them."""
        cells = self.size * self.size
        if self.kernel == "gaussian":
            return num_landmarks * cells * 7
        return num_landmarks * (self.size * 10 + cells * 2)
