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

    def hidden_layers(self) -> tuple[nn.Module, ...]:
        """The convs whose output channels live only inside the block (expansion and depthwise): pruning
        them leaves the block's interface to its neighbours and the residual sum unchanged."""
        return (self.conv[0][0], self.conv[1][0]) if len(self.conv) == 3 else ()

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

    Exported graphs (torch.export: PT2E, .tflite, .onnx, .pte) compute the same sum as two small
    depthwise convs: each of the k*C (column, channel) pairs of the map becomes a channel of its own,
    weighted by its column of the kernel (k x 1 taps), then each channel's k column sums are added
    with the BN folded in. XNNPACK has no fast int8 kernel for a depthwise conv of more than 25 taps:
    the 7x7 one took 368 us in int8 against 35 us in fp32, the two 7-tap convs 10 us (256 channels,
    LiteRT 2.3, 1 thread, Intel Xeon with VNNI). The (column, channel) order is the channels-last
    memory order of the map, so in a channels-last graph (.tflite) the regrouping is a plain reshape;
    grouping by rows (channel-major) cost three TRANSPOSEs per pool. Both accumulate in int32 like the
    conv; a MUL by the kernel and a MEAN (as fast) rounded every product to int8 and had 5x the conv's
    int8 error. The int8 partial sums still cost accuracy (PTQ of the demo model lost 2.5 % NME against
    1.3-1.6 % with the 7x7 conv), which is why recipes/ptq_int8.yaml keeps the landmark head's pool in
    float. Eager mode keeps the conv, so training, pruning and MAC counting see an ordinary depthwise
    Conv2d; QAT's exported training graph has the two convs, so it trains what is deployed.
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
        if not torch.compiler.is_exporting():
            return flatten(norm(conv(x)))
        # Exported in training mode too (QAT graphs), so QAT trains the graph that is deployed; the BN is
        # folded with its running statistics there, which then stay frozen (its scale and shift still train).
        batch, channels, rows, cols = x.shape  # the map is the kernel's size
        # parameter-only ops (reshape, BN fold) become constants in pt2e.fold_parameter_ops
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        shift = norm.bias - norm.running_mean * scale
        # the BN scale goes into the first conv (its int8 sums then have the output's per-channel magnitudes:
        # +2.5 % NME after PTQ on the demo model against +3.4 % with the scale in the second conv)
        kernel = (conv.weight[:, 0] * scale[:, None, None]).permute(2, 0, 1)  # (cols, C, rows): [x, c, y]
        kernel = kernel.reshape(cols * channels, 1, rows, 1)
        # (B, C, k, k) -> channels-last (B, k, k, C) -> channel x*C + c, rows kept: (B, k*C, k, 1)
        by_column = x.permute(0, 2, 3, 1).reshape(batch, rows, 1, cols * channels).permute(0, 3, 1, 2)
        column_sums = F.conv2d(by_column, kernel, groups=cols * channels)  # (B, k*C, 1, 1)
        column_sums = column_sums.reshape(batch, 1, cols, channels).permute(0, 3, 1, 2)  # (B, C, 1, k)
        ones = torch.ones_like(shift)[:, None, None, None].expand(channels, 1, 1, cols)
        out = F.conv2d(column_sums, ones, shift, groups=channels)  # (B, C, 1, 1)
        return flatten(out)


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
