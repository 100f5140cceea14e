"""The `atpn-edge` command: a thin layer that parses flags and calls the library.

User errors (bad files, flags, recipes) print one line and exit 2; no tracebacks for them.
Heavy modules (torch, converters) are imported inside the subcommands that need them, so running
an exported artifact never imports torch.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from atpn_edge.errors import UserError
from atpn_edge.runtime.loader import RUNTIMES
from atpn_edge.track.commands import add_detector_option
from atpn_edge.data.registry import DEFAULT_CACHE_DIR

log = logging.getLogger("atpn_edge")


# --------------------------------------------------------------------------- helpers
def _write_json_arg(path: str | None, data: dict) -> None:
    if path:
        from atpn_edge.io import write_json

        write_json(path, data)
        log.info("wrote %s", path)


def open_predictor(model_path: str, runtime: str | None = None, threads: int = 1):
    """A checkpoint or an exported artifact -> (predict_fn, description dict)."""
    from atpn_edge.predictors import open_predictor as open_model_file

    if not Path(model_path).exists():
        raise UserError(f"{model_path}: no such model file")
    predictor = open_model_file(model_path, runtime=runtime, threads=threads)
    described = {"model": model_path, "runtime": predictor.runtime, "num_landmarks": predictor.num_landmarks}
    if predictor.runtime == "torch":
        described["model_name"] = predictor.model.name
    return predictor.predict, described


# --------------------------------------------------------------------------- subcommands
def cmd_info(args) -> None:
    from atpn_edge.models import build_model, count_params_and_macs, model_summary

    if Path(args.model).suffix == ".pt":
        from atpn_edge.train.checkpoint import load_checkpoint

        model, _ = load_checkpoint(args.model)
    else:
        model = build_model(args.model, input_size=args.input_size)
    params, macs = count_params_and_macs(model, args.input_size)
    result = {"model": args.model, "params": params, "macs": macs, "input_size": args.input_size}
    result["parts"] = model_summary(model, args.input_size)["parts"]
    print(f"{args.model}: {params / 1e6:.3f} M params, {macs / 1e6:.1f} M MACs at {args.input_size}x{args.input_size}")
    for part, numbers in result["parts"].items():
        if isinstance(numbers, dict):
            print(f"  {part:<16} {numbers.get('params', 0) / 1e3:9.1f} k params {numbers.get('macs', 0) / 1e6:8.2f} M MACs")
    _write_json_arg(args.json, result)


def cmd_data_preview(args) -> None:
    from atpn_edge.data.registry import open_dataset, parse_data_spec

    spec = parse_data_spec(args.data)
    if spec.kind == "synthetic":
        from atpn_edge.data.synthetic import SyntheticConfig, preview

        preview(args.out, seed=args.seed, count=args.count, config=SyntheticConfig(num_points=args.points))
    else:
        import cv2
        import numpy as np

        from atpn_edge.data.draw import draw_box, draw_landmarks, image_grid
        from atpn_edge.io import write_png

        ds = open_dataset(spec, split=args.split, size=112, num_points=args.points, augment=False, seed=args.seed, limit=args.count)
        tiles = []
        for i in range(min(args.count, len(ds))):
            s = ds[i]
            tile = cv2.resize(s.image, (224, 224), interpolation=cv2.INTER_LINEAR)
            if s.landmarks is not None:
                tile = draw_landmarks(tile, s.landmarks * 224 - 0.5)
            if s.face_box is not None:
                tile = draw_box(tile, np.asarray(s.face_box) * 224)
            tiles.append(tile)
        write_png(args.out, image_grid(tiles, cols=6))
    print(f"wrote {args.out}")


def cmd_train(args) -> None:
    from atpn_edge.train.config import load_config
    from atpn_edge.train.trainer import train

    overrides = {
        "model": args.model_name, "data": args.data, "epochs": args.epochs, "batch_size": args.batch_size,
        "lr": args.lr, "train_samples": args.train_samples, "val_samples": args.val_samples,
        "threads": args.threads, "seed": args.seed, "num_workers": args.workers,
    }
    config = load_config(args.config, overrides)
    final = train(config, args.out, resume=args.resume)
    if final:
        val = final.get("val", {})
        print(f"trained {config.model} for {final['epoch']} epochs: val NME {val.get('nme', float('nan')):.4f}, "
              f"checkpoints in {args.out}/best.pt and {args.out}/last.pt")
    _write_json_arg(args.json, final)


def cmd_eval(args) -> None:
    from atpn_edge.data.registry import DEFAULT_EVAL_SPLIT, open_eval_set, parse_data_spec
    from atpn_edge.evaluate import evaluate
    from atpn_edge.metrics import plot_ced

    predict, described = open_predictor(args.model, args.runtime, args.threads)
    spec = parse_data_spec(args.data)
    args.split = args.split or DEFAULT_EVAL_SPLIT[spec.kind]
    limit = args.limit or (1000 if spec.kind == "synthetic" else None)
    dataset = open_eval_set(spec, args.split, limit, described["num_landmarks"], 112, args.cache_dir)
    if len(dataset) == 0:
        raise UserError(f"--data {args.data} --split {args.split}: no images to evaluate")
    scores, nmes = evaluate(predict, dataset, batch_size=args.batch_size)
    result = {**scores.to_json(), "model": args.model, "runtime": described["runtime"], "data": args.data, "split": args.split}
    print(f"{args.model} [{described['runtime']}] on {args.data} {args.split}: {result['n_images']} images, "
          f"NME {result['nme']:.4f}, FR@0.1 {result['fr_10']:.4f}, AUC@0.1 {result['auc_10']:.4f}"
          + (f", pose MAE {result['pose_mae']['mean']:.2f} deg" if result["pose_mae"] else ""))
    for name, sub in result["subsets"].items():
        print(f"  {name:<14} {sub['n_images']:5d} images  NME {sub['nme']:.4f}  FR {sub['fr_10']:.4f}  AUC {sub['auc_10']:.4f}")
    _write_json_arg(args.json, result)
    if args.ced:
        plot_ced({Path(args.model).name: nmes}, args.ced)


def cmd_predict(args) -> None:
    from atpn_edge.predict import predict_images

    predict, described = open_predictor(args.model, args.runtime, args.threads)
    box = None
    if args.box:
        try:
            box = [float(v) for v in args.box.split(",")]
            assert len(box) == 4 and box[2] > box[0] and box[3] > box[1]
        except (ValueError, AssertionError):
            raise UserError(f"--box {args.box!r}: expected x1,y1,x2,y2 with x2 > x1 and y2 > y1") from None
    result = predict_images(predict, args.images, out_dir=args.out, box=box, detector=args.detector)
    for entry in result["images"]:
        print(f"{entry['path']}: {len(entry['faces'])} face(s)" + (f" -> {entry['annotated']}" if entry.get("annotated") else ""))
    _write_json_arg(args.json, result)


def cmd_demo(args) -> None:
    from atpn_edge.demo import run_demo

    report = run_demo(args.out, quick=args.quick)
    print(f"demo report: {report}")


# Subcommands that live beside the code they drive: each module has `register(subparsers)`, which
# adds its parser(s) with `set_defaults(func=...)`, and imports nothing heavy at module level.
COMMAND_MODULES: tuple[str, ...] = ("atpn_edge.export.commands", "atpn_edge.track.commands", "atpn_edge.runner.commands",
                                   "atpn_edge.bench.commands")


# Packages of the full install ([train] extra) that a runtime-only install lacks: a command that reaches
# one of them there ends in one line naming the install to use.
TRAINING_MODULES = ("torch", "torchao", "litert_torch", "onnx", "onnxscript", "onnxslim", "torch_pruning", "scipy",
                    "matplotlib", "skimage", "ai_edge_quantizer")


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="atpn-edge", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def model_runtime(p, model_help="checkpoint (.pt) or exported artifact (.tflite, .onnx, .pte)"):
        p.add_argument("--model", required=True, help=model_help)
        p.add_argument("--runtime", choices=list(RUNTIMES), default=None,
                       help="default: litert for .tflite, onnxruntime for .onnx, executorch for .pte, torch for checkpoints")
        p.add_argument("--threads", type=int, default=1)

    p = sub.add_parser("info", help="parameters and MACs of a model (by name or checkpoint)")
    p.add_argument("--model", required=True, help="model name (atpn, atpn-lite, pfld-0.25, pfld-1.0, mobilenetv2) or checkpoint")
    p.add_argument("--input-size", type=int, default=112)
    p.add_argument("--json")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("data", help="data set tools")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    q = data_sub.add_parser("preview", help="write a PNG grid of samples with their labels drawn")
    q.add_argument("--data", default="synthetic")
    q.add_argument("--split", default="train")
    q.add_argument("--out", default="runs/preview.png")
    q.add_argument("--count", type=int, default=36)
    q.add_argument("--points", type=int, default=98, choices=[98, 68])
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=cmd_data_preview)

    p = sub.add_parser("train", help="train a model (multitask; DDP under torchrun)")
    p.add_argument("--config", help="YAML training recipe (see recipes/)")
    p.add_argument("--model", dest="model_name", help="model name (overrides the recipe)")
    p.add_argument("--data", help="synthetic (default) or KIND:PATH")
    p.add_argument("--out", required=True, help="output folder for checkpoints and the log")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--train-samples", type=int)
    p.add_argument("--val-samples", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument("--workers", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out (from last.pt)")
    p.add_argument("--json")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="accuracy of a checkpoint or exported artifact on a data set")
    model_runtime(p)
    p.add_argument("--data", default="synthetic")
    p.add_argument("--split", default=None,
                   help="train, val or test (synthetic: seeds 0, 1, 2); default: the data set's test protocol")
    p.add_argument("--limit", type=int, help="at most this many samples (synthetic: the set size, default 1000)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR)
    p.add_argument("--ced", help="also save the cumulative error curve as this PNG")
    p.add_argument("--json")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="find faces in images, predict landmarks and pose, draw them")
    p.add_argument("images", nargs="+")
    model_runtime(p)
    p.add_argument("--box", help="x1,y1,x2,y2: use this face box instead of the detector")
    add_detector_option(p)
    p.add_argument("--out", default="runs/predict", help="folder for annotated PNGs")
    p.add_argument("--json")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("demo", help="the whole pipeline on the embedded synthetic data")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--quick", action="store_true", help="a tiny run for smoke tests")
    p.set_defaults(func=cmd_demo)

    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Our progress lines at INFO; the libraries' INFO chatter (onnx_ir's per-initializer lines, litert-torch's
    # lowering notes) only with --verbose.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(message)s")
    logging.getLogger("atpn_edge").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        args.func(args)
    except UserError as e:
        print(f"atpn-edge: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        missing = (e.name or "").split(".")[0]
        if missing not in TRAINING_MODULES:
            raise
        print(f"atpn-edge: error: `atpn-edge {args.command}` needs {missing}, which this install does not have: it "
              f"is a training/export command; use the full install (`make setup`, or `pip install 'atpn-edge[train]'`). "
              "A runtime install (`atpn-edge[litert]` / `[onnx]`) runs predict, eval, track, bench and profile on "
              ".tflite / .onnx artifacts.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("atpn-edge: interrupted (finished epochs and artifacts are kept; train --resume continues)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
