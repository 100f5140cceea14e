#!/usr/bin/env python
"""fp32 vs int8 latency (LiteRT / ORT, 1 thread, median of 300 after 50 warm-up), sizes, int8 routes compared.

Usage: .venv/bin/python benchmarks/int8_export_latency.py atpn-lite atpn   (random-init weights, random crops;
latency is what matters here, the accuracy columns only show gross breakage). Writes $OUT/measure.json.
The ai-edge-quantizer route is exported with verify=False so that its (broken) numbers can be shown.
"""
import sys, time, os, json, logging, numpy as np, torch
torch.set_num_threads(1)
from atpn_edge.models import build_model
from atpn_edge.export import export_model
from atpn_edge.runtime.loader import load_predictor
from atpn_edge.runtime.base import preprocess
out = os.environ.get("OUT", "runs/int8_latency"); os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
calib = rng.integers(0, 256, (32, 112, 112, 3), dtype=np.uint8)
held = rng.integers(0, 256, (16, 112, 112, 3), dtype=np.uint8)
rows = {}
for name in sys.argv[1:]:
    torch.manual_seed(0)
    m = build_model(name).eval()
    with torch.no_grad():
        ref = {k: v.numpy() for k, v in m(torch.from_numpy(preprocess(held))).items()}
    arts = {
        "tflite fp32": export_model(m, "tflite", "fp32", f"{out}/{name}_fp32.tflite"),
        "tflite int8 pt2e": export_model(m, "tflite", "int8", f"{out}/{name}_int8.tflite", calib_images=calib),
        "tflite int8 aeq": export_model(m, "tflite", "int8", f"{out}/{name}_int8_aeq.tflite", calib_images=calib, quantizer="ai-edge-quantizer", verify=False),
        "onnx fp32": export_model(m, "onnx", "fp32", f"{out}/{name}_fp32.onnx"),
        "onnx int8 qdq": export_model(m, "onnx", "int8", f"{out}/{name}_int8.onnx", calib_images=calib),
    }
    preds = {k: load_predictor(r.path, threads=1) for k, r in arts.items()}
    x = preprocess(held[:1])
    lat = {k: [] for k in preds}
    for rnd in range(2):  # interleaved rounds: noisy shared CPU, compare ratios within a round
        for k, p in preds.items():
            for _ in range(50): p.run_normalized(x)
            ts = []
            for _ in range(300):
                t = time.perf_counter(); p.run_normalized(x); ts.append(time.perf_counter() - t)
            lat[k].append(float(np.median(ts) * 1e3))
    for k, p in preds.items():
        got = p.predict(held)
        d = np.abs(got["landmarks"] - ref["landmarks"])
        rows[f"{name} {k}"] = {"size_kib": round(arts[k].size_bytes / 1024), "median_ms_rounds": [round(v, 3) for v in lat[k]],
                               "landmarks_vs_float_max": float(d.max()), "landmarks_vs_float_mean": float(d.mean()),
                               "ops": (arts[k].verification or {}).get("ops")}
        print(f"{name:10s} {k:18s} {rows[f'{name} {k}']['size_kib']:6d} KiB  ms {rows[f'{name} {k}']['median_ms_rounds']}  "
              f"|lm - float| max {d.max():.2e} mean {d.mean():.2e}", flush=True)
json.dump(rows, open(f"{out}/measure.json", "w"), indent=1)
