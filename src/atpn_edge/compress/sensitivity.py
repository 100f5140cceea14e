"""Per-layer quantization sensitivity: how much NME changes when one unit is (not) quantized.

    rows = sensitivity(model, calib_images, eval_samples, spec)            # list of dicts, worst first
    write_sensitivity(rows, "out/sensitivity")                             # .json, .md, .png

A unit is a block of the network (a stem conv, an inverted residual block, a head's layer, the
cheap heatmap): what a user can name in `keep_float_modules`. Two numbers per unit, relative to
the float model's NME on the same images:
    all_but   NME with every unit quantized except this one (what keeping it in float buys)
    only      NME with only this unit quantized (its own damage; glue ops at the top level of the
              model's forward stay quantized in both)
The graph is exported once with a dynamic batch so calibration and evaluation run in batches.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from atpn_edge.compress import pt2e

log = logging.getLogger(__name__)

UNIT_TYPES = ("ConvBNReLU", "InvertedResidual", "DepthwiseSeparable", "GlobalDepthwiseConv", "CheapHeatmap", "Linear")


def quant_units(model: nn.Module) -> list[str]:
    """Module names of the top-most blocks of known types (fallback: every Conv2d and Linear)."""
    units: list[str] = []
    for name, m in model.named_modules():
        if not name or any(name.startswith(u + ".") for u in units):
            continue
        if type(m).__name__ in UNIT_TYPES or (isinstance(m, (nn.Conv2d, nn.Linear))):
            units.append(name)
    return units


def export_dynamic(model: nn.Module, example: torch.Tensor) -> torch.fx.GraphModule:
    names = pt2e.model_output_names(model.eval(), example[:1])
    batch = torch.export.Dim("batch", min=1, max=4096)
    example = example[:2] if example.shape[0] >= 2 else example[:1].repeat(2, 1, 1, 1)
    exported = torch.export.export(pt2e.NamedOutputs(model.eval(), names), (example,), dynamic_shapes=({0: batch},),
                                   strict=False)
    gm = pt2e.fold_parameter_ops(exported.module())
    gm.meta["atpn_edge"] = {"output_names": names, "model_name": getattr(model, "name", "model"),
                            "model_options": dict(getattr(model, "options", {})), "input_shape": (1, *example.shape[1:])}
    return gm


def _nme(graph_or_model, x_eval: torch.Tensor, gt: np.ndarray, names: tuple[str, ...] | None, batch: int = 64) -> float:
    from atpn_edge.metrics import nme

    preds = []
    with torch.no_grad():
        for i in range(0, len(x_eval), batch):
            out = graph_or_model(x_eval[i : i + batch])
            out = out if isinstance(out, dict) else dict(zip(names, out))
            preds.append(out["landmarks"].numpy())
    return float(np.mean(nme(np.concatenate(preds), gt)))


def quantize_dynamic_graph(gm: torch.fx.GraphModule, x_calib: torch.Tensor, spec: pt2e.QuantSpec,
                           batch: int = 32) -> torch.fx.GraphModule:
    prepared = pt2e.prepare_ptq(copy.deepcopy(gm), x_calib[:1], spec)
    with torch.no_grad():
        for i in range(0, len(x_calib), batch):
            prepared(x_calib[i : i + batch])
    return pt2e.convert(prepared)


def sensitivity(
    model: nn.Module,
    calib: torch.Tensor,
    eval_images: torch.Tensor,
    eval_landmarks: np.ndarray,
    spec: pt2e.QuantSpec,
    modes: tuple[str, ...] = ("all_but", "only"),
    units: list[str] | None = None,
    progress: bool = True,
) -> dict:
    """-> {"float_nme", "int8_nme", "rows": [{"unit", "all_but_nme", "only_nme", "gain", "damage"}]}.

    gain = int8 NME - NME with the unit kept in float (positive: keeping it float helps);
    damage = NME with only the unit quantized - float NME. Rows sorted by gain (or damage).
    """
    units = units or quant_units(model)
    gm = export_dynamic(model, calib[:2])
    names = tuple(gm.meta["atpn_edge"]["output_names"])
    float_nme = _nme(model.eval(), eval_images, eval_landmarks, None)
    int8_nme = _nme(quantize_dynamic_graph(gm, calib, spec), eval_images, eval_landmarks, names)
    rows = []
    jobs = [(u, m) for u in units for m in modes]
    for unit, mode in tqdm(jobs, desc="sensitivity", unit="run", disable=not progress, leave=False):
        keep = (unit,) if mode == "all_but" else tuple(u for u in units if u != unit)
        q_spec = dataclasses.replace(spec, skip_modules=tuple(dict.fromkeys(spec.skip_modules + keep)))
        value = _nme(quantize_dynamic_graph(gm, calib, q_spec), eval_images, eval_landmarks, names)
        row = next((r for r in rows if r["unit"] == unit), None)
        if row is None:
            row = {"unit": unit}
            rows.append(row)
        row[f"{mode}_nme"] = value
    for row in rows:
        if "all_but_nme" in row:
            row["gain"] = int8_nme - row["all_but_nme"]
        if "only_nme" in row:
            row["damage"] = row["only_nme"] - float_nme
    key = "gain" if "all_but" in modes else "damage"
    rows.sort(key=lambda r: -r.get(key, 0.0))
    return {"float_nme": float_nme, "int8_nme": int8_nme, "n_images": int(len(eval_images)),
            "calibration_images": int(len(calib)), "modes": list(modes), "rows": rows}


def write_sensitivity(result: dict, stem: str | os.PathLike) -> dict[str, Path]:
    """JSON, Markdown table and a bar chart PNG (relative NME change per unit)."""
    from atpn_edge.io import atomic_path, write_json, write_text

    stem = Path(stem)
    write_json(stem.with_suffix(".json"), result)
    f, q = result["float_nme"], result["int8_nme"]
    lines = [f"# Quantization sensitivity ({result['n_images']} images)", "",
             f"float NME {f:.5f}, all-int8 NME {q:.5f} ({q / f - 1:+.2%})", "",
             "| unit | NME, all int8 but this unit | gain vs all int8 | NME, only this unit int8 | damage vs float |",
             "|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['unit']} | {r.get('all_but_nme', float('nan')):.5f} | {r.get('gain', float('nan')) / f:+.3%} | "
                     f"{r.get('only_nme', float('nan')):.5f} | {r.get('damage', float('nan')) / f:+.3%} |")
    write_text(stem.with_suffix(".md"), "\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    fig, ax = plt.subplots(figsize=(8, max(3, 0.28 * len(rows) + 1)))
    y = np.arange(len(rows))
    if "gain" in rows[0]:
        ax.barh(y - 0.2, [100 * r["gain"] / f for r in rows], height=0.4, label="kept in float: NME gain vs all-int8 (% of float NME)")
    if "damage" in rows[0]:
        ax.barh(y + 0.2, [100 * r["damage"] / f for r in rows], height=0.4, label="only this unit int8: NME rise vs float (%)")
    ax.set_yticks(y, [r["unit"] for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="k", lw=0.5)
    ax.set_xlabel("% of float NME")
    ax.set_title(f"Per-unit int8 sensitivity (all-int8: {q / f - 1:+.2%} NME)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    png = stem.with_suffix(".png")
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return {"json": stem.with_suffix(".json"), "md": stem.with_suffix(".md"), "png": png}
