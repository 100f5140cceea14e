"""Baselines trained by the same code as ATPN, for honest comparisons.

PFLD (Guo et al. 2019, "PFLD: A Practical Facial Landmark Detector"), 112x112 input:

    image (B, 3, 112, 112)
      backbone: conv 3x3/2 (64), depthwise 3x3 (64)            -> (B, 64, 56, 56)
                IR t2 c64 n5 /2                                -> f28 (B, 64, 28, 28)
                IR t2 c128 n1 /2, IR t4 c128 n6, IR t2 c16 n1  -> s1 (B, 16, 14, 14)
      landmark_head: s2 = conv 3x3/2 (32) on s1 (7x7); s3 = conv 7x7 valid (128) on s2 (1x1);
                cat[avgpool(s1), avgpool(s2), s3] (B, 176) -> FC -> (B, P, 2)
      pose_head (PFLD's auxiliary net, on f28): conv 3x3/2 (128), conv 3x3 (128), conv 3x3/2 (32),
                conv 7x7 valid (128), FC 32, FC 3 -> pose (B, 3) degrees
    Every channel count is scaled by `width` (pfld-0.25, pfld-1.0).

MobileNetV2 regression (Sandler et al. 2018): the standard ImageNet layout (width 1.0: 32 -> ...
-> 320 -> 1280), global average pooling, an FC to 2P landmarks and an FC to 3 pose angles.
"""

from __future__ import annotations

import torch
from torch import nn

from atpn_edge.models.atpn import POSE_SCALE_DEGREES, init_landmark_regressor
from atpn_edge.models.blocks import ConvBNReLU, init_weights, inverted_residual_stage, make_divisible

BASELINE_HEAD_NAMES = ("landmarks", "pose")


def _landmark_regressor(in_features: int, num_landmarks: int) -> nn.Linear:
    regressor = nn.Linear(in_features, 2 * num_landmarks)
    init_landmark_regressor(regressor, num_landmarks)
    return regressor


def _init(model: nn.Module, num_landmarks: int) -> None:
    init_weights(model)
    regressor = getattr(model.landmark_head, "regressor", model.landmark_head)
    if regressor is not None:
        init_landmark_regressor(regressor, num_landmarks)


class PFLDBackbone(nn.Module):
    def __init__(self, width: float) -> None:
        super().__init__()
        c64, c128, c16 = (make_divisible(c * width) for c in (64, 128, 16))
        self.stem = nn.Sequential(ConvBNReLU(3, c64, 3, stride=2), ConvBNReLU(c64, c64, 3, groups=c64))
        self.stage28 = inverted_residual_stage(c64, c64, 5, 2, 2)
        self.stage14 = nn.Sequential(
            inverted_residual_stage(c64, c128, 1, 2, 2),
            inverted_residual_stage(c128, c128, 6, 1, 4),
            inverted_residual_stage(c128, c16, 1, 1, 2),
        )
        self.channels = (c64, c16)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f28 = self.stage28(self.stem(x))
        return f28, self.stage14(f28)


class PFLDLandmarkHead(nn.Module):
    """Multi-scale FC head: (B, C16, 2k, 2k) -> (B, P, 2)."""

    def __init__(self, in_channels: int, width: float, deep_size: int, num_landmarks: int) -> None:
        super().__init__()
        c32, c128 = make_divisible(32 * width), make_divisible(128 * width)
        self.num_landmarks = num_landmarks
        self.conv_s2 = ConvBNReLU(in_channels, c32, 3, stride=2)
        self.conv_s3 = ConvBNReLU(c32, c128, deep_size, padding=0)
        self.regressor = _landmark_regressor(in_channels + c32 + c128, num_landmarks)

    def forward(self, s1: torch.Tensor) -> torch.Tensor:
        s2 = self.conv_s2(s1)
        s3 = self.conv_s3(s2)
        features = torch.cat([s1.mean(dim=(2, 3)), s2.mean(dim=(2, 3)), s3.flatten(1)], dim=1)
        return self.regressor(features).unflatten(1, (self.num_landmarks, 2))


class PFLDAuxiliaryPose(nn.Module):
    """PFLD's auxiliary network: (B, C64, 4k, 4k) -> (B, 3) degrees."""

    def __init__(self, in_channels: int, width: float, deep_size: int) -> None:
        super().__init__()
        c128, c32 = make_divisible(128 * width), make_divisible(32 * width)
        self.features = nn.Sequential(
            ConvBNReLU(in_channels, c128, 3, stride=2),
            ConvBNReLU(c128, c128, 3),
            ConvBNReLU(c128, c32, 3, stride=2),
            ConvBNReLU(c32, c128, deep_size, padding=0),
            nn.Flatten(1),
        )
        hidden = make_divisible(32 * width)
        self.fc = nn.Sequential(nn.Linear(c128, hidden), nn.ReLU6(inplace=False), nn.Linear(hidden, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x)) * POSE_SCALE_DEGREES


class PFLD(nn.Module):
    def __init__(
        self, num_landmarks: int = 98, width: float = 1.0, heads: tuple[str, ...] = BASELINE_HEAD_NAMES,
        input_size: int = 112,
    ) -> None:
        super().__init__()
        assert input_size % 16 == 0 and heads and set(heads) <= set(BASELINE_HEAD_NAMES)
        self.num_landmarks = num_landmarks
        self.input_size = input_size
        self.heads = tuple(heads)
        deep_size = input_size // 16
        self.backbone = PFLDBackbone(width)
        c64, c16 = self.backbone.channels
        self.landmark_head = PFLDLandmarkHead(c16, width, deep_size, num_landmarks) if "landmarks" in heads else None
        self.pose_head = PFLDAuxiliaryPose(c64, width, deep_size) if "pose" in heads else None
        _init(self, num_landmarks)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f28, s1 = self.backbone(x)
        out: dict[str, torch.Tensor] = {}
        if self.landmark_head is not None:
            out["landmarks"] = self.landmark_head(s1)
        if self.pose_head is not None:
            out["pose"] = self.pose_head(f28)
        return out


# MobileNetV2's ImageNet table: (expand_ratio, out_channels, num_blocks, first_stride).
MOBILENETV2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class MobileNetV2Backbone(nn.Module):
    def __init__(self, width: float) -> None:
        super().__init__()
        channels = make_divisible(32 * width)
        layers: list[nn.Module] = [ConvBNReLU(3, channels, 3, stride=2)]
        for expand_ratio, out_channels, num_blocks, first_stride in MOBILENETV2_STAGES:
            out_channels = make_divisible(out_channels * width)
            layers.append(inverted_residual_stage(channels, out_channels, num_blocks, first_stride, expand_ratio))
            channels = out_channels
        self.last_channels = make_divisible(1280 * max(1.0, width))
        layers.append(ConvBNReLU(channels, self.last_channels, 1))
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))  # (B, 1280)


class MobileNetV2Regressor(nn.Module):
    def __init__(
        self, num_landmarks: int = 98, width: float = 1.0, heads: tuple[str, ...] = BASELINE_HEAD_NAMES,
        input_size: int = 112,
    ) -> None:
        super().__init__()
        assert heads and set(heads) <= set(BASELINE_HEAD_NAMES)
        self.num_landmarks = num_landmarks
        self.input_size = input_size
        self.heads = tuple(heads)
        self.backbone = MobileNetV2Backbone(width)
        features = self.backbone.last_channels
        self.landmark_head = _landmark_regressor(features, num_landmarks) if "landmarks" in heads else None
        self.pose_head = nn.Linear(features, 3) if "pose" in heads else None
        _init(self, num_landmarks)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        pooled = self.backbone(x)
        out: dict[str, torch.Tensor] = {}
        if self.landmark_head is not None:
            out["landmarks"] = self.landmark_head(pooled).unflatten(1, (self.num_landmarks, 2))
        if self.pose_head is not None:
            out["pose"] = self.pose_head(pooled) * POSE_SCALE_DEGREES
        return out
