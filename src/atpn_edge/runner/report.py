"""A recipe run's report: the headline (what to ship), report.json/.md/.png and the CED plot."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from atpn_edge.io import read_json_or_none, write_json, write_text
from atpn_edge.measurement import Row


def headline(name: str, acc: dict[str, Row]) -> dict:
    """The number that counts: a deployed artifact measured in its runtime (.tflite first) when there is one,
    else the recipe's model in PyTorch; against the control too when the recipe trained one (what the
    compression itself costs)."""
    deployed = sorted((r for r in acc.values() if r.role == "deployed"),
                      key=lambda r: ("tflite", "onnx").index(r.measured_on) if r.measured_on in ("tflite", "onnx") else 2)
    row = deployed[0] if deployed else acc.get(name)
    if row is None:
        return {}
    reference = acc["float"]
    out = {"variant": row.label, "measured_on": row.measured_on, "nme": row.nme, "nme_drop_rel": row.nme_drop_rel,
           "pose_mae": row.pose_mae, "pose_mae_rise": None if row.pose_mae is None or reference.pose_mae is None
           else row.pose_mae - reference.pose_mae}
    controls = [r for r in acc.values() if r.role == "control"]
    if controls:
        control = controls[-1]  # the unpruned control when there is one (scored last), else QAT's float control
        out["control"] = {"variant": control.label, "nme": control.nme, "nme_vs_control_rel": row.nme / control.nme - 1,
                          "pose_mae_vs_control": None if row.pose_mae is None or control.pose_mae is None
                          else row.pose_mae - control.pose_mae}
    return out


def float_reference(ckpt: dict, reference) -> dict:
    """The starting checkpoint's training budget beside the one the recipe's numbers were measured from
    (compress.recipe.FloatReference); `short`: it saw fewer training crops, so its vs-float numbers flatter."""
    config = ckpt.get("train_config") or {}
    epochs = (ckpt.get("meta") or {}).get("epoch", config.get("epochs"))  # the epoch the checkpoint was saved at
    samples = config.get("train_samples")
    crops = int(epochs) * int(samples) if epochs and samples else None
    stated = reference.crops > 0
    return {"epochs": epochs, "train_samples": samples, "data": config.get("data"), "crops": crops,
            "recipe_epochs": reference.epochs if stated else None,
            "recipe_train_samples": reference.train_samples if stated else None,
            "short": bool(stated and crops is not None and crops < reference.crops)}


def _float_reference_line(ref: dict) -> str:
    if ref.get("crops") is None:
        line = "Float reference: the checkpoint records no training budget"
    else:
        data = f" {ref['data']}" if ref.get("data") else ""
        line = f"Float reference: trained {ref['epochs']} epochs x {ref['train_samples']:,}{data} crops"
    if ref.get("recipe_epochs"):
        line += f"; this recipe's published numbers start from {ref['recipe_epochs']} x {ref['recipe_train_samples']:,}"
    line += "."
    if ref.get("short"):
        line += (" **Fewer training crops than the recipe's reference: the fine-tuning also finishes this model's "
                 "training, so every vs-float number looks better than it is; the control row is the honest one.**")
    return line


def write_report(report: dict, out: Path, curves: dict | None = None) -> None:
    """report.json, report.md and report.png (NME per variant, float line) in `out`, atomically."""
    write_json(out / "report.json", report)
    acc = report["accuracy"]
    pm = report["params_macs"]
    lines = [f"# Compression report: {report['recipe']['name']}", "",
             report["recipe"].get("description", "") or "", "",
             f"Checkpoint `{report['checkpoint']}`, data `{report['data']}`, evaluated on "
             f"{report['evaluation']['n_images']} {report['evaluation']['split']} images (the same for every row).", "",
             *([_float_reference_line(report["float_reference"]), ""] if "float_reference" in report else []),
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
        control = h.get("control")
        versus = (f"**{control['nme_vs_control_rel']:+.2%} vs its control** `{control['variant']}`, "
                  f"{h['nme_drop_rel']:+.2%} vs float" if control else f"{h['nme_drop_rel']:+.2%} vs float")
        lines += ["", f"**What to ship:** `{h['variant']}`, measured on {h['measured_on']}: NME {h['nme']:.5f} "
                  f"({versus})" + (f", pose MAE {h['pose_mae_rise']:+.3f} deg vs float" if h.get("pose_mae_rise") is not None
                                   else "") + "."]
        for label, control in acc.items():
            if control.get("role") == "control":
                what = control.get("note", "the same training without the compression")
                lines += ["", f"Against the control `{label}` ({what}; NME {control['nme']:.5f}, "
                          f"{control['nme_drop_rel']:+.2%} vs float): {h['nme'] / control['nme'] - 1:+.2%}. Fine-tuning "
                          "also trains an under-trained float model further, so this, not the drop against float, is "
                          "what the compression itself costs."]
    lines += ["", "Rows measured on `pytorch` for int8 recipes are the simulated PT2E graph (quantize/dequantize "
              "in float); rows on `tflite` / `onnx` / `executorch` are the exported artifact run in its own runtime."]
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
    plot_report(acc, out / "report.png", report["recipe"]["name"])
    if curves:
        from atpn_edge.metrics import plot_ced

        plot_ced(curves, str(out / "ced.png"))


def plot_report(acc: dict, path: Path, title: str) -> None:
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
