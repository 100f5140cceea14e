"""ATPN (Alignment & Tracking & Pose Network), reconstructed from the paper's abstract.

Read top to bottom (shapes for the default: version 2, 112x112 input, width 1.0, 98 points):

    image (B, 3, 112, 112)
      backbone.stem              ->     (B, 16, 56, 56)   3x3 conv, stride 2
      backbone.stage1            -> f4  (B, 24, 28, 28)   3x3 conv, stride 2: shallow, boundary-like features
      backbone.stage2            -> f8  (B, 48, 14, 14)   2 inverted residuals: mid-level features
      backbone.stage3            -> f16 (B, 128, 7, 7)    3 inverted residuals: deep features
      shortcut(f4)               -> (B, 32, 7, 7)          two strided depthwise-separable convs
      landmark_head(cat[f16, shortcut])  -> landmarks (B, 98, 2)   1x1 conv, GDConv, FC + template bias
      heatmap(landmarks)         -> (B, 5, 14, 14)         cheap heatmap, per facial-part channel
      fused = cat[f8 * (1 + max_k heatmap), heatmap]       (B, 53, 14, 14): attention gate + geometry
      pose_head(fused, f16)      -> pose (B, 3) degrees
      tracking_head(fused, f16)  -> face_logit (B,), face_box (B, 4)

Switches: `shortcut` (drop the shortcut), `heatmap_fusion` (pose and tracking see f8 alone),
`heatmap_kernel` ("bump", int8-friendly; "gaussian", the first ATPN's, see models/heatmap.py),
`heatmap_grad` (whether pose/tracking losses reach the landmark head through the heatmap),
`version` (1: the first channel plan, kept for its checkpoints; 2: the int8-friendly one, see
ATPN_ARCHS), `width` (channel multiplier), `num_landmarks` (98 or 68), `heads` (which outputs exist; the
landmark head is still computed, not returned, when fusion needs it for pose or tracking).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from atpn_edge.models.blocks import (
    ConvBNReLU,
    DepthwiseSeparable,
    GlobalDepthwiseConv,
    init_weights,
    inverted_residual_stage,
    make_divisible,
)
from atpn_edge.models.heatmap import CheapHeatmap
from atpn_edge.models.template import landmark_template

HEAD_NAMES = ("landmarks", "pose", "tracking")
POSE_SCALE_DEGREES = 90.0  # pose = linear output * 90, so the regressor works in ~[-1, 1]
# Tracking box bias: where the face box lies in a crop made by the crop protocol (1.25 x box).
INITIAL_FACE_BOX = (0.1, 0.1, 0.9, 0.9)


@dataclass(frozen=True)
class ATPNArch:
    """Channel plan at width 1.0 (every count is scaled by `width`)."""

    stem_channels: int
    # (expand_ratio, out_channels, num_blocks, first_stride) for stages 1 (stride 4),
    # 2 (stride 8) and 3 (stride 16).
    stages: tuple[tuple[float, int, int, int], ...]
    shortcut_channels: int
    landmark_embed: int
    branch_channels: int  # fused mid-level features after the branch's strided conv
    branch_embed: int


# (name, version) -> channel plan. Version 1 is the first reconstruction. Version 2 (the default) is
# the same network laid out for int8 kernels: stage 1 is the dense strided conv alone (its inverted
# residual at 28x28 ran hardly faster in int8 than in fp32), stage 2 keeps two blocks at expansion 3,
# and the work moves to stage 3 at 7x7, 128 wide at expansion 6, where XNNPACK's int8 1x1 convs run
# 2.4x+ their fp32 speed. Shortcut, heads, heatmap and fusion are unchanged. Untrained graphs, LiteRT
# XNNPACK, 1 thread, one interleaved run (AMD EPYC with AVX512-VNNI): v1 fp32 0.745 / int8 0.386 ms
# (1.93x), v2 0.813 / 0.348 ms (2.34x), MobileNetV2 1.956 / 0.896 ms (2.18x). Same demo training:
# synthetic test NME 7.62 % (v1) and 7.67 % (v2), FR@0.1 16.4 / 15.2 %, pose MAE 3.37 / 3.34 deg.
ATPN_ARCHS = {
    ("atpn", 1): ATPNArch(
        stem_channels=16,
        stages=((4, 24, 2, 2), (4, 48, 3, 2), (4, 96, 3, 2)),
        shortcut_channels=32,
        landmark_embed=256,
        branch_channels=64,
        branch_embed=128,
    ),
    ("atpn", 2): ATPNArch(
        stem_channels=16,
        stages=((4, 24, 1, 2), (3, 48, 2, 2), (6, 128, 3, 2)),
        shortcut_channels=32,
        landmark_embed=256,
        branch_channels=64,
        branch_embed=128,
    ),
    ("atpn-lite", 1): ATPNArch(
        stem_channels=16,
        stages=((3, 16, 2, 2), (3, 32, 2, 2), (3, 64, 3, 2)),
        shortcut_channels=24,
        landmark_embed=160,
        branch_channels=32,
        branch_embed=64,
    ),
    ("atpn-lite", 2): ATPNArch(
        stem_channels=16,
        stages=((3, 16, 1, 2), (3, 32, 2, 2), (6, 80, 2, 2)),
        shortcut_channels=24,
        landmark_embed=160,
        branch_channels=32,
        branch_embed=64,
    ),
}
ATPN_VERSIONS = (1, 2)


class Backbone(nn.Module):
    """MobileNetV2-style: a stem conv (stride 2), then three stages of inverted residuals.

    Stage 1's downsampling block is a dense 3x3 conv (stride 2) instead of an inverted residual
    (as in EfficientNetV2's fused blocks): an expansion at 56x56 followed by a strided depthwise
    conv made up about 40 % of a CPU training step for 2 % of the MACs; the dense conv trains
    about 1.5x faster overall and quantizes as well.
    """

    def __init__(self, arch: ATPNArch, width: float) -> None:
        super().__init__()
        stem = make_divisible(arch.stem_channels * width)
        self.stem = ConvBNReLU(3, stem, 3, stride=2)  # (B, 16, 56, 56)
        stages = []
        channels = stem
        for index, (expand_ratio, out_channels, num_blocks, first_stride) in enumerate(arch.stages):
            out_channels = make_divisible(out_channels * width)
            if index == 0:
                stage = nn.Sequential(
                    ConvBNReLU(channels, out_channels, 3, stride=first_stride),
                    *inverted_residual_stage(out_channels, out_channels, num_blocks - 1, 1, expand_ratio),
                )
                stage.out_channels = out_channels  # type: ignore[attr-defined]
            else:
                stage = inverted_residual_stage(channels, out_channels, num_blocks, first_stride, expand_ratio)
            stages.append(stage)
            channels = out_channels
        self.stage1, self.stage2, self.stage3 = stages
        self.channels = tuple(stage.out_channels for stage in stages)  # (c4, c8, c16)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f4 = self.stage1(self.stem(x))  # (B, c4, S/4, S/4)
        f8 = self.stage2(f4)  # (B, c8, S/8, S/8)
        f16 = self.stage3(f8)  # (B, c16, S/16, S/16)
        return f4, f8, f16


class Shortcut(nn.Sequential):
    """Stride-4 features down to the deep stage's resolution (stride 16)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            DepthwiseSeparable(in_channels, out_channels, stride=2),
            DepthwiseSeparable(out_channels, out_channels, stride=2),
        )
        self.out_channels = out_channels


class LandmarkHead(nn.Module):
    """(B, C, k, k) -> (B, P, 2): 1x1 conv, global depthwise conv, FC whose bias is a mean face."""

    def __init__(self, in_channels: int, embed: int, spatial_size: int, num_landmarks: int) -> None:
        super().__init__()
        self.num_landmarks = num_landmarks
        self.expand = ConvBNReLU(in_channels, embed, 1)
        self.pool = GlobalDepthwiseConv(embed, spatial_size)
        self.regressor = nn.Linear(embed, 2 * num_landmarks)
        init_landmark_regressor(self.regressor, num_landmarks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.regressor(self.pool(self.expand(x))).unflatten(1, (self.num_landmarks, 2))


def init_landmark_regressor(regressor: nn.Linear, num_landmarks: int) -> None:
    """Small weights and a mean-face bias: the untrained model predicts the template."""
    nn.init.normal_(regressor.weight, std=0.001)
    set_regressor_template(regressor, landmark_template(num_landmarks))


def set_regressor_template(regressor: nn.Linear, template: np.ndarray) -> None:
    """Set a landmark regressor's bias to a (P, 2) mean shape in normalised crop coordinates."""
    template = np.asarray(template, dtype=np.float32).reshape(-1)
    assert template.shape == regressor.bias.shape, (template.shape, regressor.bias.shape)
    with torch.no_grad():
        regressor.bias.copy_(torch.from_numpy(template))


class FusionBranch(nn.Module):
    """Fused mid-level features (B, Cf, 2k, 2k) + deep features (B, Cd, k, k) -> (B, out_features)."""

    def __init__(
        self, fused_channels: int, deep_channels: int, branch_channels: int, embed: int, spatial_size: int,
        out_features: int,
    ) -> None:
        super().__init__()
        self.down = DepthwiseSeparable(fused_channels, branch_channels, stride=2)
        self.mix = ConvBNReLU(branch_channels + deep_channels, embed, 1)
        self.pool = GlobalDepthwiseConv(embed, spatial_size)
        self.fc = nn.Linear(embed, out_features)

    def forward(self, fused: torch.Tensor, deep: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.down(fused), deep], dim=1)
        return self.fc(self.pool(self.mix(x)))


class ATPN(nn.Module):
    def __init__(
        self,
        arch: ATPNArch,
        num_landmarks: int = 98,
        width: float = 1.0,
        shortcut: bool = True,
        heatmap_fusion: bool = True,
        heatmap_grad: bool = False,
        heads: tuple[str, ...] = HEAD_NAMES,
        input_size: int = 112,
        heatmap_channels: str = "parts",
        heatmap_sigma: float = 1.0,
        heatmap_kernel: str = "bump",
    ) -> None:
        super().__init__()
        assert input_size % 16 == 0 and set(heads) <= set(HEAD_NAMES) and heads
        self.num_landmarks = num_landmarks
        self.input_size = input_size
        self.heads = tuple(heads)
        self.heatmap_grad = heatmap_grad
        deep_size = input_size // 16
        needs_branches = "pose" in heads or "tracking" in heads
        self.uses_heatmap = heatmap_fusion and needs_branches
        needs_landmarks = "landmarks" in heads or self.uses_heatmap

        self.backbone = Backbone(arch, width)
        c4, c8, c16 = self.backbone.channels
        self.shortcut: Shortcut | None = None
        self.landmark_head: LandmarkHead | None = None
        if needs_landmarks:
            head_in = c16
            if shortcut:
                self.shortcut = Shortcut(c4, make_divisible(arch.shortcut_channels * width))
                head_in += self.shortcut.out_channels
            embed = make_divisible(arch.landmark_embed * width)
            self.landmark_head = LandmarkHead(head_in, embed, deep_size, num_landmarks)

        self.heatmap: CheapHeatmap | None = None
        fused_channels = c8
        if self.uses_heatmap:
            self.heatmap = CheapHeatmap(num_landmarks, input_size // 8, heatmap_sigma, heatmap_channels,
                                        heatmap_kernel)
            fused_channels += self.heatmap.out_channels
        branch_channels = make_divisible(arch.branch_channels * width)
        branch_embed = make_divisible(arch.branch_embed * width)
        self.pose_head: FusionBranch | None = None
        self.tracking_head: FusionBranch | None = None
        if "pose" in heads:
            self.pose_head = FusionBranch(fused_channels, c16, branch_channels, branch_embed, deep_size, 3)
        if "tracking" in heads:
            self.tracking_head = FusionBranch(fused_channels, c16, branch_channels, branch_embed, deep_size, 5)

        init_weights(self)
        if self.landmark_head is not None:
            init_landmark_regressor(self.landmark_head.regressor, num_landmarks)
        if self.tracking_head is not None:
            with torch.no_grad():  # start from "face, in the usual place"
                self.tracking_head.fc.bias.copy_(torch.tensor([0.0, *INITIAL_FACE_BOX]))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f4, f8, f16 = self.backbone(x)
        out: dict[str, torch.Tensor] = {}
        landmarks = None
        if self.landmark_head is not None:
            deep = f16 if self.shortcut is None else torch.cat([f16, self.shortcut(f4)], dim=1)
            landmarks = self.landmark_head(deep)  # (B, P, 2)
            if "landmarks" in self.heads:
                out["landmarks"] = landmarks
        if self.pose_head is None and self.tracking_head is None:
            return out
        fused = f8
        if self.heatmap is not None:
            assert landmarks is not None
            heatmap = self.heatmap(landmarks if self.heatmap_grad else landmarks.detach())  # (B, K, h, h)
            attention = 1.0 + heatmap.amax(dim=1, keepdim=True)  # (B, 1, h, h), in [1, 2]
            fused = torch.cat([f8 * attention, heatmap], dim=1)
        if self.pose_head is not None:
            out["pose"] = self.pose_head(fused, f16) * POSE_SCALE_DEGREES
        if self.tracking_head is not None:
            tracking = self.tracking_head(fused, f16)  # (B, 5)
            out["face_logit"] = tracking[:, 0]
            out["face_box"] = tracking[:, 1:5]
        return out
