"""A MobileNetV2-style stand-in for the export/quantization/runtime tests: an inverted residual with a
depthwise conv and a residual add, and a Linear head that returns the model contract's named outputs.
It converts in seconds, so those tests can afford many conversions."""

import torch
from torch import nn

ALL_OUTPUTS = ("landmarks", "pose", "face_logit", "face_box")


class TinyNet(nn.Module):
    def __init__(self, points: int = 5, outputs: tuple[str, ...] = ("landmarks", "pose", "face_logit"),
                 batchnorm: bool = True, pose_scale: float = 1.0):
        super().__init__()
        assert outputs and set(outputs) <= set(ALL_OUTPUTS)

        def conv(cin, cout, k, stride=1, groups=1, relu=True):
            layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=not batchnorm)]
            layers += [nn.BatchNorm2d(cout)] if batchnorm else []
            layers += [nn.ReLU()] if relu else []
            return layers

        self.points, self.outputs, self.pose_scale = points, tuple(outputs), pose_scale
        self.widths = {"landmarks": 2 * points, "pose": 3, "face_logit": 1, "face_box": 4}
        self.stem = nn.Sequential(*conv(3, 8, 3, stride=4))
        self.block = nn.Sequential(*conv(8, 16, 1), *conv(16, 16, 3, groups=16), *conv(16, 8, 1, relu=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(8, sum(self.widths[o] for o in self.outputs))
        self.name, self.options = "tiny", {"num_landmarks": points, "input_size": 112}

    def forward(self, x):
        f = self.stem(x)
        y = self.head(self.pool(f + self.block(f)).flatten(1))
        out, start = {}, 0
        for name in self.outputs:
            value = y[:, start : start + self.widths[name]]
            start += self.widths[name]
            if name == "landmarks":
                value = value.reshape(-1, self.points, 2)
            elif name == "pose":
                value = self.pose_scale * value
            elif name == "face_logit":
                value = value[:, 0]
            out[name] = value
        return out
