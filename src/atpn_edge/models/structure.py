"""A channel-pruned model's layer sizes: recorded into a checkpoint, re-applied to a fresh model.

Pruning (compress/prune.py) changes channel counts that `model_options` cannot express; a pruned
checkpoint stores them under STRUCTURE_KEY, and `train.checkpoint.load_checkpoint` resizes a
freshly built model with `apply_structure` before loading the weights strictly. No torch-pruning,
no pickled modules.
"""

from __future__ import annotations

import torch
from torch import nn

from atpn_edge.errors import UserError

STRUCTURE_KEY = "pruned_structure"


def model_structure(model: nn.Module) -> dict[str, dict[str, int]]:
    """Channel counts of every prunable layer: what model_options cannot express after pruning."""
    structure: dict[str, dict[str, int]] = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            structure[name] = {"in_channels": m.in_channels, "out_channels": m.out_channels, "groups": m.groups}
        elif isinstance(m, nn.BatchNorm2d):
            structure[name] = {"num_features": m.num_features}
        elif isinstance(m, nn.Linear):
            structure[name] = {"in_features": m.in_features, "out_features": m.out_features}
    return structure


def apply_structure(model: nn.Module, structure: dict[str, dict[str, int]], source: str = "structure") -> nn.Module:
    """Resize a freshly built model's layers to `structure` (uninitialised weights: load a state dict next)."""
    modules = dict(model.named_modules())
    for name, counts in structure.items():
        m = modules.get(name)
        if m is None:
            raise UserError(f"{source}: pruned layer '{name}' does not exist in {getattr(model, 'name', 'the model')}")
        if isinstance(m, nn.Conv2d):
            m.in_channels, m.out_channels, m.groups = counts["in_channels"], counts["out_channels"], counts["groups"]
            shape = (m.out_channels, m.in_channels // m.groups, *m.kernel_size)
            m.weight = nn.Parameter(torch.empty(shape))
            if m.bias is not None:
                m.bias = nn.Parameter(torch.empty(m.out_channels))
        elif isinstance(m, nn.BatchNorm2d):
            n = counts["num_features"]
            m.num_features = n
            if m.affine:
                m.weight, m.bias = nn.Parameter(torch.ones(n)), nn.Parameter(torch.zeros(n))
            if m.track_running_stats:
                m.running_mean, m.running_var = torch.zeros(n), torch.ones(n)
        elif isinstance(m, nn.Linear):
            m.in_features, m.out_features = counts["in_features"], counts["out_features"]
            m.weight = nn.Parameter(torch.empty(m.out_features, m.in_features))
            if m.bias is not None:
                m.bias = nn.Parameter(torch.empty(m.out_features))
        else:
            raise UserError(f"{source}: layer '{name}' is a {type(m).__name__}, not a prunable layer")
    return model
