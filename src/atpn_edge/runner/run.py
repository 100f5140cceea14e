"""Run a compression recipe end to end and write its accuracy-drop report next to the artifact.

    report = run_recipe("recipes/ptq_int8.yaml", "runs/demo/float/best.pt", "runs/demo/compress/ptq_int8")

Writes into out_dir: the compressed artifact (`model_int8.pt2` + `.pt2.json` for int8 PT2E,
`<name>.pt` for pruned float models), the deployed artifacts (`<name>.tflite`, `<name>.onnx`) with
their verification files, `report.json`, `report.md`, `report.png` and, for mixed precision,
`sensitivity.{json,md,png}`. Every accuracy number is measured on the same evaluation images and
says where it was measured (`measured_on`: pytorch, tflite or onnx).

The steps run in recipe order through STEPS, one function per step kind; each reads and updates
the small RunState (the model the next step starts from, the quantized graph, the controls).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from atpn_edge.compress.recipe import FinetuneStep, load_recipe
from atpn_edge.data.registry import real_faces_or_none
from atpn_edge.data.registry import DEFAULT_CACHE_DIR
from atpn_edge.errors import UserError
from atpn_edge.measurement import Row
from atpn_edge.runner.context import RunContext, calibration_images, eval_set
from atpn_edge.runner.deploy import export_and_measure
from atpn_edge.runner.report import float_reference, headline, write_report
from atpn_edge.runner.scoring import scored
from atpn_edge.runner.steps import keep_float, run_finetune, run_prune, run_unpruned_control

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RunState:
    model: nn.Module  # the model the next step starts from
    pre_quant: nn.Module | None = None  # the (pruned / fine-tuned) float model a quantization step started from
    float_control: nn.Module | None = None  # QAT's epochs without fake-quant (QatStep.float_control)
    unpruned_control: nn.Module | None = None  # the unpruned model given the same fine-tuning
    graph: torch.fx.GraphModule | None = None  # the quantized PT2E program
    graph_full_int8: torch.fx.GraphModule | None = None  # mixed precision: the same recipe with nothing kept float
    unpruned: nn.Module | None = None  # the model before the first prune step
    spec: Any = None  # the pt2e.QuantSpec of `graph`
    calib_images: np.ndarray | None = None


# --------------------------------------------------------------------------- one function per step kind
def teacher(state: RunState) -> nn.Module | None:
    """Whom train.distill learns from: the unpruned control trained as far as the student (it trains first at
    each step), else the model before the first prune step. The demo model at 7.7 % NME taught the pruned one
    worse (+19.7 % against the control) than labels alone (+18.0 %): the control had reached 6.6 %."""
    return state.unpruned_control if state.unpruned_control is not None else state.unpruned


def prune_step(ctx: RunContext, state: RunState, opts, index: int, report: dict) -> None:
    if state.unpruned is None:
        state.unpruned = copy.deepcopy(state.model).eval()
    if opts.unpruned_control:
        state.unpruned_control = run_unpruned_control(ctx, state.model, opts, index)
    state.model = run_prune(ctx, state.model, opts, index, ctx.resume, teacher=teacher(state))
    report["artifacts"]["pruned_checkpoint"] = str(ctx.out / f"step{index}_pruned.pt")


def finetune_step(ctx: RunContext, state: RunState, opts, index: int, report: dict) -> None:
    if state.unpruned_control is not None:  # first: it teaches this step. Controls learn from the labels alone.
        state.unpruned_control = run_finetune(ctx, state.unpruned_control, FinetuneStep(train=dataclasses.replace(
            opts.train, distill=0.0)), index, role="unpruned_control")
    state.model = run_finetune(ctx, state.model, opts, index, teacher=teacher(state))


def ptq_step(ctx: RunContext, state: RunState, opts, index: int, report: dict) -> None:
    from atpn_edge.compress.quantize import ptq, quant_spec

    keep = keep_float(ctx, state.model, opts.mixed_precision, opts.per_channel, opts.observer, report)
    state.spec = quant_spec(opts.per_channel, opts.observer, opts.mixed_precision, keep)
    state.calib_images = calibration_images(ctx, opts.calibration_samples, opts.calibration_faces_only,
                                            opts.calibration_augment)
    state.pre_quant = state.model
    state.graph = ptq(state.model, state.calib_images, state.spec, progress=ctx.progress)
    if state.spec.skip_modules or state.spec.skip_operators:  # what mixed precision buys: also the all-int8 model
        all_int8 = dataclasses.replace(opts.mixed_precision, keep_float_modules=(), keep_float_operators=())
        state.graph_full_int8 = ptq(state.model, state.calib_images, quant_spec(opts.per_channel, opts.observer, all_int8),
                                    progress=ctx.progress)


def qat_step(ctx: RunContext, state: RunState, opts, index: int, report: dict) -> None:
    from atpn_edge.compress.finetune import finetune
    from atpn_edge.compress.quantize import qat, quant_spec

    keep = keep_float(ctx, state.model, opts.mixed_precision, opts.per_channel, "histogram", report)
    state.spec = quant_spec(opts.per_channel, "histogram", opts.mixed_precision, keep)
    samples = ctx.train_samples(opts.train.train_samples)
    if opts.float_control:
        # the same epochs without fake-quant: separates what QAT's extra training buys from what int8 costs
        state.float_control = finetune(copy.deepcopy(state.model), samples, opts.train, ctx.loss_config,
                                       num_points=ctx.num_points, state_path=ctx.out / f"step{index}_float_control_state.pt",
                                       progress=ctx.progress, description="float control (QAT epochs, no quantization)")
    state.pre_quant = state.model
    state.graph = qat(state.model, samples, opts, ctx.loss_config, num_points=ctx.num_points, spec=state.spec,
                      state_path=ctx.out / f"step{index}_qat_state.pt", progress=ctx.progress, teacher=teacher(state))
    state.calib_images = calibration_images(ctx, 64)


def export_precision_step(ctx: RunContext, state: RunState, opts, index: int, report: dict) -> None:
    """fp16 / dynamic_int8: the model stays as it is; the exporters apply the precision (Recipe.precision)."""


STEPS = {"prune": prune_step, "finetune": finetune_step, "ptq": ptq_step, "qat": qat_step,
         "fp16": export_precision_step, "dynamic_int8": export_precision_step}


# --------------------------------------------------------------------------- the runner
def run_recipe(
    recipe_path: str | os.PathLike,
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    data: str = "synthetic",
    *,
    progress: bool = True,
    export: bool = True,
    eval_samples: int | None = None,
    cache_dir: str | None = None,
    resume: bool = True,
    threads: int | None = None,
) -> dict:
    """Apply a recipe's steps to a checkpoint, export, evaluate float vs compressed, write the report.

    Returns the report dict (also at out_dir/report.json). With resume (the default) finished steps
    are reused and interrupted fine-tuning (pruning, QAT) continues from its last finished epoch.
    """
    from atpn_edge.compress.prune import load_any_checkpoint

    started = time.perf_counter()
    recipe = load_recipe(recipe_path)
    out = Path(out_dir) if out_dir is not None else Path("runs/demo/compress") / recipe.name
    out.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(threads)
    float_model, ckpt = load_any_checkpoint(checkpoint)
    ctx = _context(recipe, out, data, ckpt, checkpoint, cache_dir, progress, resume)
    report: dict = {"recipe": recipe.to_dict(), "recipe_path": str(recipe_path), "checkpoint": str(checkpoint),
                    "data": data, "precision": recipe.precision, "artifacts": {}, "steps": [],
                    "float_reference": float_reference(ckpt, recipe.float_reference)}
    if report["float_reference"]["short"]:
        ref = report["float_reference"]
        log.warning("%s was trained on %s crops (%s epochs), fewer than the %s this recipe's numbers started from: its "
                    "vs-float numbers will look better than they are; compare against the control", checkpoint,
                    f"{ref['crops']:,}", ref["epochs"], f"{recipe.float_reference.crops:,}")

    state = RunState(model=float_model)
    for index, step in enumerate(recipe.steps):
        t0 = time.perf_counter()
        STEPS[step.kind](ctx, state, step.options, index, report)
        report["steps"].append({"kind": step.kind, "seconds": round(time.perf_counter() - t0, 1)})
        log.info("%s: step %d (%s) done in %.0f s", recipe.name, index, step.kind, time.perf_counter() - t0)
    _save_compressed(ctx, state, checkpoint, report)

    # ---- evaluation on the same images
    n_eval = eval_samples or recipe.evaluate.samples
    evaluation = eval_set(data, recipe.evaluate.split, n_eval, ctx.num_points, ctx.input_size, ctx.cache_dir)
    report["evaluation"] = {"split": recipe.evaluate.split, "n_images": len(evaluation), "data": data}
    sets = (evaluation, real_faces_or_none(ctx.num_points, ctx.input_size))
    acc, curves, counts = _score_variants(ctx, state, float_model, sets)
    (params0, macs0), (params1, macs1) = counts
    if export and recipe.evaluate.formats:
        export_and_measure(ctx, state, sets, acc, curves, report, params1, macs1, str(checkpoint))
    report["accuracy"] = {label: row.to_json() for label, row in acc.items()}
    report["params_macs"] = {"float": {"params": params0, "macs": macs0}, "compressed": {"params": params1, "macs": macs1},
                             "macs_reduction": 1 - macs1 / macs0, "params_reduction": 1 - params1 / params0,
                             "counter": "atpn_edge.models.count_params_and_macs (conv + linear MACs)"}
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["headline"] = headline(recipe.name, acc)
    write_report(report, out, curves)
    return report


def _context(recipe, out: Path, data: str, ckpt: dict, checkpoint, cache_dir, progress: bool, resume: bool) -> RunContext:
    from atpn_edge.train.config import TrainConfig, config_from_dict

    try:
        loss_config = config_from_dict(ckpt.get("train_config") or {}, source=f"{checkpoint} train_config")
    except UserError:
        loss_config = TrainConfig()
    meta = ckpt["meta"]
    return RunContext(recipe, out, data, int(meta["num_landmarks"]), int(meta["input_size"]), loss_config,
                      cache_dir or loss_config.cache_dir or DEFAULT_CACHE_DIR, progress,
                      train_pool=int((ckpt.get("train_config") or {}).get("train_samples", 0)) if data == "synthetic" else 0,
                      resume=resume)


def _save_compressed(ctx: RunContext, state: RunState, checkpoint, report: dict) -> None:
    """The compressed model as the recipe's artifact: the int8 .pt2 program, or the pruned / fine-tuned checkpoint."""
    from atpn_edge.compress.prune import save_pruned_checkpoint
    from atpn_edge.compress.quantize import save_quantized

    recipe = ctx.recipe
    if state.graph is not None:
        pt2_path = ctx.out / "model_int8.pt2"  # the name `make export-tflite` looks for (PTQ ?= .../model_int8.pt2)
        save_quantized(state.graph, pt2_path, extra={"recipe": recipe.name, "source_checkpoint": str(checkpoint)})
        report["artifacts"]["ptq_int8" if recipe.step("ptq") else "qat_int8"] = str(pt2_path)
    elif recipe.step("prune") or recipe.step("finetune"):
        path = ctx.out / f"{recipe.name}.pt"
        save_pruned_checkpoint(path, state.model, train_config=ctx.loss_config.to_dict(),
                               pruning={"recipe": recipe.name, "source_checkpoint": str(checkpoint)})
        report["artifacts"]["checkpoint"] = str(path)


def _score_variants(ctx: RunContext, state: RunState, float_model: nn.Module, sets: tuple):
    """Every PyTorch variant on the same images -> (accuracy rows, CED curves, ((params, MACs) float, compressed))."""
    from atpn_edge.compress import pt2e
    from atpn_edge.models import count_params_and_macs
    from atpn_edge.train.predict import torch_predict_fn

    counts0 = count_params_and_macs(float_model, ctx.input_size)
    counts1 = count_params_and_macs(state.model, ctx.input_size)
    params0, macs0 = counts0
    params1, macs1 = counts1
    acc: dict[str, Row] = {}
    curves: dict[str, np.ndarray] = {}

    def score(label: str, role: str, curve: str | None, predict_model, **fields) -> None:
        acc[label], nmes = scored(torch_predict_fn(predict_model), sets, label, role, "pytorch", acc.get("float"),
                                  ctx.progress, **fields)
        if curve:
            curves[curve] = nmes

    name = ctx.recipe.name
    score("float", "float", "float (pytorch)", float_model, params=params0, macs=macs0)
    if state.graph is not None:
        score(name, "compressed", f"{name} (pytorch)", pt2e.QuantizedModel(state.graph), params=params1, macs=macs1,
              simulated=True, kept_in_float=list(state.spec.skip_modules) + list(state.spec.skip_operators))
        if state.graph_full_int8 is not None:
            score(f"{name}_all_int8", "compressed", None, pt2e.QuantizedModel(state.graph_full_int8), params=params1,
                  macs=macs1, simulated=True, kept_in_float=[])
        if state.pre_quant is not None and state.pre_quant is not float_model:
            score(f"{name}_float_before_quant", "compressed", f"{name} float before quant (pytorch)", state.pre_quant,
                  params=params1, macs=macs1)
        if state.float_control is not None:
            score(f"{name}_float_control", "control", f"{name} float control (pytorch)", state.float_control,
                  params=params1, macs=macs1, note="float model trained for the QAT epochs without fake-quant")
    elif state.model is not float_model:
        score(name, "compressed", f"{name} (pytorch)", state.model, params=params1, macs=macs1)
    if state.unpruned_control is not None:
        score(f"{name}_unpruned_control", "control", f"{name} unpruned control (pytorch)", state.unpruned_control,
              params=params0, macs=macs0, note="unpruned float model given the same fine-tuning")
    return acc, curves, (counts0, counts1)
