"""Parameters and MACs, in total and per part of a model.

What is counted (the convention of mobile papers such as MobileNetV2 and PFLD):
- params: every trainable and frozen `nn.Parameter` (BatchNorm's weight and bias included,
  buffers such as running statistics excluded).
- MACs: multiply-accumulates of `nn.Conv2d` and `nn.Linear` layers for ONE image, measured
  with forward hooks on a real forward pass (so any input size and pruned widths are right):
  conv = output elements x (in_channels / groups) x kernel area; linear = output elements x
  in_features. Not counted: bias adds, BatchNorm (folded into the conv at export), activations,
  residual adds, pooling, and the cheap heatmap's element-wise ops (reported separately by
  `model_summary` as `heatmap_elementwise_ops`). This equals half of the FLOPs that
  `torch.utils.flop_counter.FlopCounterMode` reports (it counts conv and matmul only).
Count the float model: a PT2E/quantized GraphModule has no Conv2d/Linear modules left.
"""

from __future__ import annotations

import torch
from torch import nn

from atpn_edge.errors import UserError


def _dummy_input(model: nn.Module, input_size: int | None) -> torch.Tensor:
    size = input_size or getattr(model, "input_size", 112)
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    return torch.zeros(1, 3, size, size, device=device)


def _macs_by_module(model: nn.Module, input_size: int | None) -> dict[str, int]:
    """{qualified module name: MACs} for every Conv2d / Linear, batch 1."""
    macs: dict[str, int] = {}
    handles = []

    def hook(name: str):
        def record(module: nn.Module, inputs, output: torch.Tensor) -> None:
            per_image = output.numel() // output.shape[0]
            if isinstance(module, nn.Conv2d):
                kernel_area = module.kernel_size[0] * module.kernel_size[1]
                macs[name] = macs.get(name, 0) + per_image * (module.in_channels // module.groups) * kernel_area
            else:
                macs[name] = macs.get(name, 0) + per_image * module.in_features

        return record

    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            handles.append(module.register_forward_hook(hook(name)))
    was_training = model.training
    x = _dummy_input(model, input_size)
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    except RuntimeError as e:
        built_for = getattr(model, "input_size", None)
        raise UserError(
            f"model {getattr(model, 'name', type(model).__name__)!r} (built for input_size={built_for}) cannot run "
            f"at {x.shape[-1]}x{x.shape[-1]}; build it with input_size={x.shape[-1]} ({str(e).splitlines()[0]})"
        ) from e
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return macs


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_params_and_macs(model: nn.Module, input_size: int | None = 112) -> tuple[int, int]:
    """(parameters, MACs for one image at input_size x input_size); None = the model's own size."""
    return count_params(model), sum(_macs_by_module(model, input_size).values())


def model_summary(model: nn.Module, input_size: int | None = None) -> dict:
    """Params and MACs in total and per part (the model's top-level children).

    ATPN's parts: backbone, shortcut, landmark_head, heatmap (no weights, no MACs: see
    heatmap_elementwise_ops), pose_head, tracking_head. PFLD: backbone, landmark_head (the
    multi-scale head), pose_head (the auxiliary net). MobileNetV2: backbone, landmark_head,
    pose_head. A part that the chosen heads/switches leave out is absent.
    """
    size = input_size or getattr(model, "input_size", 112)
    macs = _macs_by_module(model, size)
    parts: dict[str, dict[str, int]] = {}
    for part_name, part in model.named_children():
        part_macs = sum(v for k, v in macs.items() if k == part_name or k.startswith(part_name + "."))
        parts[part_name] = {"params": count_params(part), "macs": part_macs}
    summary = {
        "model": getattr(model, "name", type(model).__name__),
        "input_size": size,
        "params": count_params(model),
        "macs": sum(macs.values()),
        "parts": parts,
    }
    heatmap = getattr(model, "heatmap", None)
    if heatmap is not None:
        summary["heatmap_elementwise_ops"] = heatmap.elementwise_ops(model.num_landmarks)
    return summary
