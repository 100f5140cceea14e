"""Run a compression recipe end to end and write its accuracy-drop report next to the artifact.

    report = run_recipe("recipes/ptq_int8.yaml", "runs/demo/float/best.pt", "runs/demo/compress/ptq_int8")

Writes into out_dir: the compressed artifact (`<name>.pt2` + `.pt2.json` for int8 PT2E,
`pruned.pt` for pruned float models), the deployed artifacts (`<name>.tflite`, `<name>.onnx`) with
their verification files, `report.json`, `report.md`, `report.png` and, for mixed precision,
`sensitivity.{json,md,png}`. Every accuracy number is measured on the same evaluation images and
says where it was measured (`measured_on`: pytorch, tflite or onnx).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from atpn_edge.compress.recipe import FinetuneStep, PruneStep, Recipe, load_recipe
from atpn_edge.data.registry import real_faces_or_none
from atpn_edge.errors import UserError
from atpn_edge.io import read_json_or_none, write_json, write_text

log = logging.getLogger(__name__)

DEFAULT_EVAL_CACHE = "runs/cache"


class _Head(Sequence):
    """The first n items of a sequence (the cached training set is rendered once at its full size)."""

    def __init__(self, items: Sequence, n: int):
        self.items, self.n = items, min(n, len(items))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self.items[j] for j in range(*i.indices(self.n))]
        if not -self.n <= i < self.n:
            raise IndexError(i)
        return self.items[i % self.n]


@dataclasses.dataclass
class _Context:
    recipe: Recipe
    out: Path
    data: str
    num_points: int
    input_size: int
    loss_config: object
    cache_dir: str
    progress: bool
    train_pool: int
    _train: Sequence | None = None

    def train_samples(self, n: int) -> Sequence:
        from atpn_edge.data.registry import open_dataset, parse_data_spec
        from atpn_edge.data.registry import synthetic_split

        spec = parse_data_spec(self.data)
        # Synthetic: a step asking for more crops than the pool holds gets a larger pool (seeded per index, so
        # its first crops are the same ones); the count must not depend on which earlier steps ran or were reused.
        if self._train is None or (spec.kind == "synthetic" and len(self._train) < n):
            if spec.kind == "synthetic":
                self._train = synthetic_split("train", max(n, self.train_pool), self.num_points, self.input_size, self.cache_dir)
            else:
                self._train = open_dataset(spec, split="train", size=self.input_size, num_points=self.num_points,
                                           augment=False, seed=0)
        return _Head(self._train, n)


def _eval_set(data: str, split: str, n: int, num_points: int, size: int, cache_dir: str):
    from atpn_edge.data.registry import open_dataset, parse_data_spec
    from atpn_edge.data.registry import synthetic_split

    spec = parse_data_spec(data)
    if spec.kind == "synthetic":
        return synthetic_split(split, n, num_points, size, cache_dir)
    return open_dataset(spec, split=split, size=size, num_points=num_points, augment=False, seed=0, limit=n)


def _images(samples: Sequence, augment: bool = False, seed: int = 0) -> np.ndarray:
    if augment:
        from atpn_edge.data.augment import AugmentConfig, augment_crop

        return np.stack([augment_crop(samples[i], np.random.default_rng([seed, 0, i]), config=AugmentConfig()).image
                         for i in range(len(samples))])
    return np.stack([samples[i].image for i in range(len(samples))])


def _fingerprint(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _weights_sum(model) -> float:
    """A cheap fingerprint of a model's weights (part of a finished step's resume key)."""
    return float(sum(float(p.detach().double().sum()) for p in model.parameters()))


def _metrics_row(result: dict, measured_on: str, float_nme: float | None, **extra) -> dict:
    row = {
        "nme": result["nme"], "fr_10": result["fr_10"], "auc_10": result["auc_10"],
        "pose_mae": (result.get("pose_mae") or {}).get("mean"),
        "pose_mae_axes": {k: v for k, v in (result.get("pose_mae") or {}).items() if k != "mean"},
        "face_score_acc": result.get("face_score_acc"), "box_iou": result.get("box_iou"),
        "n_images": result.get("n_images"), "measured_on": measured_on,
        "nme_drop_rel": 0.0 if float_nme is None else result["nme"] / float_nme - 1.0,
    }
    row.update(extra)
    return row


def _scored(predict_fn, sets: tuple, measured_on: str, float_row: dict | None, progress: bool, **extra) -> tuple[dict, np.ndarray]:
    """A variant's row on the recipe's evaluation set and, when installed, the built-in real photographs
    (`--data real`: is the drop the same on real faces?) -> (row, per-image NMEs of the evaluation set)."""
    from atpn_edge.evaluate import evaluate

    eval_set, real_set = sets
    result, nmes = evaluate(predict_fn, eval_set, progress=progress)
    row = _metrics_row(result, measured_on, None if float_row is None else float_row["nme"], **extra)
    if real_set is not None:
        real, _ = evaluate(predict_fn, real_set, progress=False)
        float_real = None if float_row is None else float_row.get("real_nme")
        row.update(real_nme=real["nme"], real_n_images=real["n_images"],
                   real_nme_drop_rel=0.0 if float_row is None else (real["nme"] / float_real - 1.0 if float_real else None))
    return row, nmes


# --------------------------------------------------------------------------- steps
def _run_prune(ctx: _Context, model, step: PruneStep, index: int, resume: bool):
    """Iterative pruning (equal MAC shares per step) with recovery fine-tuning, then final fine-tuning."""
    from atpn_edge.compress.finetune import finetune
    from atpn_edge.compress.prune import load_any_checkpoint, prune_channels, save_pruned_checkpoint
    from atpn_edge.models import count_params_and_macs

    final = ctx.out / f"step{index}_pruned.pt"
    # the control is trained beside the pruned model and does not change it
    key = _fingerprint(dataclasses.asdict(dataclasses.replace(step, unpruned_control=False)), model.name, model.options,
                       _weights_sum(model))
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
        current = prune_channels(current, target, importance=step.importance, round_to=step.round_to,
                                 grad_fn=taylor_grad if step.importance == "taylor" else None, input_size=ctx.input_size)
        last = k == step.iterative_steps
        params = step.train if last else dataclasses.replace(step.train, epochs=step.epochs_between_steps)
        state = ctx.out / f"step{index}_prune_iter{k}_finetune_state.pt"
        current = finetune(current, samples if len(samples) >= params.batch_size else samples, params, ctx.loss_config,
                           num_points=ctx.num_points, state_path=state,
                           extra_state={"key": key, "iteration": k}, progress=ctx.progress,
                           description=f"prune {k}/{step.iterative_steps} finetune")
        macs = count_params_and_macs(current, ctx.input_size)[1]
        info = {"key": key, "iteration": k, "macs": macs, "base_macs": base_macs, "step": dataclasses.asdict(step)}
        save_pruned_checkpoint(final if last else ctx.out / f"step{index}_prune_iter{k}.pt", current,
                               train_config=ctx.loss_config.to_dict(), pruning=info)
        if state.is_file():
            state.unlink()
    for k in range(1, step.iterative_steps):
        (ctx.out / f"step{index}_prune_iter{k}.pt").unlink(missing_ok=True)
    return current


def _run_finetune(ctx: _Context, model, step, index: int, role: str = "finetune"):
    from atpn_edge.compress.finetune import finetune

    samples = ctx.train_samples(step.train.train_samples)
    key = _fingerprint(dataclasses.asdict(step), _weights_sum(model), len(samples))
    # a copy: the float reference model stays untouched
    return finetune(copy.deepcopy(model), samples, step.train, ctx.loss_config, num_points=ctx.num_points,
                    state_path=ctx.out / f"step{index}_{role}_state.pt", extra_state={"key": key},
                    progress=ctx.progress, description=role.replace("_", " "))


def _run_unpruned_control(ctx: _Context, model, step: PruneStep, index: int):
    """The prune step's training (its recovery and final fine-tuning segments) given to the unpruned model."""
    segments = [dataclasses.replace(step.train, epochs=step.epochs_between_steps)] * (step.iterative_steps - 1) + [step.train]
    control = model
    for k, params in enumerate(segments, 1):
        if params.epochs:
            control = _run_finetune(ctx, control, FinetuneStep(train=params), index, role=f"unpruned_control_{k}")
    return control


def _keep_float(ctx: _Context, model, mixed, per_channel: bool, observer: str, report: dict) -> tuple[str, ...]:
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
    key = _fingerprint(base_spec.to_dict(), mixed.sensitivity_samples, ctx.data,
                       _weights_sum(model))
    result = read_json_or_none(ctx.out / "sensitivity.json")
    if result is not None and result.get("key") == key:
        log.info("sensitivity analysis already finished: %s", ctx.out / "sensitivity.json")
    else:
        calib = calibration_batches(_images(ctx.train_samples(64)))
        val = _eval_set(ctx.data, "val", mixed.sensitivity_samples, ctx.num_points, ctx.input_size, ctx.cache_dir)
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
    from atpn_edge.compress import pt2e
    from atpn_edge.compress.finetune import finetune
    from atpn_edge.compress.prune import load_any_checkpoint, save_pruned_checkpoint
    from atpn_edge.compress.quantize import ptq, qat, quant_spec, save_quantized
    from atpn_edge.models import count_params_and_macs
    from atpn_edge.train.config import TrainConfig, config_from_dict
    from atpn_edge.train.predict import torch_predict_fn

    started = time.perf_counter()
    recipe = load_recipe(recipe_path)
    out = Path(out_dir) if out_dir is not None else Path("runs/demo/compress") / recipe.name
    out.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(threads)
    float_model, ckpt = load_any_checkpoint(checkpoint)
    try:
        loss_config = config_from_dict(ckpt.get("train_config") or {}, source=f"{checkpoint} train_config")
    except UserError:
        loss_config = TrainConfig()
    meta = ckpt["meta"]
    num_points, size = int(meta["num_landmarks"]), int(meta["input_size"])
    cache = cache_dir or loss_config.cache_dir or DEFAULT_EVAL_CACHE
    ctx = _Context(recipe, out, data, num_points, size, loss_config, cache, progress,
                   train_pool=int((ckpt.get("train_config") or {}).get("train_samples", 0)) if data == "synthetic" else 0)
    report: dict = {"recipe": recipe.to_dict(), "recipe_path": str(recipe_path), "checkpoint": str(checkpoint),
                    "data": data, "precision": recipe.precision, "artifacts": {}, "steps": []}

    model = float_model
    pre_quant = None  # the (pruned / fine-tuned) float model a quantization step started from
    float_control = None
    unpruned_control = None  # the unpruned model given the same fine-tuning (PruneStep.unpruned_control)
    graph = None
    graph_full_int8 = None
    spec = None
    calib_images = None
    for index, step in enumerate(recipe.steps):
        t0 = time.perf_counter()
        opts = step.options
        if step.kind == "prune":
            if opts.unpruned_control:
                unpruned_control = _run_unpruned_control(ctx, model, opts, index)
            model = _run_prune(ctx, model, opts, index, resume)
            report["artifacts"]["pruned_checkpoint"] = str(out / f"step{index}_pruned.pt")
        elif step.kind == "finetune":
            model = _run_finetune(ctx, model, opts, index)
            if unpruned_control is not None:
                unpruned_control = _run_finetune(ctx, unpruned_control, opts, index, role="unpruned_control")
        elif step.kind == "ptq":
            keep = _keep_float(ctx, model, opts.mixed_precision, opts.per_channel, opts.observer, report)
            spec = quant_spec(opts.per_channel, opts.observer, opts.mixed_precision, keep)
            calib_samples = ctx.train_samples(opts.calibration_samples)
            calib_images = _images(calib_samples, augment=opts.calibration_augment)
            pre_quant = model
            graph = ptq(model, calib_images, spec, progress=progress)
            if spec.skip_modules or spec.skip_operators:  # what mixed precision buys: also the all-int8 model
                graph_full_int8 = ptq(model, calib_images, quant_spec(opts.per_channel, opts.observer,
                                                                      dataclasses.replace(opts.mixed_precision, keep_float_modules=(), keep_float_operators=())),
                                      progress=progress)
        elif step.kind == "qat":
            keep = _keep_float(ctx, model, opts.mixed_precision, opts.per_channel, "histogram", report)
            spec = quant_spec(opts.per_channel, "histogram", opts.mixed_precision, keep)
            key = _fingerprint(dataclasses.asdict(opts), spec.to_dict())
            qat_samples = ctx.train_samples(opts.train.train_samples)
            if opts.float_control:
                # the same epochs without fake-quant: separates what QAT's extra training buys from what int8 costs
                float_control = finetune(copy.deepcopy(model), qat_samples, opts.train, loss_config, num_points=num_points,
                                         state_path=out / f"step{index}_float_control_state.pt", progress=progress,
                                         description="float control (QAT epochs, no quantization)")
            pre_quant = model
            graph = qat(model, qat_samples, opts, loss_config, num_points=num_points,
                        spec=spec, state_path=out / f"step{index}_qat_state.pt", progress=progress)
            calib_images = _images(ctx.train_samples(64))
        report["steps"].append({"kind": step.kind, "seconds": round(time.perf_counter() - t0, 1)})
        log.info("%s: step %d (%s) done in %.0f s", recipe.name, index, step.kind, time.perf_counter() - t0)

    # ---- artifacts
    if graph is not None:
        pt2_path = out / "model_int8.pt2"  # the name `make export-tflite` looks for (PTQ ?= .../model_int8.pt2)
        save_quantized(graph, pt2_path, extra={"recipe": recipe.name, "source_checkpoint": str(checkpoint)})
        report["artifacts"]["ptq_int8" if recipe.step("ptq") else "qat_int8"] = str(pt2_path)
    elif recipe.step("prune") or recipe.step("finetune"):
        path = out / f"{recipe.name}.pt"
        save_pruned_checkpoint(path, model, train_config=loss_config.to_dict(),
                               pruning={"recipe": recipe.name, "source_checkpoint": str(checkpoint)})
        report["artifacts"]["checkpoint"] = str(path)

    # ---- evaluation on the same images
    n_eval = eval_samples or recipe.evaluate.samples
    eval_set = _eval_set(data, recipe.evaluate.split, n_eval, num_points, size, cache)
    report["evaluation"] = {"split": recipe.evaluate.split, "n_images": len(eval_set), "data": data}
    params0, macs0 = count_params_and_macs(float_model, size)
    params1, macs1 = count_params_and_macs(model, size)
    sets = (eval_set, real_faces_or_none(num_points, size))
    acc: dict[str, dict] = {}
    curves: dict[str, np.ndarray] = {}

    def score(label: str, curve: str | None, predict_model, **extra) -> None:
        acc[label], nmes = _scored(torch_predict_fn(predict_model), sets, "pytorch", acc.get("float"), progress, **extra)
        if curve:
            curves[curve] = nmes

    score("float", "float (pytorch)", float_model, params=params0, macs=macs0)
    name = recipe.name
    if graph is not None:
        score(name, f"{name} (pytorch)", pt2e.QuantizedModel(graph), params=params1, macs=macs1, simulated=True,
              kept_in_float=list(spec.skip_modules) + list(spec.skip_operators))
        if graph_full_int8 is not None:
            score(f"{name}_all_int8", None, pt2e.QuantizedModel(graph_full_int8), params=params1, macs=macs1,
                  simulated=True, kept_in_float=[])
        if pre_quant is not None and pre_quant is not float_model:
            score(f"{name}_float_before_quant", f"{name} float before quant (pytorch)", pre_quant, params=params1, macs=macs1)
        if float_control is not None:
            score(f"{name}_float_control", f"{name} float control (pytorch)", float_control, params=params1, macs=macs1,
                  note="float model trained for the QAT epochs without fake-quant")
    elif model is not float_model:
        score(name, f"{name} (pytorch)", model, params=params1, macs=macs1)
    if unpruned_control is not None:
        score(f"{name}_unpruned_control", f"{name} unpruned control (pytorch)", unpruned_control, params=params0,
              macs=macs0, note="unpruned float model given the same fine-tuning")

    if export and recipe.evaluate.formats:
        _export_and_measure(recipe, out, model, graph, spec, calib_images, sets, ctx, acc, curves, report,
                            params1, macs1, str(checkpoint))
    report["accuracy"] = acc
    report["params_macs"] = {"float": {"params": params0, "macs": macs0}, "compressed": {"params": params1, "macs": macs1},
                             "macs_reduction": 1 - macs1 / macs0, "params_reduction": 1 - params1 / params0,
                             "counter": "atpn_edge.models.count_params_and_macs (conv + linear MACs)"}
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["headline"] = _headline(name, acc)
    write_report(report, out, curves)
    return report


def _export_and_measure(recipe, out, model, graph, spec, calib_images, sets, ctx, acc, curves, report,
                        params, macs, source):
    """Export the deployable artifacts and measure each in its own runtime."""
    from atpn_edge.export import export_model
    from atpn_edge.runtime.loader import load_predictor

    precision = recipe.precision
    verify_images = _images(_Head(sets[0], 8))
    if calib_images is None and precision == "int8":
        calib_images = _images(ctx.train_samples(256))
    for fmt in recipe.evaluate.formats:
        if fmt == "onnx" and precision == "fp16":
            log.info("ONNX has no fp16 export here: skipping onnx for %s", recipe.name)
            continue
        path = out / f"{recipe.name}.{fmt}"
        if fmt == "tflite" and graph is not None:
            source_model, how = graph, ("PT2E graph -> litert-torch (int8, input conv float)" if spec.float_input_conv
                                         else "PT2E graph -> litert-torch (fully int8)")
            kwargs = {"float_model": model, "quant_spec": spec, "allow_float_ops": ()}
        elif precision == "int8":
            # ONNX from PT2E graphs is not exported; ORT's static QDQ quantizer, same calibration crops and
            # the calibration method matching the recipe's observer.
            source_model, how = model, "float model -> onnxruntime static QDQ (same calibration crops)"
            kwargs = {"calib_images": calib_images, "quant_spec": spec}
        else:
            source_model, how = model, f"float model -> {fmt} {precision}"
            kwargs = {}
        try:
            result = export_model(source_model, fmt, precision, path, verify_images=verify_images,
                                  source_checkpoint=source, **kwargs)
        except UserError:
            raise
        except Exception as e:  # a converter failure must not lose the PyTorch numbers already measured
            log.error("export of %s to %s failed: %s", recipe.name, fmt, e)
            report.setdefault("export_errors", {})[fmt] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            continue
        predictor = load_predictor(path, threads=1)
        variant = f"{recipe.name}_{fmt}"
        acc[variant], nmes = _scored(predictor.predict, sets, fmt, acc["float"], ctx.progress, params=params, macs=macs,
                                     size_bytes=result.size_bytes, artifact=str(path), route=how,
                                     int8_check=(result.verification or {}).get("int8"))
        curves[f"{recipe.name} ({fmt})"] = nmes
        report["artifacts"][f"{fmt}"] = str(path)


def _headline(name: str, acc: dict) -> dict:
    """The number that counts: a deployed artifact measured in its runtime when there is one."""
    for key in (f"{name}_tflite", f"{name}_onnx", name):
        if key in acc:
            row = acc[key]
            return {"variant": key, "measured_on": row["measured_on"], "nme": row["nme"],
                    "nme_drop_rel": row["nme_drop_rel"], "pose_mae": row["pose_mae"],
                    "pose_mae_rise": None if row["pose_mae"] is None or acc["float"]["pose_mae"] is None
                    else row["pose_mae"] - acc["float"]["pose_mae"]}
    return {}


def write_report(report: dict, out: Path, curves: dict | None = None) -> None:
    """report.json, report.md and report.png (NME per variant, float line) in `out`, atomically."""
    write_json(out / "report.json", report)
    acc = report["accuracy"]
    pm = report["params_macs"]
    lines = [f"# Compression report: {report['recipe']['name']}", "",
             report["recipe"].get("description", "") or "", "",
             f"Checkpoint `{report['checkpoint']}`, data `{report['data']}`, evaluated on "
             f"{report['evaluation']['n_images']} {report['evaluation']['split']} images (the same for every row).", "",
             "| variant | measured on | NME | NME drop | NME real photos (drop) | FR@0.1 | AUC@0.1 | pose MAE (deg) | face acc "
             "| params | MACs | size |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def fmt(v, spec):
        return "-" if v is None else format(v, spec)

    for variant, r in acc.items():
        real = "-" if r.get("real_nme") is None else (
            f"{r['real_nme']:.4f}" + ("" if r.get("real_nme_drop_rel") is None else f" ({r['real_nme_drop_rel']:+.1%})"))
        lines.append(f"| {variant} | {r['measured_on']} | {r['nme']:.5f} | {r['nme_drop_rel']:+.2%} | {real} | {r['fr_10']:.4f} | "
                     f"{r['auc_10']:.4f} | {fmt(r['pose_mae'], '.3f')} | {fmt(r['face_score_acc'], '.4f')} | "
                     f"{r.get('params', 0) / 1e3:.1f} k | {r.get('macs', 0) / 1e6:.2f} M | "
                     f"{fmt(r.get('size_bytes') and r['size_bytes'] / 1e3, '.0f')}{' kB' if r.get('size_bytes') else ''} |")
    lines += ["", f"MACs {pm['float']['macs'] / 1e6:.2f} M -> {pm['compressed']['macs'] / 1e6:.2f} M "
              f"({pm['macs_reduction']:.1%} removed), params {pm['float']['params'] / 1e3:.1f} k -> "
              f"{pm['compressed']['params'] / 1e3:.1f} k ({pm['counter']})."]
    h = report.get("headline") or {}
    if h:
        lines += ["", f"**What to ship:** `{h['variant']}`, measured on {h['measured_on']}: NME {h['nme']:.5f} "
                  f"({h['nme_drop_rel']:+.2%} vs float)" + (f", pose MAE {h['pose_mae_rise']:+.3f} deg" if h.get("pose_mae_rise") is not None else "") + "."]
        for suffix, what in (("unpruned_control", "the unpruned model given the same fine-tuning"),
                             ("float_control", "the float model trained for the QAT epochs without fake-quant")):
            control = acc.get(f"{report['recipe']['name']}_{suffix}")
            if control:
                lines += ["", f"Against {what} (NME {control['nme']:.5f}, {control['nme_drop_rel']:+.2%} vs float): "
                          f"{h['nme'] / control['nme'] - 1:+.2%}. Fine-tuning also trains an under-trained float model "
                          "further, so this, not the drop against float, is what the compression itself costs."]
    lines += ["", "Rows measured on `pytorch` for int8 recipes are the simulated PT2E graph (quantize/dequantize "
              "in float); rows on `tflite` / `onnx` are the exported artifact run in its own runtime."]
    real_n = acc["float"].get("real_n_images")
    if real_n:
        lines += ["", f"NME real photos: the built-in real photographs (`--data real`, {real_n} human-annotated faces, "
                  "68 points, evaluation only): with this few faces a drop of a few per cent is noise; a collapse is not."]
    if "sensitivity" in report:
        s = report["sensitivity"]
        lines += ["", f"Sensitivity: table `{Path(s['table']).name}`, chart `{Path(s['chart']).name}`; kept in float: "
                  f"{', '.join(s['kept_in_float']) or 'none'}."]
    for fmt_name, err in (report.get("export_errors") or {}).items():
        lines.append(f"\nExport to {fmt_name} failed: {err}")
    lines += ["", "Artifacts:"] + [f"- {k}: `{v}`" for k, v in report["artifacts"].items()]
    write_text(out / "report.md", "\n".join(lines) + "\n")
    _plot(acc, out / "report.png", report["recipe"]["name"])
    if curves:
        from atpn_edge.metrics import plot_ced

        plot_ced(curves, str(out / "ced.png"))


def _plot(acc: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from atpn_edge.io import atomic_path

    names = list(acc)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2 + 0.2 * len(names)))
    colors = {"pytorch": "#4C72B0", "tflite": "#DD8452", "onnx": "#55A868"}
    y = np.arange(len(names))
    axes[0].barh(y, [100 * acc[n]["nme"] for n in names], color=[colors.get(acc[n]["measured_on"], "gray") for n in names])
    axes[0].axvline(100 * acc["float"]["nme"], color="k", lw=0.8, ls="--")
    axes[0].set_yticks(y, [f"{n} [{acc[n]['measured_on']}]" for n in names], fontsize=8)
    axes[0].invert_yaxis()
    axes[0].set_xlabel("NME (%)")
    pose = [acc[n]["pose_mae"] or 0.0 for n in names]
    axes[1].barh(y, pose, color=[colors.get(acc[n]["measured_on"], "gray") for n in names])
    axes[1].set_yticks(y, [""] * len(names))
    axes[1].invert_yaxis()
    axes[1].set_xlabel("pose MAE (deg)")
    fig.suptitle(f"{title}: float vs compressed on the same images")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def read_report(out_dir: str | os.PathLike) -> dict | None:
    return read_json_or_none(Path(out_dir) / "report.json")
