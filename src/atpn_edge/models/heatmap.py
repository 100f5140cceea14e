"""The cheap heatmap: rendered analytically from predicted landmarks, no learned weights.

    landmarks (B, P, 2) normalised crop coords  ->  heatmap (B, K, H, H), values in [0, 1]

Each landmark contributes exp(-d^2 / (2 sigma^2)) on an H x H grid of cell centres
((i + 0.5) / H, the same convention as the landmarks), so a landmark at a cell centre gives
exactly 1 there. Landmarks are reduced by max into K channels: one per facial-part group
(`channels="parts"`, K = 5: contour, brows, eyes, nose, mouth) or one for the whole face
(`channels="single"`). Only sub, mul, exp, strided slices, reduce-max and maximum are used:
TFLite builtins, ONNX ops, and all int8-friendly (the output range is fixed to [0, 1]).
"""

from __future__ import annotations

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
    def __init__(self, num_landmarks: int, size: int = 14, sigma: float = 1.0, channels: str = "parts") -> None:
        """`sigma` is in heatmap cells (1.0 = one cell = 1/size of the crop)."""
        super().__init__()
        assert channels in HEATMAP_CHANNEL_MODES
        self.size = size
        self.groups = heatmap_groups(num_landmarks, channels)
        self.out_channels = len(self.groups)
        centres = (torch.arange(size, dtype=torch.float32) + 0.5) / size
        grid_y, grid_x = torch.meshgrid(centres, centres, indexing="ij")
        # (1, 1, H*H): broadcast against (B, P, 1) landmark coordinates.
        self.register_buffer("grid_x", grid_x.reshape(1, 1, size * size), persistent=False)
        self.register_buffer("grid_y", grid_y.reshape(1, 1, size * size), persistent=False)
        sigma_normalised = sigma / size
        self.neg_inv_two_sigma_sq = -1.0 / (2.0 * sigma_normalised**2)

    def forward(self, landmarks: torch.Tensor) -> torch.Tensor:
        dx = self.grid_x - landmarks[:, :, 0:1]  # (B, P, H*H)
        dy = self.grid_y - landmarks[:, :, 1:2]
        per_point = torch.exp((dx * dx + dy * dy) * self.neg_inv_two_sigma_sq)  # (B, P, H*H)
        channels = []
        for runs in self.groups:
            channel = per_point[:, runs[0][0] : runs[0][1]].amax(dim=1, keepdim=True)  # (B, 1, H*H)
            for start, stop in runs[1:]:
                channel = torch.maximum(channel, per_point[:, start:stop].amax(dim=1, keepdim=True))
            channels.append(channel)
        heatmap = channels[0] if len(channels) == 1 else torch.cat(channels, dim=1)  # (B, K, H*H)
        return heatmap.unflatten(2, (self.size, self.size))  # (B, K, H, H)

    def elementwise_ops(self, num_landmarks: int) -> int:
        """Arithmetic ops per image (sub, mul, add, exp, max): not MACs, reported beside them."""
        return num_landmarks * self.size * self.size * 7
