"""Structured channel pruning with torch-pruning's dependency graph, and pruned checkpoints.

    pruned = prune_channels(model, target_macs=0.5 * macs, importance="magnitude")   # a new model
    save_pruned_checkpoint("out/pruned.pt", pruned, ...)
    model, checkpoint = load_pruned_checkpoint("out/pruned.pt")

Output layers (every nn.Linear: the landmark regressor and the pose/tracking FCs) are ignored, so
output shapes never change (the heatmap keeps its P landmarks); DepGraph keeps residual adds,
depthwise convs and the concatenations consistent. The channel ratio is searched (bisection on
copies) so that the pruned model has at most `target_macs` MACs.

Pruned checkpoints: the architecture changed, so `model_options` alone cannot rebuild it. A pruned
checkpoint is an ordinary atpn-edge checkpoint plus `pruned_structure`: for every Conv2d, BatchNorm2d
and Linear its channel counts (and conv groups). Loading builds a fresh model from model_name and
model_options, resizes those layers to the stored counts (a structural edit that needs no
torch-pruning and no pickled modules) and loads the weights strictly. `load_any_checkpoint` reads
both kinds.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable

import torch
from torch import nn

from atpn_edge.errors import UserError
from atpn_edge.models.structure import STRUCTURE_KEY, model_structure

log = logging.getLogger(__name__)



def output_layers(model: nn.Module) -> list[nn.Module]:
    """Layers whose output widths are model outputs: never pruned."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def _blocks(model: nn.Module) -> list[nn.Module]:
    """The inverted residuals with expanded channels, in model order (what `block_weights` index)."""
    from atpn_edge.models.blocks import InvertedResidual

    return [m for m in model.modules() if isinstance(m, InvertedResidual) and m.hidden_layers()]


def hidden_layers(model: nn.Module) -> list[nn.Module]:
    """Layers whose channels are private to their block: the inverted residuals' expansions
    (InvertedResidual.hidden_layers)."""
    return [layer for block in _blocks(model) for layer in block.hidden_layers()]


def ignored_layers(model: nn.Module, scope: str) -> list[nn.Module]:
    """scope "all": every layer but the outputs may lose channels (one ratio for all); "hidden": only the
    inverted residuals' expanded channels, so the stem, the features passed between blocks, the shortcut,
    the fusion and the heads keep their width."""
    if scope == "all":
        return output_layers(model)
    if scope != "hidden":
        raise ValueError(f"unknown pruning scope {scope!r}")
    hidden = {id(m) for m in hidden_layers(model)}
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and id(m) not in hidden]


def _importance(name: str):
    import torch_pruning as tp

    if name == "magnitude":
        return tp.importance.GroupMagnitudeImportance(p=2)
    if name == "taylor":
        return tp.importance.GroupTaylorImportance()
    if name == "bn_scale":
        return tp.importance.BNScaleImportance()
    raise ValueError(f"unknown importance {name!r}")


def _output_shapes(model: nn.Module, example: torch.Tensor) -> dict[str, tuple]:
    with torch.no_grad():
        return {k: tuple(v.shape) for k, v in model.eval()(example).items()}


MAX_BLOCK_RATIO = 0.9  # sensitivity allocation: no block loses more of its expanded channels than this


def _prune_once(model: nn.Module, example: torch.Tensor, ratio: float, importance: str, round_to: int,
                grad_fn: Callable[[nn.Module], None] | None, scope: str = "all",
                block_weights: list[float] | None = None) -> nn.Module:
    import torch_pruning as tp

    model = copy.deepcopy(model).eval()
    per_block = None if block_weights is None else {
        block: min(MAX_BLOCK_RATIO, ratio * weight) for block, weight in zip(_blocks(model), block_weights)}
    pruner = tp.pruner.MetaPruner(model, example, importance=_importance(importance), pruning_ratio=ratio,
                                  pruning_ratio_dict=per_block, ignored_layers=ignored_layers(model, scope),
                                  round_to=round_to, iterative_steps=1)
    if importance == "taylor":
        if grad_fn is None:
            raise ValueError("taylor importance needs grad_fn (a callable that runs loss.backward())")
        model.zero_grad()
        grad_fn(model)
    pruner.step()
    model.zero_grad(set_to_none=True)
    return model


def prune_channels(
    model: nn.Module,
    target_macs: int,
    *,
    importance: str = "magnitude",
    round_to: int = 4,
    grad_fn: Callable[[nn.Module], None] | None = None,
    input_size: int | None = None,
    scope: str = "all",
    block_weights: list[float] | None = None,
) -> nn.Module:
    """A new model pruned structurally to at most `target_macs` MACs (searched channel ratio; `scope`: which
    channels may go, see ignored_layers; `block_weights`: each inverted residual's ratio is the searched one
    times its weight, see block_sensitivity)."""
    from atpn_edge.models import count_params_and_macs

    size = input_size or int(model.options.get("input_size", 112))
    example = torch.zeros(1, 3, size, size)
    shapes = _output_shapes(model, example)
    _, macs = count_params_and_macs(model, size)
    if target_macs >= macs:
        return copy.deepcopy(model)
    low, high, best = 0.0, 0.95, None
    for _ in range(9):  # bisection on the per-layer channel ratio
        mid = (low + high) / 2
        candidate = _prune_once(model, example, mid, importance, round_to, grad_fn, scope, block_weights)
        if count_params_and_macs(candidate, size)[1] <= target_macs:
            best, high = candidate, mid
        else:
            low = mid
    if best is None:
        raise UserError(f"cannot prune {getattr(model, 'name', 'the model')} to {target_macs} MACs (from {macs})")
    pruned_shapes = _output_shapes(best, example)
    assert pruned_shapes == shapes, f"pruning changed output shapes {shapes} -> {pruned_shapes}"
    best.name, best.options = model.name, dict(model.options)
    log.info("pruned %s at channel ratio %.3f: %d -> %d MACs", model.name, high, macs, count_params_and_macs(best, size)[1])
    return best


def block_sensitivity(model: nn.Module, score: Callable[[nn.Module], float], *, probe_ratio: float = 0.5,
                      importance: str = "magnitude", round_to: int = 4, input_size: int | None = None) -> list[float]:
    """Per-block weights for prune_channels: each inverted residual alone loses `probe_ratio` of its expanded
    channels (no fine-tuning); its cost is the rise of `score` (lower is better, e.g. validation NME) per MAC
    removed. Weight = sqrt(mean cost / cost), scaled to mean 1: cheap blocks lose more, costly ones less."""
    from atpn_edge.models import count_params_and_macs

    size = input_size or int(model.options.get("input_size", 112))
    example = torch.zeros(1, 3, size, size)
    base_score, base_macs = score(model), count_params_and_macs(model, size)[1]
    n = len(_blocks(model))
    costs = []
    for i in range(n):
        weights = [0.0] * n
        weights[i] = 1.0
        probe = _prune_once(model, example, probe_ratio, importance, round_to, None, "hidden", weights)
        saved = base_macs - count_params_and_macs(probe, size)[1]
        costs.append(max(score(probe) - base_score, 1e-6) / max(saved, 1))
    mean_cost = sum(costs) / n
    raw = [(mean_cost / c) ** 0.5 for c in costs]
    weights = [w * n / sum(raw) for w in raw]
    log.info("block sensitivity (score rise per M MACs): %s -> weights %s",
             ", ".join(f"{c * 1e6:.4f}" for c in costs), ", ".join(f"{w:.2f}" for w in weights))
    return weights


# --------------------------------------------------------------------------- pruned checkpoints
def save_pruned_checkpoint(path: str | os.PathLike, model: nn.Module, *, metrics: dict | None = None,
                           train_config: dict | None = None, pruning: dict | None = None) -> None:
    """An atpn-edge checkpoint (atomic write) that also stores the pruned channel counts."""
    from atpn_edge.train.checkpoint import save_checkpoint

    save_checkpoint(path, model, metrics=metrics, train_config=train_config,
                    extra={STRUCTURE_KEY: model_structure(model), "pruning": pruning or {}})


def load_any_checkpoint(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """A float or pruned checkpoint -> (model in eval mode, checkpoint dict); `load_checkpoint`
    applies the pruned structure itself, so every command reads pruned checkpoints."""
    from atpn_edge.train.checkpoint import load_checkpoint

    return load_checkpoint(path)


load_pruned_checkpoint = load_any_checkpoint
