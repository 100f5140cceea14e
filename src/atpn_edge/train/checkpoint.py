"""Checkpoints that describe themselves (torchvision weights-enum style).

A checkpoint is a plain dict saved with torch.save and read back with weights_only=True:
    format            "atpn-edge-checkpoint"
    version           1
    model_name        registry name for build_model
    model_options     the options that rebuild the architecture
    state_dict        weights
    meta              params, macs, input_size, landmark_scheme, preprocessing, metrics,
                      atpn_edge / torch versions, created (UTC ISO time)
    train_config      the full training config (dict), for reproducing the run
    train_state       optional: epoch, optimizer, scheduler, RNG states (for --resume)
"""

from __future__ import annotations

import datetime
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import torch

import atpn_edge
from atpn_edge.errors import UserError
from atpn_edge.io import atomic_path
from atpn_edge.models.structure import STRUCTURE_KEY, apply_structure
from atpn_edge.runtime.base import PREPROCESSING

log = logging.getLogger(__name__)

FORMAT = "atpn-edge-checkpoint"
VERSION = 1


def describe(model: torch.nn.Module, metrics: dict | None = None) -> dict[str, Any]:
    from atpn_edge.data.schemes import scheme_for
    from atpn_edge.models import count_params_and_macs

    input_size = int(model.options.get("input_size", PREPROCESSING["input_size"]))
    params, macs = count_params_and_macs(model, input_size)
    num_landmarks = int(model.options.get("num_landmarks", 98))
    return {
        "params": params,
        "macs": macs,
        "input_size": input_size,
        "landmark_scheme": scheme_for(num_landmarks).name,
        "num_landmarks": num_landmarks,
        "preprocessing": dict(PREPROCESSING, input_size=input_size),
        "metrics": metrics or {},
        "atpn_edge_version": atpn_edge.__version__,
        "torch_version": str(torch.__version__),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    *,
    metrics: dict | None = None,
    train_config: dict | None = None,
    train_state: dict | None = None,
    extra: dict | None = None,
) -> None:
    """Write atomically: a crash mid-write never leaves a broken file under `path`.

    `extra` adds top-level keys (e.g. the channel counts of a pruned model)."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    checkpoint = {
        "format": FORMAT,
        "version": VERSION,
        "model_name": model.name,
        "model_options": dict(model.options),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": describe(model, metrics),
        "train_config": train_config or {},
    }
    if train_state is not None:
        checkpoint["train_state"] = train_state
    checkpoint.update(extra or {})
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load and validate the dict; every failure is one line naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint file")
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path}: not a PyTorch checkpoint (expected a torch.save zip archive)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt archive, or objects that weights_only refuses to unpickle
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path}: cannot be read as a safe (weights-only) checkpoint: {first_line}") from e
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise UserError(f"{path}: not an atpn-edge checkpoint (no '{FORMAT}' format tag)")
    if checkpoint.get("version") != VERSION:
        raise UserError(f"{path}: checkpoint version {checkpoint.get('version')} is not supported (expected {VERSION})")
    for key in ("model_name", "model_options", "state_dict", "meta"):
        if key not in checkpoint:
            raise UserError(f"{path}: checkpoint is missing '{key}'")
    return checkpoint


def load_checkpoint(path: str | os.PathLike, expect_model: str | None = None) -> tuple[torch.nn.Module, dict]:
    """Rebuild the model a checkpoint describes and load its weights (model in eval mode)."""
    from atpn_edge.models import rebuild_model

    checkpoint = read_checkpoint(path)
    name = checkpoint["model_name"]
    if expect_model is not None and name != expect_model:
        raise UserError(f"{path}: checkpoint holds model '{name}', expected '{expect_model}'")
    try:
        model = rebuild_model(name, checkpoint["model_options"])
    except (UserError, TypeError, ValueError) as e:
        raise UserError(f"{path}: cannot rebuild model '{name}': {e}") from e
    if STRUCTURE_KEY in checkpoint:  # channel-pruned: resize the fresh model's layers first
        apply_structure(model, checkpoint[STRUCTURE_KEY], source=str(path))
    load_weights(model, checkpoint["state_dict"], source=str(path))
    model.eval()
    return model, checkpoint


def load_weights(model: torch.nn.Module, state_dict: dict, source: str) -> None:
    """Strict load with a one-line error that says how the architectures differ."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [k for k in own if k in state_dict and own[k].shape != state_dict[k].shape]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if mismatched:
            k = mismatched[0]
            parts.append(
                f"{len(mismatched)} with other shapes (e.g. {k}: {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)})"
            )
        raise UserError(f"{source}: weights do not match the {getattr(model, 'name', 'model')} architecture: " + ", ".join(parts))
    model.load_state_dict(state_dict, strict=True)
