"""PTQ and QAT steps through PT2E (atpn_edge.compress.pt2e), and the saved quantized artifact.

    quantized = ptq(float_model, calib_images, spec)                  # calibrate, convert
    quantized = qat(float_model, train_samples, step, loss_config, num_points=98, state_path=...)
    save_quantized(quantized, "out/ptq_int8.pt2")                     # torch.export.save + JSON sidecar
    graph = load_quantized("out/ptq_int8.pt2")                         # torch.export.load (no pickle)

Each returns a new converted GraphModule (int8 quantize/dequantize pairs, the "simulated" model);
`pt2e.QuantizedModel(graph)` evaluates it with the float model's named outputs and
`atpn_edge.export.export_model(graph, "tflite", "int8", path)` lowers it to an int8 TFLite graph (input conv float by default).
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from atpn_edge.compress import pt2e
from atpn_edge.compress.recipe import MixedPrecision, QATStep
from atpn_edge.errors import UserError
from atpn_edge.io import atomic_path, read_json_or_none, write_json

log = logging.getLogger(__name__)

ARTIFACT_FORMAT = "atpn-edge-pt2e-int8"


def quant_spec(per_channel: bool, observer: str, mixed: MixedPrecision, keep_modules: tuple[str, ...] = ()) -> pt2e.QuantSpec:
    return pt2e.QuantSpec(per_channel=per_channel, observer=observer,
                          skip_modules=tuple(dict.fromkeys(tuple(mixed.keep_float_modules) + tuple(keep_modules))),
                          skip_operators=tuple(mixed.keep_float_operators),
                          float_input_conv=mixed.keep_float_input_conv)


def calibration_batches(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, S, S, 3) crops or float (N, 3, S, S) normalised inputs -> float (N, 3, S, S)."""
    if isinstance(images, torch.Tensor):
        return images.float()
    images = np.asarray(images)
    if images.dtype == np.uint8:
        from atpn_edge.runtime.base import preprocess

        return torch.from_numpy(preprocess(images))
    return torch.from_numpy(images.astype(np.float32))


def ptq(model: nn.Module, calib_images, spec: pt2e.QuantSpec, progress: bool = True, batch_size: int = 32) -> torch.fx.GraphModule:
    """Post-training static int8: export, insert observers, run the calibration crops, convert.

    Calibration runs on a dynamic-batch export in batches (observers such as the histogram one cost
    about the same per call at any batch size: 256 crops one by one took minutes); the converted
    graph is then re-exported at batch 1, the shape export_model and the saved artifact use.
    """
    from atpn_edge.compress.sensitivity import export_dynamic

    x = calibration_batches(calib_images)
    if x.shape[0] == 0:
        raise UserError("PTQ needs at least one calibration image")
    float_model = copy.deepcopy(model).eval()
    prepared = pt2e.prepare_ptq(export_dynamic(float_model, x[:2]), x[:1], spec)
    with torch.no_grad():
        starts = range(0, x.shape[0], batch_size)
        for i in tqdm(starts, desc="calibrate", unit="batch", disable=not progress, leave=False):
            prepared(x[i : i + batch_size])
    return to_batch1(pt2e.convert(prepared))


def to_batch1(graph: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Re-export a (dynamic-batch) converted graph at batch 1, keeping its atpn_edge metadata."""
    info = pt2e.graph_info(graph)
    shape = tuple(info.get("input_shape") or (1, 3, 112, 112))
    static = torch.export.export(graph, (torch.zeros(1, *shape[1:]),), strict=False).module()
    static.meta["atpn_edge"] = dict(info)
    return static


def _qat_hook(step: QATStep):
    from torchao.quantization.pt2e import disable_observer, move_exported_model_to_eval, move_exported_model_to_train

    def hook(model: nn.Module, epoch: int) -> None:
        # Batch norm: batch statistics (train pattern) until freeze_bn_epoch, running statistics after.
        if epoch >= step.freeze_bn_epoch:
            move_exported_model_to_eval(model)
        else:
            move_exported_model_to_train(model)
        if epoch >= step.freeze_observers_epoch:
            model.apply(disable_observer)  # scales and zero points stay fixed; fake-quant stays on

    return hook


def qat(
    model: nn.Module,
    samples,
    step: QATStep,
    loss_config,
    *,
    num_points: int,
    spec: pt2e.QuantSpec | None = None,
    state_path: str | os.PathLike | None = None,
    progress: bool = True,
    teacher: nn.Module | None = None,
) -> torch.fx.GraphModule:
    """Quantization-aware training from a float model: prepare fake-quant, fine-tune, convert.

    Observers update until `freeze_observers_epoch`, batch-norm statistics until `freeze_bn_epoch`.
    With `state_path`, every finished epoch is saved and an interrupted run resumes (the prepared
    graph is rebuilt deterministically from the same float model, then its state is loaded).
    """
    from atpn_edge.compress.finetune import finetune

    spec = spec or pt2e.QuantSpec(per_channel=step.per_channel)
    example = torch.zeros(2, 3, int(model.options.get("input_size", 112)), int(model.options.get("input_size", 112)))
    float_model = copy.deepcopy(model)
    prepared = pt2e.prepare_qat(float_model, example, spec)
    names = tuple(pt2e.graph_info(prepared)["output_names"])
    finetune(prepared, samples, step.train, loss_config, num_points=num_points, state_path=state_path,
             output_names=names, set_train=lambda m: None, set_eval=lambda m: None, epoch_hook=_qat_hook(step),
             extra_state={"step": "qat", "spec": spec.to_dict(), "epochs": step.train.epochs},
             progress=progress, description="QAT", teacher=teacher)
    return pt2e.convert(prepared)


# --------------------------------------------------------------------------- the saved artifact
def sidecar_path(path: str | os.PathLike) -> Path:
    return Path(str(path) + ".json")


def save_quantized(graph: torch.fx.GraphModule, path: str | os.PathLike, extra: dict | None = None) -> Path:
    """Save a converted PT2E graph as a torch.export program (.pt2) plus a JSON sidecar.

    torch.export.load reads it back without unpickling code (the sidecar keeps the output names,
    model name/options and quantization spec that export_model and QuantizedModel need).
    """
    info = pt2e.graph_info(graph)
    shape = tuple(info.get("input_shape") or (1, 3, 112, 112))
    example = torch.zeros(1, *shape[1:])
    program = torch.export.export(graph, (example,), strict=False)
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file object: the temporary name does not end in .pt2
            torch.export.save(program, f)
    meta = {"format": ARTIFACT_FORMAT, "version": 1, **{k: v for k, v in info.items()}, **(extra or {})}
    meta["output_names"] = list(info.get("output_names", ()))
    meta["input_shape"] = list(shape)
    write_json(sidecar_path(path), meta)
    return path


def load_quantized(path: str | os.PathLike) -> torch.fx.GraphModule:
    """The GraphModule saved by save_quantized, with its atpn_edge metadata restored."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such quantized program")
    meta = read_json_or_none(sidecar_path(path))
    if not isinstance(meta, dict) or meta.get("format") != ARTIFACT_FORMAT:
        raise UserError(f"{path}: missing or foreign sidecar {sidecar_path(path).name} (expected format {ARTIFACT_FORMAT})")
    # The program's quantize/dequantize nodes are torchao's `quantized_decomposed` ops: register them
    # first, or deserialisation fails in a fresh process (nothing else has imported torchao yet).
    import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401

    try:
        program = torch.export.load(str(path))
    except Exception as e:  # a truncated or foreign file
        raise UserError(f"{path}: cannot be read as a torch.export program: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    graph = program.module()
    info = {k: meta[k] for k in ("output_names", "model_name", "model_options", "input_shape", "quant_spec", "mode") if k in meta}
    info["output_names"] = tuple(info["output_names"])
    info["input_shape"] = tuple(info["input_shape"])
    graph.meta["atpn_edge"] = info
    return graph
