"""`build_model(name, **options)`: the one way to construct a model.

Every model carries `model.name` (the registry name) and `model.options` (the complete,
JSON-serialisable keyword options, so `build_model(model.name, **model.options)` rebuilds it;
checkpoints store both). Unknown names, unknown options and bad values raise UserError.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Callable

from torch import nn

from atpn_edge.errors import UserError
from atpn_edge.models.atpn import ATPN, ATPN_ARCHS, ATPN_VERSIONS, HEAD_NAMES
from atpn_edge.models.baselines import BASELINE_HEAD_NAMES, PFLD, MobileNetV2Regressor
from atpn_edge.models.heatmap import HEATMAP_CHANNEL_MODES, HEATMAP_KERNELS

logger = logging.getLogger(__name__)

_ATPN_DEFAULTS: dict[str, Any] = {
    "num_landmarks": 98,
    "width": 1.0,
    "shortcut": True,
    "heatmap_fusion": True,
    "heatmap_grad": False,
    "heads": list(HEAD_NAMES),
    "input_size": 112,
    "heatmap_channels": "parts",
    "heatmap_sigma": 1.0,
    "heatmap_kernel": "bump",
    "version": 2,
}
# Options added after checkpoints were already written: a stored options dict without one of
# these was built with the value here (not today's default).
_ATPN_LEGACY = {"heatmap_kernel": "gaussian", "version": 1}
_BASELINE_DEFAULTS: dict[str, Any] = {
    "num_landmarks": 98,
    "width": 1.0,
    "heads": list(BASELINE_HEAD_NAMES),
    "input_size": 112,
}

# name -> (default options, constructor taking the validated options)
_REGISTRY: dict[str, tuple[dict[str, Any], Callable[..., nn.Module]]] = {
    "atpn": (_ATPN_DEFAULTS, lambda version, **o: ATPN(ATPN_ARCHS["atpn", version], **o)),
    "atpn-lite": (_ATPN_DEFAULTS, lambda version, **o: ATPN(ATPN_ARCHS["atpn-lite", version], **o)),
    "pfld-0.25": ({**_BASELINE_DEFAULTS, "width": 0.25}, lambda **o: PFLD(**o)),
    "pfld-1.0": (_BASELINE_DEFAULTS, lambda **o: PFLD(**o)),
    "mobilenetv2": (_BASELINE_DEFAULTS, lambda **o: MobileNetV2Regressor(**o)),
}
MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def model_heads(name: str) -> tuple[str, ...]:
    """The heads a model family can have."""
    return HEAD_NAMES if name.startswith("atpn") else BASELINE_HEAD_NAMES


def _validate(name: str, options: dict[str, Any]) -> dict[str, Any]:
    where = f"model {name!r}"
    out = dict(options)
    if out["num_landmarks"] not in (98, 68):
        raise UserError(f"{where}: num_landmarks must be 98 or 68, got {out['num_landmarks']!r}")
    if isinstance(out["width"], bool) or not isinstance(out["width"], (int, float)) or not 0.1 <= out["width"] <= 4:
        raise UserError(f"{where}: width must be a number in [0.1, 4], got {out['width']!r}")
    out["width"] = float(out["width"])
    size = out["input_size"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 32 or size % 16:
        raise UserError(f"{where}: input_size must be a multiple of 16 and at least 32, got {size!r}")
    heads = out["heads"]
    if isinstance(heads, str):
        heads = [h.strip() for h in heads.split(",") if h.strip()]
    valid_heads = model_heads(name)
    if not heads or any(h not in valid_heads for h in heads) or len(set(heads)) != len(heads):
        raise UserError(f"{where}: heads must be a non-empty subset of {list(valid_heads)}, got {out['heads']!r}")
    out["heads"] = [h for h in valid_heads if h in heads]  # canonical order
    for switch in ("shortcut", "heatmap_fusion", "heatmap_grad"):
        if switch in out and not isinstance(out[switch], bool):
            raise UserError(f"{where}: {switch} must be true or false, got {out[switch]!r}")
    if "heatmap_channels" in out and out["heatmap_channels"] not in HEATMAP_CHANNEL_MODES:
        raise UserError(f"{where}: heatmap_channels must be one of {list(HEATMAP_CHANNEL_MODES)}, got {out['heatmap_channels']!r}")
    if "heatmap_kernel" in out and out["heatmap_kernel"] not in HEATMAP_KERNELS:
        raise UserError(f"{where}: heatmap_kernel must be one of {list(HEATMAP_KERNELS)}, got {out['heatmap_kernel']!r}")
    if "version" in out and (isinstance(out["version"], bool) or out["version"] not in ATPN_VERSIONS
                             or (name, out["version"]) not in ATPN_ARCHS):
        raise UserError(f"{where}: version must be one of {list(ATPN_VERSIONS)}, got {out['version']!r}")
    if "heatmap_sigma" in out:
        sigma = out["heatmap_sigma"]
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not 0.25 <= sigma <= 8:
            raise UserError(f"{where}: heatmap_sigma must be a number of heatmap cells in [0.25, 8], got {sigma!r}")
        out["heatmap_sigma"] = float(sigma)
    return out


def resolve_options(name: str, options: dict[str, Any], *, stored: bool = False) -> dict[str, Any]:
    """The complete, validated options `build_model(name, **options)` would use. `stored`: options
    read back from a checkpoint or a training log, where an option the file predates takes the value
    the file was made with (_ATPN_LEGACY), not today's default."""
    if name not in _REGISTRY:
        raise UserError(f"unknown model {name!r}; valid names: {', '.join(MODEL_NAMES)}")
    defaults, _ = _REGISTRY[name]
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise UserError(f"model {name!r}: unknown option(s) {unknown}; valid options: {', '.join(defaults)}")
    legacy = _ATPN_LEGACY if stored and name.startswith("atpn") else {}
    return _validate(name, {**copy.deepcopy(defaults), **legacy, **options})


def build_model(name: str, **options: Any) -> nn.Module:
    """Build a registered model: names in MODEL_NAMES, options as in the model's defaults."""
    resolved = resolve_options(name, options)
    model = _REGISTRY[name][1](**{**resolved, "heads": tuple(resolved["heads"])})
    model.name = name
    model.options = resolved
    return model


def rebuild_model(name: str, stored_options: dict[str, Any]) -> nn.Module:
    """build_model for options read back from a checkpoint or an artifact (see resolve_options)."""
    return build_model(name, **resolve_options(name, stored_options, stored=True))


def select_heads(model: nn.Module, heads: list[str] | tuple[str, ...]) -> nn.Module:
    """A copy of `model` with only `heads` (e.g. ["landmarks"] for an alignment-only export).

    The weights are shared by name, so the copy computes exactly what the full model computes
    for the heads it keeps.
    """
    subset = build_model(model.name, **{**model.options, "heads": list(heads)})
    missing = set(subset.state_dict()) - set(model.state_dict())
    if missing:
        raise UserError(f"model {model.name!r} with heads {list(model.options['heads'])} cannot provide heads "
                        f"{list(heads)} (missing weights: {sorted(missing)[:3]}...)")
    subset.load_state_dict(model.state_dict(), strict=False)
    subset.train(model.training)
    return subset.to(next(model.parameters()).device)
