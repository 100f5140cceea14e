"""The deployable artifacts of a recipe run, exported and measured each in its own runtime."""

from __future__ import annotations

import logging

from atpn_edge.errors import UserError
from atpn_edge.runner.context import Head, calibration_images, stack_images
from atpn_edge.runner.scoring import scored

log = logging.getLogger(__name__)


def export_and_measure(ctx, state, sets: tuple, acc: dict, curves: dict, report: dict, params: int, macs: int,
                       source: str) -> None:
    """Export the deployable artifacts of `state` (runner.run.RunState) and measure each in its own
    runtime: adds a Row per format to `acc`, a CED curve to `curves`, the paths (or errors) to `report`."""
    from atpn_edge.export import FORMATS, export_model
    from atpn_edge.predictors import open_predictor

    recipe, out, model, graph, spec = ctx.recipe, ctx.out, state.model, state.graph, state.spec
    calib_images = state.calib_images
    precision = recipe.precision
    verify_images = stack_images(Head(sets[0], 8))
    if calib_images is None and precision == "int8":
        calib_images = calibration_images(ctx, 256)
    for fmt in recipe.evaluate.formats:
        if precision not in FORMATS[fmt].precisions:  # ONNX has no fp16 here, ExecuTorch only fp32 and int8
            log.info("%s has no %s export here: skipping it for %s", fmt, precision, recipe.name)
            continue
        path = out / f"{recipe.name}{FORMATS[fmt].suffix}"
        if FORMATS[fmt].int8_from_pt2e and graph is not None:
            lowering = "litert-torch" if fmt == "tflite" else "ExecuTorch XNNPACK"
            source_model, how = graph, (f"PT2E graph -> {lowering} (int8, input conv float)" if spec.float_input_conv
                                         else f"PT2E graph -> {lowering} (fully int8)")
            kwargs = {"float_model": model, "quant_spec": spec, "allow_float_ops": ()}
        elif precision == "int8":
            # ONNX from PT2E graphs is not exported: ORT's static QDQ quantizer, with the calibration method
            # matching the recipe's observer, on the same number of crops, non-face ones included: calibrated on
            # face crops alone its uint8 activations clipped on non-face crops (the demo ATPN's face score moved
            # by 0.48 on one and the export check failed), where the PT2E graph's did not.
            source_model, how = model, "float model -> onnxruntime static QDQ (training crops, faces and non-faces)"
            kwargs = {"calib_images": calibration_images(ctx, len(calib_images), faces_only=False), "quant_spec": spec}
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
        predictor = open_predictor(path, threads=1)
        variant = f"{recipe.name}_{fmt}"
        acc[variant], nmes = scored(predictor.predict, sets, variant, "deployed", fmt, acc["float"], ctx.progress,
                                    params=params, macs=macs, size_bytes=result.size_bytes, artifact=str(path),
                                    route=how, int8_check=(result.verification or {}).get("int8"))
        curves[f"{recipe.name} ({fmt})"] = nmes
        report["artifacts"][f"{fmt}"] = str(path)
