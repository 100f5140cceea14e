"""`atpn-edge quantize` and `atpn-edge prune`: run a compression recipe on a checkpoint.

Both call `atpn_edge.runner.run.run_recipe`; heavy imports happen inside the functions.
"""

from __future__ import annotations

import argparse
import logging

from atpn_edge.errors import UserError

log = logging.getLogger(__name__)

QUANT_KINDS = ("ptq", "qat", "fp16", "dynamic_int8")


def _add_common(p: argparse.ArgumentParser, default_recipe: str) -> None:
    p.add_argument("--recipe", default=default_recipe, help=f"YAML compression recipe (default {default_recipe})")
    p.add_argument("--model", required=True, help="float (or pruned) checkpoint (.pt)")
    p.add_argument("--data", default="synthetic", help="synthetic (default) or KIND:PATH: calibration, fine-tuning, evaluation")
    p.add_argument("--out", default=None, help="output folder (default runs/demo/compress/<recipe name>)")
    p.add_argument("--eval-samples", type=int, default=None, help="evaluation images (default: the recipe's)")
    p.add_argument("--cache-dir", default=None, help="synthetic data cache (default: the checkpoint's training cache)")
    p.add_argument("--no-export", action="store_true", help="skip the TFLite/ONNX artifacts (PyTorch numbers only)")
    p.add_argument("--restart", action="store_true", help="ignore finished steps and saved fine-tuning state")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--json", default=None, help="also write the report JSON here")


def _run(args, allowed: tuple[str, ...], command: str) -> None:
    from pathlib import Path

    from atpn_edge.compress.recipe import load_recipe
    from atpn_edge.runner.run import run_recipe

    recipe = load_recipe(args.recipe)
    kinds = {s.kind for s in recipe.steps}
    if not kinds & set(allowed):
        raise UserError(f"{args.recipe}: recipe '{recipe.name}' has no {' or '.join(allowed)} step: use "
                        f"`atpn-edge {'prune' if command == 'quantize' else 'quantize'}` for it")
    if args.eval_samples is not None and args.eval_samples < 1:
        raise UserError("--eval-samples must be at least 1")
    if not Path(args.model).is_file():
        raise UserError(f"{args.model}: no such checkpoint")
    report = run_recipe(args.recipe, args.model, args.out, args.data, eval_samples=args.eval_samples,
                        cache_dir=args.cache_dir, export=not args.no_export, resume=not args.restart, threads=args.threads)
    out = Path(args.out) if args.out else Path("runs/demo/compress") / recipe.name
    for variant, row in report["accuracy"].items():
        pose = f"{row['pose_mae']:.2f}" if row["pose_mae"] is not None else "-"
        print(f"  {variant:<24} [{row['measured_on']:<7}] NME {row['nme']:.5f} ({row['nme_drop_rel']:+.2%})  "
              f"pose MAE {pose}  MACs {row.get('macs', 0) / 1e6:.2f} M")
    print(f"report: {out / 'report.md'} (and report.json, report.png)")
    if args.json:
        from atpn_edge.io import write_json

        write_json(args.json, report)


def cmd_quantize(args) -> None:
    _run(args, QUANT_KINDS, "quantize")


def cmd_prune(args) -> None:
    _run(args, ("prune",), "prune")


def register(subparsers) -> None:
    p = subparsers.add_parser("quantize", help="quantize a checkpoint with a recipe (PTQ, QAT, fp16, dynamic int8)")
    _add_common(p, "recipes/ptq_int8.yaml")
    p.set_defaults(func=cmd_quantize)
    p = subparsers.add_parser("prune", help="prune (and fine-tune, optionally QAT) a checkpoint with a recipe")
    _add_common(p, "recipes/prune_30.yaml")
    p.set_defaults(func=cmd_prune)
