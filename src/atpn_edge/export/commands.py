"""`atpn-edge export`: a checkpoint (or a PT2E int8 program) -> a verified .tflite / .onnx / .pte artifact,
with its accuracy measured in its own runtime next to the float model's on the same images."""

from __future__ import annotations

import logging
from pathlib import Path
from atpn_edge.data.registry import DEFAULT_CACHE_DIR

log = logging.getLogger(__name__)

DEFAULT_CALIBRATION = 256
DEFAULT_EVAL = 500


def _data_crops(data: str, split: str, count: int, num_points: int, input_size: int, cache_dir: str):
    """(N, S, S, 3) uint8 crops and the samples they came from."""
    import numpy as np

    from atpn_edge.data.registry import open_eval_set

    samples = open_eval_set(data, split, count, num_points, input_size, cache_dir)
    crops = np.stack([samples[i].image for i in range(min(count, len(samples)))])
    return crops, samples


def _calibration_crops(data: str, count: int, num_points: int, input_size: int, cache_dir: str, faces_only: bool):
    """(N, S, S, 3) uint8: the first `count` face crops of the training split (data.registry.face_samples),
    or its first `count` crops."""
    import numpy as np

    from atpn_edge.data.registry import face_samples, open_eval_set

    if not faces_only:
        return _data_crops(data, "train", count, num_points, input_size, cache_dir)[0]
    train = open_eval_set(data, "train", 2 * count, num_points, input_size, cache_dir)
    return np.stack([s.image for s in face_samples(train, count)])


def load_source_model(model_path: str):
    """A float checkpoint (.pt) -> (float model, None), or a PT2E program (.pt2) -> (its float source or None, graph)."""
    from atpn_edge.errors import UserError

    path = Path(model_path)
    if path.suffix == ".pt2":
        from atpn_edge.compress.quantize import load_quantized, sidecar_path
        from atpn_edge.io import read_json_or_none

        graph = load_quantized(path)
        float_model = None
        source = (read_json_or_none(sidecar_path(path)) or {}).get("source_checkpoint")
        if source and Path(source).is_file():
            from atpn_edge.train.checkpoint import load_checkpoint

            float_model, _ = load_checkpoint(source)
        return float_model, graph
    if path.suffix != ".pt":
        raise UserError(f"--model {model_path}: export takes a checkpoint (.pt) or a PT2E int8 program (.pt2)")
    from atpn_edge.train.checkpoint import load_checkpoint

    model, _ = load_checkpoint(path)
    return model, None


def export_artifact(
    model_path: str,
    format: str,
    precision: str,
    out: str,
    *,
    data: str = "synthetic",
    calibration: int = DEFAULT_CALIBRATION,
    eval_images: int = DEFAULT_EVAL,
    nhwc: bool | None = None,
    int8_io: bool | None = None,
    quantizer: str = "pt2e",
    threads: int = 1,
    cache_dir: str = DEFAULT_CACHE_DIR,
    eval_split: str = "val",
) -> dict:
    """Export, verify (parity and int8-ness), then score the artifact in its runtime; returns the report
    also written to `<artifact>.accuracy.json`."""
    import torch

    from atpn_edge.evaluate import evaluate
    from atpn_edge.export import FORMATS, export_model
    from atpn_edge.io import write_json
    from atpn_edge.predictors import open_predictor
    from atpn_edge.train.predict import torch_predict_fn

    torch.set_num_threads(threads)
    float_model, graph = load_source_model(model_path)
    reference = float_model if float_model is not None else graph
    options = dict(getattr(reference, "options", None) or {})
    if graph is not None:
        from atpn_edge.compress.pt2e import graph_info

        options = dict(graph_info(graph).get("model_options", {}))
    num_points, input_size = int(options.get("num_landmarks", 98)), int(options.get("input_size", 112))

    calib = None
    if precision != "fp32" or format == "onnx":
        # face crops for PT2E (.tflite, .pte); ORT's QDQ calibration needs the non-face crops too (runner/deploy.py)
        calib = _calibration_crops(data, calibration, num_points, input_size, cache_dir, faces_only=FORMATS[format].int8_from_pt2e)
    result = export_model(
        graph if graph is not None else float_model, format, precision, out,
        calib_images=calib, float_model=float_model, source_checkpoint=str(model_path),
        nhwc=nhwc, int8_io=int8_io, quantizer=quantizer,
    )
    report = {
        "artifact": str(result.path),
        "format": format,
        "precision": precision,
        "size_bytes": result.size_bytes,
        "source": str(model_path),
        "verification": result.verification,
    }
    if eval_images > 0:
        _, val = _data_crops(data, eval_split, eval_images, num_points, input_size, cache_dir)
        predictor = open_predictor(result.path, threads=threads)
        artifact_metrics, _ = evaluate(predictor.predict, val, progress=True)
        report["accuracy"] = {"artifact": dict(artifact_metrics.to_json(), measured_on=format, runtime=predictor.runtime)}
        if float_model is not None:
            float_metrics, _ = evaluate(torch_predict_fn(float_model), val, progress=True)
            report["accuracy"]["float"] = dict(float_metrics.to_json(), measured_on="pytorch", runtime="torch")
            report["nme_drop_rel"] = artifact_metrics.nme / float_metrics.nme - 1
            if artifact_metrics.pose_mae and float_metrics.pose_mae:
                report["pose_mae_delta"] = artifact_metrics.pose_mae_mean - float_metrics.pose_mae_mean
        report["eval_data"] = f"{data} {eval_split}, {len(val)} crops"
    write_json(str(result.path) + ".accuracy.json", report)
    return report


def cmd_export(args) -> None:
    from atpn_edge.errors import UserError
    from atpn_edge.export.verify import VerificationError

    try:
        report = export_artifact(
            args.model, args.format, args.precision, args.out, data=args.data, calibration=args.calibration,
            eval_images=args.eval, nhwc=args.nhwc, int8_io=args.int8_io, quantizer=args.quantizer,
            threads=args.threads, cache_dir=args.cache_dir, eval_split=args.eval_split,
        )
    except VerificationError as e:
        raise UserError(f"{args.out}: verification failed, nothing written: {e}") from e
    line = f"{report['artifact']}: {report['format']} {report['precision']}, {report['size_bytes'] / 1024:.0f} KiB, verified"
    acc = report.get("accuracy", {})
    if "artifact" in acc:
        line += f"; NME {acc['artifact']['nme']:.4f} in {acc['artifact']['runtime']}"
        if "nme_drop_rel" in report:
            line += f" vs float {acc['float']['nme']:.4f} ({report['nme_drop_rel']:+.2%})"
    print(line)
    if args.json:
        from atpn_edge.io import write_json

        write_json(args.json, report)


def register(sub) -> None:
    from atpn_edge.export.formats import FORMATS, INT8_QUANTIZERS, PRECISIONS

    p = sub.add_parser("export", help="export a checkpoint or PT2E int8 program to TFLite, ONNX or ExecuTorch, verified")
    p.add_argument("--model", required=True, help="float checkpoint (.pt) or PT2E int8 program from `quantize` (.pt2)")
    p.add_argument("--format", required=True, choices=list(FORMATS))
    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS))
    p.add_argument("--out", required=True, help="artifact path (.tflite, .onnx or .pte); its folder must exist")
    p.add_argument("--data", default="synthetic", help="calibration and evaluation data (synthetic or KIND:PATH)")
    p.add_argument("--calibration", type=int, default=DEFAULT_CALIBRATION, help="calibration crops for int8")
    p.add_argument("--eval", type=int, default=DEFAULT_EVAL, help="crops to score the artifact on (0: skip)")
    p.add_argument("--eval-split", default="val", choices=["val", "test"], help="split scored (synthetic: seeds 1, 2)")
    layout = p.add_mutually_exclusive_group()
    layout.add_argument("--nhwc", dest="nhwc", action="store_const", const=True, default=None,
                        help="channels-last input (the default for TFLite)")
    layout.add_argument("--nchw", dest="nhwc", action="store_const", const=False,
                        help="channels-first input (the default for ONNX)")
    io = p.add_mutually_exclusive_group()
    io.add_argument("--int8-io", dest="int8_io", action="store_const", const=True, default=None,
                    help="int8 input and outputs (the default for TFLite int8: feed pixel - 128)")
    io.add_argument("--float-io", dest="int8_io", action="store_const", const=False,
                    help="float32 input and outputs around an int8 graph (adds QUANTIZE / DEQUANTIZE ops)")
    p.add_argument("--quantizer", default="pt2e", choices=list(INT8_QUANTIZERS), help="TFLite int8 route")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR)
    p.add_argument("--json")
    p.set_defaults(func=cmd_export)
