"""`make demo`: the whole pipeline on the embedded synthetic data, ending in runs/demo/report.md/.json.

Each stage skips work that is already finished (a complete float run is reused, an interrupted one
resumes), so an interrupted demo continues where it stopped.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import time
from pathlib import Path

from atpn_edge.bench.report import fmt
from atpn_edge.io import write_json, write_text

log = logging.getLogger(__name__)

RECIPE = Path(__file__).resolve().parent / "recipes" / "train_demo.yaml"  # shipped in the package
QUICK_OVERRIDES = {"epochs": 1, "train_samples": 256, "val_samples": 64, "batch_size": 32}
TEST_SAMPLES = 1000


def _train_float(out: Path, quick: bool) -> tuple[Path, dict]:
    from atpn_edge.io import read_json_or_none
    from atpn_edge.train.config import load_config, same_training
    from atpn_edge.train.trainer import train

    config = load_config(RECIPE, QUICK_OVERRIDES if quick else None)
    run_dir = out / "float"
    log_json = read_json_or_none(run_dir / "log.json")
    same_run = log_json is not None and same_training(log_json.get("config", {}), config.to_dict())
    if same_run and len(log_json["epochs"]) >= config.epochs:
        log.info("float model already trained in %s: reusing it", run_dir)
    else:
        train(config, run_dir, resume=same_run and (run_dir / "last.pt").is_file())
    return run_dir / "best.pt", config.to_dict()


def _evaluate_checkpoint(checkpoint: Path, num_test: int, cache_dir: str) -> tuple[dict, object]:
    from atpn_edge.evaluate import evaluate
    from atpn_edge.train.checkpoint import load_checkpoint
    from atpn_edge.data.registry import open_eval_set
    from atpn_edge.train.predict import torch_predict_fn

    model, meta = load_checkpoint(checkpoint)
    test = open_eval_set("synthetic", "test", num_test, int(meta["meta"]["num_landmarks"]), int(meta["meta"]["input_size"]), cache_dir)
    scores, nmes = evaluate(torch_predict_fn(model), test, progress=True)
    return scores.to_json(), nmes


@contextlib.contextmanager
def _stage(seconds: dict[str, float], key: str, title: str):
    """Log the stage's header and record how long it took under seconds[key]."""
    log.info("== demo: %s", title)
    started = time.perf_counter()
    yield
    seconds[key] = time.perf_counter() - started


def _exports(checkpoint: Path, out: Path, eval_images: int) -> dict[str, dict]:
    # Scored on the same test crops as the float and int8 rows of the report.
    """fp32 TFLite, ONNX and ExecuTorch of the float model, each verified and scored in its runtime (reused when done)."""
    from atpn_edge.export import FORMATS
    from atpn_edge.export.commands import export_artifact
    from atpn_edge.io import read_json_or_none

    out.mkdir(parents=True, exist_ok=True)
    reports = {}
    for format_name in ("tflite", "onnx", "executorch"):
        path = out / f"atpn_fp32{FORMATS[format_name].suffix}"
        report = read_json_or_none(str(path) + ".accuracy.json")
        expected_data = f"synthetic test, {eval_images} crops"
        if not (path.is_file() and report and report.get("source") == str(checkpoint) and report.get("eval_data") == expected_data):
            report = export_artifact(str(checkpoint), format_name, "fp32", str(path), eval_images=eval_images, eval_split="test")
        reports[f"fp32_{format_name}"] = report
    return reports


def _predict_photo(checkpoint: Path, out: Path) -> dict | None:
    """Predict on a real photograph (scikit-image's public-domain astronaut portrait)."""
    import importlib.util

    from atpn_edge.predict import predict_images
    from atpn_edge.train.checkpoint import load_checkpoint
    from atpn_edge.train.predict import torch_predict_fn

    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return None
    photo = Path(list(spec.submodule_search_locations)[0]) / "data" / "astronaut.png"
    if not photo.is_file():
        return None
    model, _ = load_checkpoint(checkpoint)
    return predict_images(torch_predict_fn(model), [str(photo)], out_dir=str(out))["images"][0]


def run_demo(out: str | Path = "runs/demo", quick: bool = False) -> Path:
    """train -> PTQ (TFLite + ONNX + ExecuTorch int8) -> fp32 exports -> bench -> track -> compare -> report.md/.json."""
    from atpn_edge.metrics import plot_ced

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    n_eval = 64 if quick else TEST_SAMPLES
    seconds: dict[str, float] = {}

    with _stage(seconds, "train_and_eval", "train the float ATPN"):
        checkpoint, train_config = _train_float(out, quick)
        test_metrics, nmes = _evaluate_checkpoint(checkpoint, n_eval, train_config["cache_dir"])
        plot_ced({"float (PyTorch)": nmes}, out / "ced.png")
    cache_dir = train_config["cache_dir"]
    with _stage(seconds, "ptq", "post-training int8 quantization (recipes/ptq_int8.yaml), TFLite + ONNX + ExecuTorch int8, "
                                "scored in their runtimes"):
        from atpn_edge.runner.run import run_recipe

        ptq = run_recipe(RECIPE.parent / "ptq_int8.yaml", checkpoint, out / "compress" / "ptq_int8",
                         eval_samples=n_eval, cache_dir=cache_dir)
    with _stage(seconds, "export", "float32 exports (TFLite, ONNX, ExecuTorch), verified against PyTorch"):
        exports = _exports(checkpoint, out / "export", eval_images=n_eval)
    artifacts = _artifacts(out, checkpoint, ptq, exports)
    with _stage(seconds, "bench", "benchmark: size, MACs, latency (1 and 2 threads), memory, accuracy"):
        bench = _bench(out, checkpoint, artifacts, quick, n_eval, cache_dir)
        artifacts["bench_json"] = _relative(bench["files"]["json"])
    with _stage(seconds, "track", "tracking on a synthetic video: detect once vs detect every frame (int8 TFLite)"):
        from atpn_edge.track.run import run_track

        track = run_track(artifacts.get("int8_tflite", artifacts["fp32_tflite"]), out / "track",
                          synthetic_frames=40 if quick else 150, write_video=True)
        artifacts["track_json"] = _relative(out / "track" / "summary.json")
    with _stage(seconds, "compare", "light models compared (budget 'demo'): ATPN, ATPN-lite, PFLD 0.25x, MediaPipe"):
        from atpn_edge.bench.compare import run_compare

        compare = run_compare(out / "compare", budget="smoke" if quick else "demo", cache_dir=cache_dir)
        artifacts["compare_md"] = _relative(out / "compare" / "compare.md")
    photo = _predict_photo(checkpoint, out / "predict")
    if photo and photo.get("annotated"):
        artifacts["predict_photo_png"] = _relative(photo["annotated"])

    report = {
        "artifacts": artifacts,
        "accuracy": _accuracy_rows(test_metrics, ptq, exports),
        "test_set": f"synthetic test split (seed 2), {test_metrics['n_samples']} crops",
        "train_config": train_config,
        "bench_rows": bench.get("rows", []),
        "bench_profile": bench.get("profile"),
        "track": {k: track.get(k) for k in ("frames", "detector_calls", "lost_rate", "ms_per_frame", "nme",
                                             "pose_mae", "baseline_detect_every_frame", "speedup_median")},
        "compare": {"budget": compare.get("budget"), "verdict": compare.get("verdict", []),
                    "rows": [r for r in compare.get("rows", []) if r.get("status") == "ok"]},
        "predict_photo": photo,
        "export_errors": dict(ptq.get("export_errors") or {}),
        "host": bench.get("host") or {"machine": platform.machine(), "python": platform.python_version()},
        "stage_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "seconds": round(time.perf_counter() - started, 1),
        "quick": quick,
    }
    write_json(out / "report.json", report)
    write_text(out / "report.md", render_report(report, test_metrics))
    return out / "report.md"


def _relative(path) -> str:
    """A path as the report writes it: relative to the working directory when under it."""
    path, root = Path(path).resolve(), Path.cwd()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _artifacts(out: Path, checkpoint: Path, ptq: dict, exports: dict) -> dict[str, str]:
    """The report's artifact paths. An export that failed verification is reported (the PTQ report's
    export_errors), not fatal: the demo goes on with the artifacts that exist."""
    candidates = {
        "float_checkpoint": checkpoint,
        "ptq_int8": ptq["artifacts"].get("ptq_int8"),
        "fp32_tflite": exports["fp32_tflite"].get("artifact"),
        "int8_tflite": ptq["artifacts"].get("tflite"),
        "fp32_onnx": exports["fp32_onnx"].get("artifact"),
        "int8_onnx": ptq["artifacts"].get("onnx"),
        "fp32_pte": exports["fp32_executorch"].get("artifact"),
        "int8_pte": ptq["artifacts"].get("executorch"),
        "ptq_report": out / "compress" / "ptq_int8" / "report.md",
        "ced_png": out / "ced.png",
    }
    for error in (ptq.get("export_errors") or {}).values():
        log.error("demo: int8 export failed and is left out: %s", error)
    return {k: _relative(v) for k, v in candidates.items() if v is not None}


def _bench(out: Path, checkpoint: Path, artifacts: dict[str, str], quick: bool, n_eval: int, cache_dir: str) -> dict:
    """The checkpoint, every artifact and MediaPipe in one interleaved run, with the MobileNetV2 reference and
    the per-block profile (skipped when quick)."""
    from atpn_edge.bench.entries import PEER_MEDIAPIPE
    from atpn_edge.bench.harness import run_bench

    models = [str(checkpoint)] + [artifacts[k] for k in ("fp32_tflite", "int8_tflite", "fp32_onnx", "int8_onnx",
                                                         "fp32_pte", "int8_pte") if k in artifacts]
    return run_bench(models + [PEER_MEDIAPIPE], out / "bench", threads=(1,) if quick else (1, 2),
                     num_images=n_eval, measure_memory=not quick, cache_dir=cache_dir,
                     reference=None if quick else "mobilenetv2", profile=not quick)


def _accuracy_rows(test_metrics: dict, ptq: dict, exports: dict) -> dict[str, dict]:
    """variant -> the report's accuracy row: float (PyTorch), the PTQ program and its int8 artifacts, the fp32 exports."""
    accuracy = {"float": _accuracy_row(test_metrics, "pytorch", 0.0)}
    for variant, key in (("ptq_int8", "ptq_int8"), ("int8_tflite", "ptq_int8_tflite"), ("int8_onnx", "ptq_int8_onnx"),
                         ("int8_executorch", "ptq_int8_executorch")):
        if key in ptq["accuracy"]:
            accuracy[variant] = ptq["accuracy"][key]
    for variant, report in exports.items():
        if "accuracy" in report:
            row = report["accuracy"]["artifact"]
            accuracy[variant] = _accuracy_row(row, row["measured_on"], report.get("nme_drop_rel"))
    return accuracy


def _accuracy_row(m: dict, measured_on: str, drop) -> dict:
    pose = m.get("pose_mae") or {}
    return {
        "nme": m["nme"], "fr_10": m["fr_10"], "auc_10": m["auc_10"],
        "pose_mae": pose.get("mean") if isinstance(pose, dict) else pose,
        "face_score_acc": m.get("face_score_acc"), "box_iou": m.get("box_iou"),
        "nme_drop_rel": drop, "measured_on": measured_on, "n_images": m.get("n_images"),
    }


def _summary(report: dict) -> list[str]:
    """The lines a mobile engineer reads first: what int8 costs and buys here, against float and MediaPipe."""
    from atpn_edge.bench.compare import find_row, int8_speed_lines, median_ms

    rows = report.get("bench_rows", [])
    acc = report["accuracy"]
    lines = ["## In short", ""]
    f32_row = find_row(rows, "atpn", "float", runtime="litert") or {}
    i8_row = find_row(rows, "atpn", "int8", runtime="litert") or {}
    f32, i8 = median_ms(f32_row), median_ms(i8_row)
    mp = median_ms(find_row(rows, "mediapipe-face-landmark", "fp16 weights", runtime="litert"))
    ort32 = median_ms(find_row(rows, "atpn", "float", runtime="onnxruntime"))
    ort8 = median_ms(find_row(rows, "atpn", "int8", runtime="onnxruntime"))
    et32 = median_ms(find_row(rows, "atpn", "float", runtime="executorch"))
    et8 = median_ms(find_row(rows, "atpn", "int8", runtime="executorch"))
    if "int8_tflite" in acc and i8_row.get("size_bytes") and f32_row.get("size_bytes"):
        lines.append(f"- **int8 TFLite**: {i8_row['size_bytes'] / 1024:.0f} KiB ({f32_row['size_bytes'] / i8_row['size_bytes']:.1f}x "
                     f"smaller than fp32), NME {acc['int8_tflite']['nme']:.2%} vs float {acc['float']['nme']:.2%} "
                     f"({acc['int8_tflite']['nme_drop_rel']:+.1%}), measured in LiteRT.")
    if f32 and i8:
        lines.append(f"- **Latency, LiteRT + XNNPACK, 1 thread, same run**: fp32 {f32:.2f} ms, int8 {i8:.2f} ms "
                     f"(int8 {f32 / i8:.2f}x the speed of fp32)" + (f"; MediaPipe face landmark {mp:.2f} ms (ATPN int8 = "
                                                                    f"{i8 / mp:.2f}x its latency)" if mp else "") + ".")
    if ort32 and ort8:
        lines.append(f"- **ONNX Runtime CPU, 1 thread**: fp32 {ort32:.2f} ms, int8 {ort8:.2f} ms (int8 {ort32 / ort8:.2f}x the speed).")
    if et32 and et8:
        lines.append(f"- **ExecuTorch + XNNPACK (.pte), 1 thread**: fp32 {et32:.2f} ms, int8 {et8:.2f} ms "
                     f"(int8 {et32 / et8:.2f}x the speed).")
    lines += [f"- {line}" for line in int8_speed_lines(rows, report.get("host", {}), 1)[1:]]
    real = {label: find_row(rows, model, variant, runtime=runtime) or {} for label, model, variant, runtime in (
        ("float", "atpn", "float", "torch"), ("int8 .tflite", "atpn", "int8", "litert"),
        ("MediaPipe face landmark", "mediapipe-face-landmark", "fp16 weights", "litert"))}
    if real["float"].get("real_nme") is not None:
        lines.append(f"- **Real photographs** ({real['float'].get('real_n_images')} human-annotated faces, `--data real`, "
                     "68 points, tight-box crops; evaluation only): " + ", ".join(
                         f"{label} NME {r['real_nme']:.1%}" for label, r in real.items() if r.get("real_nme") is not None)
                     + f" (synthetic test: float {real['float'].get('nme') or float('nan'):.1%}).")
    for format_name, error in (report.get("export_errors") or {}).items():
        lines.append(f"- **int8 {format_name} export failed its verification and is left out**: {error}")
    lines.append("")
    return lines


def _compare_section(compare: dict) -> list[str]:
    """The demo's comparison: light models trained on one small budget, LiteRT latency at 1 thread."""
    rows = [r for r in compare.get("rows", []) if r.get("threads") == 1]
    if not rows:
        return []
    budget = compare.get("budget") or {}
    lines = [
        "## Light models compared",
        "",
        f"Every model trained by the same trainer on {budget.get('train_samples')} synthetic samples x "
        f"{budget.get('epochs')} epochs (budget '{budget.get('name')}', a fraction of the demo ATPN's; `make compare` "
        "trains all seven models on a larger one); LiteRT + XNNPACK, 1 thread, one interleaved run. Full table: "
        "[compare/compare.md](compare/compare.md).",
        "",
        "| model | variant | size | median ms | NME | pose MAE |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        size = row.get("size_bytes")
        lines.append(f"| {row['model']}{' (approx.)' if row.get('approximate') else ''} | {row.get('variant')} | "
                     f"{fmt(size / 1024 if size else None, '.0f')} KiB | {fmt((row.get('latency_ms') or {}).get('median'), '.2f')} | "
                     f"{fmt(row.get('nme'), '.2%')} | {fmt(row.get('pose_mae'), '.2f')} |")
    lines += ["", *[f"- {v}" for v in compare.get("verdict", [])], "",
              "![latency vs NME](compare/compare_latency_nme.png)", ""]
    return lines


def render_report(report: dict, test_metrics: dict) -> str:
    acc = report["accuracy"]
    pose = test_metrics["pose_mae"]
    lines = [
        "# atpn-edge demo report",
        "",
        f"ATPN trained on synthetic faces, compressed, exported and benchmarked. Accuracy on the held-out "
        f"{report['test_set']}, the same crops for every row; every number is measured in the "
        "runtime named in `measured on`.",
        "",
        *_summary(report),
        "## Accuracy",
        "",
        "| variant | measured on | NME | drop vs float | FR@0.1 | AUC@0.1 | pose MAE (deg) | face-score acc |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant, a in acc.items():
        lines.append(
            f"| {variant} | {a.get('measured_on')} | {fmt(a.get('nme'), '.2%')} | {fmt(a.get('nme_drop_rel'), '+.2%')} | "
            f"{fmt(a.get('fr_10'), '.2%')} | {fmt(a.get('auc_10'), '.3f')} | {fmt(a.get('pose_mae'), '.2f')} | "
            f"{fmt(a.get('face_score_acc'), '.3f')} |"
        )
    lines += [
        "",
        f"Float pose MAE by angle: yaw {pose.get('yaw', float('nan')):.2f}, pitch {pose.get('pitch', float('nan')):.2f}, "
        f"roll {pose.get('roll', float('nan')):.2f} degrees.",
        "",
        "![cumulative error curve](ced.png)",
        "",
        "## Size and speed",
        "",
        f"Host: {report['host'].get('cpu', report['host'].get('machine', ''))} (flags "
        f"{', '.join(report['host'].get('cpu_flags') or []) or '-'}); full table with p90, memory and "
        f"peak share: [bench/bench.md](bench/bench.md)"
        + ("; latency per block, fp32 and int8 side by side: [bench/profile.md](bench/profile.md)."
           if (report.get("bench_profile") or {}).get("files") else "."),
        "",
        "| model | variant | runtime | threads | size | median ms | NME (synthetic) | NME (real photos) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report["bench_rows"]:
        lat = row.get("latency_ms") or {}
        size = row.get("size_bytes")
        lines.append(
            f"| {row.get('model')}{' (untrained latency reference)' if row.get('reference') else ''} | {row.get('variant')} | {row.get('runtime')} | {row.get('threads')} | "
            f"{fmt(size / 1024 if size else None, '.0f')} KiB | {fmt(lat.get('median'), '.2f')} | {fmt(row.get('nme'), '.2%')} | "
            f"{fmt(row.get('real_nme'), '.2%')} |"
        )
    lines += ["", "![latency vs NME](bench/bench_latency_nme.png) ![size vs NME](bench/bench_size_nme.png)", ""]
    if (report.get("bench_profile") or {}).get("files"):
        lines += ["![latency per block](bench/profile.png)", ""]
    lines += _compare_section(report.get("compare") or {})
    tr = report["track"]
    base = tr.get("baseline_detect_every_frame") or {}
    lines += [
        "## Tracking (int8 TFLite, synthetic video)",
        "",
        "| pipeline | ms/frame median | NME | detector calls |",
        "|---|---|---|---|",
        f"| track (detect when lost) | {fmt((tr.get('ms_per_frame') or {}).get('median'), '.2f')} | {fmt(tr.get('nme'), '.2%')} | "
        f"{tr.get('detector_calls')} / {tr.get('frames')} |",
        f"| detect every frame | {fmt((base.get('ms_per_frame') or {}).get('median'), '.2f')} | {fmt(base.get('nme'), '.2%')} | "
        f"{tr.get('frames')} / {tr.get('frames')} |",
        "",
    ]
    photo = report.get("predict_photo")
    if photo and photo.get("annotated"):
        name = Path(photo["annotated"]).name
        lines += ["## A real photograph", "", f"{len(photo['faces'])} face(s) found by the offline detector; "
                  "landmarks and pose from the float model trained only on synthetic faces:", "",
                  f"![prediction on a real photograph](predict/{name})", ""]
    lines += [
        "## Artifacts",
        "",
        *[f"- `{k}`: `{v}`" for k, v in report["artifacts"].items()],
        "",
        f"Stage seconds: {report['stage_seconds']}; total {report['seconds']:.0f} s.",
        "",
    ]
    return "\n".join(lines)
