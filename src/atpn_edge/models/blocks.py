"""Small building blocks shared by ATPN and the baselines (MobileNetV2 style).

Only Conv2d + BatchNorm2d (foldable) + ReLU6, residual adds and Linear: ops that torch.export,
litert-torch and the ONNX exporter handle and that quantize to int8. No in-place activations
(they upset some export passes) and no Python control flow on tensor values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a scaled channel count to a multiple of `divisor` (MobileNetV2's rule): never below
    `min_value` (default `divisor`) and never more than 10 % below `value`."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class ConvBNReLU(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> ReLU6 (or no activation when `activation=False`)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        padding: int | None = None,
        activation: bool = True,
    ) -> None:
        padding = (kernel_size - 1) // 2 if padding is None else padding
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if activation:
            layers.append(nn.ReLU6(inplace=False))
        super().__init__(*layers)
        self.out_channels = out_channels


class DepthwiseSeparable(nn.Sequential):
    """3x3 depthwise (stride s) -> 1x1 pointwise, each with BN + ReLU6."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__(
            ConvBNReLU(in_channels, in_channels, 3, stride, groups=in_channels),
            ConvBNReLU(in_channels, out_channels, 1),
        )
        self.out_channels = out_channels


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand (skipped when expand_ratio == 1) -> 3x3 depthwise -> 1x1
    linear projection; residual add when the shape is kept."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: float) -> None:
        super().__init__()
        assert stride in (1, 2)
        hidden = int(round(in_channels * expand_ratio))
        self.use_residual = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU(in_channels, hidden, 1))
        layers += [
            ConvBNReLU(hidden, hidden, 3, stride, groups=hidden),
            ConvBNReLU(hidden, out_channels, 1, activation=False),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_residual:  # decided at build time, not on tensor values
            return x + self.conv(x)
        return self.conv(x)


def inverted_residual_stage(
    in_channels: int, out_channels: int, num_blocks: int, first_stride: int, expand_ratio: float
) -> nn.Sequential:
    blocks = []
    for i in range(num_blocks):
        blocks.append(InvertedResidual(in_channels, out_channels, first_stride if i == 0 else 1, expand_ratio))
        in_channels = out_channels
    stage = nn.Sequential(*blocks)
    stage.out_channels = out_channels  # type: ignore[attr-defined]
    return stage


class GlobalDepthwiseConv(nn.Sequential):
    """MobileFaceNet's GDConv: a depthwise conv whose kernel covers the whole (k x k) map, + BN.

    (B, C, k, k) -> (B, C). Unlike global average pooling it learns a spatial weighting per
    channel, which keeps *where* a feature fired: what coordinate regression needs.

    Exported graphs (torch.export: PT2E, .tflite, .onnx) compute the same sum as a MUL by the
    (C, k, k) kernel (BN folded in) and a MEAN over the map: XNNPACK has no fast int8 kernel for a
    depthwise conv of more than 25 taps, and a 7x7 one took 360 us in int8 against 10 us for
    MUL + SUM (18 us fp32 conv; 256 channels, LiteRT 2.3, 1 thread, Intel Xeon with VNNI). Eager
    mode (and QAT's training graph) keeps the conv, so training, pruning and MAC counting see an
    ordinary depthwise Conv2d.
    """

    def __init__(self, channels: int, spatial_size: int) -> None:
        super().__init__(
            nn.Conv2d(channels, channels, spatial_size, groups=channels, bias=False),
            nn.BatchNorm2d(channels),
            nn.Flatten(1),
        )
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv, norm, flatten = self
        if self.training or not torch.compiler.is_exporting():  # QAT graphs keep the conv (and its BN fold)
            return flatten(norm(conv(x)))
        taps = conv.weight.shape[-1] * conv.weight.shape[-2]
        # BN folded into the kernel and a shift; export_for_quant constant-folds these parameter-only ops
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        kernel = conv.weight.squeeze(1) * (scale * taps)[:, None, None]  # (C, k, k)
        shift = norm.bias - norm.running_mean * scale  # (C,)
        return flatten(F.adaptive_avg_pool2d(x * kernel, 1)) + shift


def init_weights(model: nn.Module) -> None:
    """torchvision's MobileNetV2 initialisation: He-normal (fan-out) convs, unit BN, small FCs."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01)
            nn.init.zeros_(module.bias)
