"""Compression recipes are data: YAML files in recipes/, validated into typed frozen configs.

    name: ptq_int8
    description: static int8, per-channel weights
    steps:                      # applied in order; each a plain function model -> new model
      - ptq: {calibration_samples: 256, observer: histogram, per_channel: true}
    evaluate: {split: test, samples: 1000, formats: [tflite, onnx]}
    float_reference: {epochs: 16, train_samples: 8000}   # the float model the header's numbers came from

Step kinds: `prune` and `finetune` (float model -> float model), then at most one final precision step:
`ptq`, `qat` (PT2E int8), `fp16` or `dynamic_int8` (precisions applied when exporting). An unknown
key, a wrong type or an impossible value raises one UserError line naming the file and the key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from atpn_edge.errors import UserError
from atpn_edge.io import read_yaml, recipe_path
from atpn_edge.typed_config import build_config, option

OBSERVERS = ("minmax", "moving_average_minmax", "histogram")
IMPORTANCES = ("magnitude", "taylor", "bn_scale")
PRUNE_SCOPES = ("all", "hidden")
PRUNE_ALLOCATIONS = ("uniform", "sensitivity")
FORMATS = ("tflite", "onnx", "executorch")
QUANT_OPERATORS = ("conv2d", "linear", "add", "mul", "cat", "adaptive_avg_pool2d")


@dataclass(frozen=True)
class TrainParams:
    """Fine-tuning shared by `finetune`, `qat` and `prune`: the trainer's loss on the training pipeline."""

    epochs: int = option(3, min=0)
    lr: float = option(3e-4, min=0, min_exclusive=True)
    weight_decay: float = option(5e-5, min=0)
    batch_size: int = option(64, min=2)
    train_samples: int = option(4000, min=2, help="training crops (synthetic: the cached train split's first N)")
    augment: bool = option(True)
    seed: int = option(0, min=0)
    distill: float = option(0.0, min=0, help="weight of the teacher's outputs (landmarks, pose, face score, box) as soft "
                                          "targets beside the labels; the teacher is the unpruned control trained as far "
                                          "(prune: unpruned_control: true), else the model before the first prune step; "
                                          "0: labels only")


@dataclass(frozen=True)
class FinetuneStep:
    train: TrainParams = field(default_factory=TrainParams)


@dataclass(frozen=True)
class PruneStep:
    macs_reduction: float = option(0.3, min=0, max=0.95, min_exclusive=True,
                                 help="share of MACs to remove (the channel ratio is searched to reach it)")
    importance: str = option("magnitude", choices=IMPORTANCES)
    scope: str = option("all", choices=PRUNE_SCOPES, help="all: every layer loses the same share of channels; hidden: "
                                                       "only the inverted residuals' expanded channels")
    allocation: str = option("uniform", choices=PRUNE_ALLOCATIONS,
                             help="uniform: every prunable layer loses the same share; sensitivity: each inverted "
                                  "residual's share scaled by how little pruning it alone raised validation NME per MAC")
    iterative_steps: int = option(3, min=1)
    epochs_between_steps: int = option(1, min=0, help="recovery fine-tuning after each non-final pruning step")
    round_to: int = option(4, min=1, help="keep channel counts multiples of this (int8 kernels like multiples of 4/8)")
    train: TrainParams = field(default_factory=lambda: TrainParams(epochs=4, lr=1e-3))
    unpruned_control: bool = option(False, help="also give the unpruned model this recipe's fine-tuning (this step's and "
                                              "every later finetune step's) and report it: what pruning costs apart "
                                              "from what the extra training buys")


@dataclass(frozen=True)
class MixedPrecision:
    """Layers kept in float: the K most sensitive (by the sensitivity pass) and/or named modules."""

    keep_float_top_k: int = option(0, min=0)
    keep_float_modules: tuple[str, ...] = option((), help="module names such as heatmap or pose_head")
    keep_float_operators: tuple[str, ...] = option((), choices=QUANT_OPERATORS)
    keep_float_input_conv: bool = option(True, help="the conv reading the image stays float (XNNPACK's int8 convs on "
                                                   "3-channel input cost 3x fp32); false: int8 input, every conv int8")
    sensitivity_samples: int = option(200, min=1, help="validation crops used to rank layers")
    sensitivity_analysis: bool = option(False, help="write the per-layer table and chart even when K is 0")


@dataclass(frozen=True)
class PTQStep:
    per_channel: bool = option(True)
    observer: str = option("histogram", choices=OBSERVERS)
    calibration_samples: int = option(256, min=1)
    calibration_augment: bool = option(False, help="calibrate on augmented training crops")
    calibration_faces_only: bool = option(True, help="calibrate on crops that hold a face: non-face crops stretch the "
                                                   "landmark and box outputs' int8 ranges (data.registry.face_samples)")
    mixed_precision: MixedPrecision = field(default_factory=MixedPrecision)


@dataclass(frozen=True)
class QATStep:
    per_channel: bool = option(True)
    freeze_observers_epoch: int = option(2, min=0, help="observers stop updating from this epoch (0-based) on")
    freeze_bn_epoch: int = option(1, min=0, help="batch-norm running statistics freeze from this epoch on")
    train: TrainParams = field(default_factory=lambda: TrainParams(epochs=3, lr=1e-4))
    mixed_precision: MixedPrecision = field(default_factory=MixedPrecision)
    float_control: bool = option(False, help="also train the float model for the same epochs without fake-quant and report it")


@dataclass(frozen=True)
class ExportPrecisionStep:
    """fp16 or dynamic_int8: a precision applied by the TFLite/ONNX exporters to the float model."""


STEP_KINDS: dict[str, type] = {
    "finetune": FinetuneStep,
    "prune": PruneStep,
    "ptq": PTQStep,
    "qat": QATStep,
    "fp16": ExportPrecisionStep,
    "dynamic_int8": ExportPrecisionStep,
}
FINAL_KINDS = ("ptq", "qat", "fp16", "dynamic_int8")


@dataclass(frozen=True)
class EvalSpec:
    split: str = option("test", choices=("val", "test"))
    samples: int = option(1000, min=1, help="evaluation crops (synthetic) or a limit (real data)")
    formats: tuple[str, ...] = option(("tflite",), choices=FORMATS,
                                    help="export the result and measure it in its own runtime")


@dataclass(frozen=True)
class FloatReference:
    """The training budget of the float model a recipe's published numbers were measured from. A checkpoint
    trained on fewer crops makes every "vs float" number look better than it is: the recipe's fine-tuning also
    finishes the float model's training (the unpruned / float controls measure that part)."""

    epochs: int = option(0, min=0, help="epochs the float model was trained (0: not stated)")
    train_samples: int = option(0, min=0, help="training crops per epoch of that model")

    @property
    def crops(self) -> int:
        return self.epochs * self.train_samples


@dataclass(frozen=True)
class Step:
    kind: str
    options: Any  # one of the *Step dataclasses

    def to_dict(self) -> dict:
        return {self.kind: dataclasses.asdict(self.options)}


@dataclass(frozen=True)
class Recipe:
    name: str
    steps: tuple[Step, ...]
    description: str = ""
    evaluate: EvalSpec = field(default_factory=EvalSpec)
    float_reference: FloatReference = field(default_factory=FloatReference)
    source: str = ""

    @property
    def precision(self) -> str:
        """fp32, int8 (ptq/qat), fp16 or dynamic-int8: the final precision step."""
        last = self.steps[-1].kind if self.steps else ""
        return {"ptq": "int8", "qat": "int8", "fp16": "fp16", "dynamic_int8": "dynamic-int8"}.get(last, "fp32")

    def step(self, kind: str):
        return next((s.options for s in self.steps if s.kind == kind), None)

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "steps": [s.to_dict() for s in self.steps],
                "evaluate": dataclasses.asdict(self.evaluate), "float_reference": dataclasses.asdict(self.float_reference)}


def recipe_from_dict(values: Any, source: str = "recipe") -> Recipe:
    if not isinstance(values, dict):
        raise UserError(f"{source}: expected a mapping with 'name' and 'steps' at the top level")
    known = ("name", "description", "steps", "evaluate", "float_reference")
    for key in values:
        if key not in known:
            raise UserError(f"{source}: unknown key '{key}' (known: {', '.join(known)})")
    name = values.get("name", Path(source).stem)
    if not isinstance(name, str) or not name or any(c in name for c in "/\\ "):
        raise UserError(f"{source}: 'name' must be a non-empty string without spaces or slashes, got {name!r}")
    description = values.get("description", "")
    if not isinstance(description, str):
        raise UserError(f"{source}: 'description' must be a string")
    raw_steps = values.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise UserError(f"{source}: 'steps' must be a non-empty list such as [{{ptq: {{}}}}]")
    steps = []
    for i, raw in enumerate(raw_steps):
        if isinstance(raw, str):
            raw = {raw: {}}
        if not isinstance(raw, dict) or len(raw) != 1:
            raise UserError(f"{source}: 'steps[{i}]' must be one step kind with its options, e.g. {{ptq: {{...}}}}")
        (kind, options), = raw.items()
        if kind not in STEP_KINDS:
            raise UserError(f"{source}: 'steps[{i}]' has unknown step kind '{kind}' (known: {', '.join(STEP_KINDS)})")
        steps.append(Step(kind, build_config(STEP_KINDS[kind], options, source, f"steps[{i}].{kind}.")))
    finals = [i for i, s in enumerate(steps) if s.kind in FINAL_KINDS]
    if len(finals) > 1:
        raise UserError(f"{source}: 'steps' may hold only one of {', '.join(FINAL_KINDS)} (found {len(finals)})")
    if finals and finals[0] != len(steps) - 1:
        raise UserError(f"{source}: 'steps[{finals[0]}].{steps[finals[0]].kind}' must be the last step "
                        "(prune and finetune come before quantization)")
    for i, s in enumerate(steps):
        if s.kind == "qat" and s.options.freeze_observers_epoch > s.options.train.epochs:
            raise UserError(f"{source}: 'steps[{i}].qat.freeze_observers_epoch' ({s.options.freeze_observers_epoch}) "
                            f"is after the last epoch ({s.options.train.epochs})")
        if s.kind == "qat" and s.options.train.epochs < 1:
            raise UserError(f"{source}: 'steps[{i}].qat.train.epochs' must be at least 1")
    evaluate = build_config(EvalSpec, values.get("evaluate"), source, "evaluate.")
    reference = build_config(FloatReference, values.get("float_reference"), source, "float_reference.")
    return Recipe(name=name, description=description, steps=tuple(steps), evaluate=evaluate,
                  float_reference=reference, source=source)


def load_recipe(path: str | Path) -> Recipe:
    """YAML (safe_load) -> validated Recipe; every problem is one UserError line naming the file."""
    path = recipe_path(path)
    return recipe_from_dict(read_yaml(path, "recipe"), str(path))
