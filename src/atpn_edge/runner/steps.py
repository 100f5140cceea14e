"""The helpers of the recipe steps: iterative pruning, fine-tuning, the unpruned control, mixed precision."""

from __future__ import annotations

import copy
import dataclasses
import logging

import numpy as np

from atpn_edge.compress.recipe import FinetuneStep, PruneStep
from atpn_edge.io import read_json_or_none
from atpn_edge.runner.context import RunContext, calibration_images, eval_set, fingerprint, weights_sum

log = logging.getLogger(__name__)


SENSITIVITY_CROPS = 200  # validation crops that rank the blocks for `allocation: sensitivity`


def _block_weights(ctx: RunContext, model, step: PruneStep) -> list[float]:
    from atpn_edge.compress.prune import block_sensitivity
    from atpn_edge.evaluate import evaluate
    from atpn_edge.train.predict import torch_predict_fn

    crops = eval_set(ctx.data, "val", SENSITIVITY_CROPS, ctx.num_points, ctx.input_size, ctx.cache_dir)
    return block_sensitivity(model, lambda m: evaluate(torch_predict_fn(m), crops, progress=False)[0].nme,
                             importance=step.importance, round_to=step.round_to, input_size=ctx.input_size)


def run_prune(ctx: RunContext, model, step: PruneStep, index: int, resume: bool, teacher=None):
    """Iterative pruning (equal MAC shares per step) with recovery fine-tuning, then final fine-tuning;
    with step.train.distill > 0 the fine-tuning also learns `teacher`'s outputs (the unpruned model)."""
    from atpn_edge.compress.finetune import finetune
    from atpn_edge.compress.prune import load_any_checkpoint, prune_channels, save_pruned_checkpoint
    from atpn_edge.models import count_params_and_macs

    final = ctx.out / f"step{index}_pruned.pt"
    # the control is trained beside the pruned model and does not change it
    key = fingerprint(dataclasses.asdict(dataclasses.replace(step, unpruned_control=False)), model.name, model.options,
                       weights_sum(model), weights_sum(teacher) if teacher is not None and step.train.distill else None)
    if resume and final.is_file():
        pruned, ckpt = load_any_checkpoint(final)
        if ckpt.get("pruning", {}).get("key") == key:
            log.info("pruning step already finished: %s", final)
            return pruned
    base_macs = count_params_and_macs(model, ctx.input_size)[1]
    samples = ctx.train_samples(step.train.train_samples)

    def taylor_grad(m):
        from atpn_edge.compress.finetune import training_loader
        from atpn_edge.train.losses import multitask_loss

        batch = next(iter(training_loader(samples, ctx.num_points, step.train, 0)))
        m.train()
        loss, _ = multitask_loss(m(batch["image"]), batch, ctx.loss_config)
        loss.backward()
        m.eval()

    block_weights = _block_weights(ctx, model, step) if step.allocation == "sensitivity" else None
    current = model
    start = 1
    for k in range(step.iterative_steps, 0, -1):  # resume from the last finished pruning iteration
        path = ctx.out / f"step{index}_prune_iter{k}.pt"
        if resume and path.is_file():
            candidate, ckpt = load_any_checkpoint(path)
            if ckpt.get("pruning", {}).get("key") == key:
                current, start = candidate, k + 1
                log.info("resuming pruning after iteration %d (%s)", k, path)
                break
    for k in range(start, step.iterative_steps + 1):
        target = int(base_macs * (1 - step.macs_reduction * k / step.iterative_steps))
        current = prune_channels(current, target, importance=step.importance, round_to=step.round_to, scope=step.scope,
                                 grad_fn=taylor_grad if step.importance == "taylor" else None, input_size=ctx.input_size,
                                 block_weights=block_weights)
        last = k == step.iterative_steps
        params = step.train if last else dataclasses.replace(step.train, epochs=step.epochs_between_steps)
        state = ctx.out / f"step{index}_prune_iter{k}_finetune_state.pt"
        current = finetune(current, samples, params, ctx.loss_config,
                           num_points=ctx.num_points, state_path=state,
                           extra_state={"key": key, "iteration": k}, progress=ctx.progress,
                           description=f"prune {k}/{step.iterative_steps} finetune", teacher=teacher)
        macs = count_params_and_macs(current, ctx.input_size)[1]
        info = {"key": key, "iteration": k, "macs": macs, "base_macs": base_macs, "step": dataclasses.asdict(step)}
        save_pruned_checkpoint(final if last else ctx.out / f"step{index}_prune_iter{k}.pt", current,
                               train_config=ctx.loss_config.to_dict(), pruning=info)
        if state.is_file():
            state.unlink()
    for k in range(1, step.iterative_steps):
        (ctx.out / f"step{index}_prune_iter{k}.pt").unlink(missing_ok=True)
    return current


def run_finetune(ctx: RunContext, model, step, index: int, role: str = "finetune", teacher=None):
    from atpn_edge.compress.finetune import finetune

    samples = ctx.train_samples(step.train.train_samples)
    key = fingerprint(dataclasses.asdict(step), weights_sum(model), len(samples),
                      weights_sum(teacher) if teacher is not None and step.train.distill else None)
    # a copy: the float reference model stays untouched
    return finetune(copy.deepcopy(model), samples, step.train, ctx.loss_config, num_points=ctx.num_points,
                    state_path=ctx.out / f"step{index}_{role}_state.pt", extra_state={"key": key},
                    progress=ctx.progress, description=role.replace("_", " "), teacher=teacher)


def run_unpruned_control(ctx: RunContext, model, step: PruneStep, index: int):
    """The prune step's training (its recovery and final fine-tuning segments) given to the unpruned model, on
    the labels alone: with or without distillation, every pruning lever is measured against this one control."""
    segments = [dataclasses.replace(step.train, epochs=step.epochs_between_steps)] * (step.iterative_steps - 1) + [step.train]
    control = model
    for k, params in enumerate(segments, 1):
        if params.epochs:
            control = run_finetune(ctx, control, FinetuneStep(train=_labels_only(params)), index,
                                   role=f"unpruned_control_{k}")
    return control


def _labels_only(params):
    return dataclasses.replace(params, distill=0.0)


def keep_float(ctx: RunContext, model, mixed, per_channel: bool, observer: str, report: dict) -> tuple[str, ...]:
    """Modules kept in float: the named ones plus the K most sensitive units (sensitivity pass)."""
    from atpn_edge.compress import pt2e
    from atpn_edge.compress.quantize import calibration_batches
    from atpn_edge.compress.sensitivity import sensitivity, write_sensitivity

    keep = tuple(mixed.keep_float_modules)
    if mixed.keep_float_top_k == 0 and not mixed.sensitivity_analysis:
        return keep
    base_spec = pt2e.QuantSpec(per_channel=per_channel, observer=observer, skip_operators=tuple(mixed.keep_float_operators),
                               float_input_conv=mixed.keep_float_input_conv)
    # the pass costs two PTQ runs per unit: a finished one for the same weights, spec and data is reused
    key = fingerprint(base_spec.to_dict(), mixed.sensitivity_samples, ctx.data,
                       weights_sum(model))
    result = read_json_or_none(ctx.out / "sensitivity.json")
    if result is not None and result.get("key") == key:
        log.info("sensitivity analysis already finished: %s", ctx.out / "sensitivity.json")
    else:
        calib = calibration_batches(calibration_images(ctx, 64))
        val = eval_set(ctx.data, "val", mixed.sensitivity_samples, ctx.num_points, ctx.input_size, ctx.cache_dir)
        val = [val[i] for i in range(len(val)) if val[i].landmarks is not None]
        images = calibration_batches(np.stack([s.image for s in val]))
        gt = np.stack([s.landmarks for s in val])
        result = {**sensitivity(model, calib, images, gt, base_spec, progress=ctx.progress), "key": key}
    paths = write_sensitivity(result, ctx.out / "sensitivity")
    chosen = tuple(r["unit"] for r in result["rows"][: mixed.keep_float_top_k])
    report["sensitivity"] = {"table": str(paths["md"]), "chart": str(paths["png"]), "json": str(paths["json"]),
                             "split": "val", "n_images": result["n_images"], "top": result["rows"][:10],
                             "kept_in_float": list(chosen)}
    return tuple(dict.fromkeys(keep + chosen))
