"""The bench harness end to end on a tiny random-init model: rows of docs/INTERFACES.md's schema, MAC
cross-check against the .tflite graph, accuracy drop against the float row, Markdown and PNGs,
failed rows instead of crashes, the CLI, peak measurement and peak memory."""

import json
from pathlib import Path

import pytest
import torch

from atpn_edge.bench.entries import PEER_MEDIAPIPE, BenchConfig, parse_exports
from atpn_edge.bench.harness import run_bench
from atpn_edge.bench.timing import TimingConfig
from atpn_edge.errors import UserError

torch.set_num_threads(1)

SCHEMA_KEYS = {"model", "variant", "format", "runtime", "threads", "params", "macs", "size_bytes", "latency_ms", "nme",
               "nme_drop_rel", "pose_mae"}


@pytest.fixture(scope="module")
def bench_result(tmp_path_factory):
    from atpn_edge.models import build_model
    from atpn_edge.train.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("bench")
    (root / "lite").mkdir()
    torch.manual_seed(0)
    save_checkpoint(root / "lite" / "best.pt", build_model("atpn-lite", num_landmarks=98))
    config = BenchConfig(num_images=24, threads=(1, 2), timing=TimingConfig(3, 10, 2, 0.02),
                         export=("onnx:fp32", "tflite:fp32"), cache_dir=str(root / "cache"), progress=False,
                         reference="atpn-lite", profile=True)
    result = run_bench([str(root / "lite" / "best.pt"), str(root / "missing.tflite")], root / "out", config=config)
    return root, result


def test_rows_follow_the_interface(bench_result):
    root, result = bench_result
    rows = [r for r in result["rows"] if not r["reference"]]
    assert len(rows) == 4 * 2  # checkpoint, onnx, tflite, missing file; two thread counts
    for row in rows:
        assert SCHEMA_KEYS <= set(row)
        assert set(row["latency_ms"]) >= {"median", "p90", "runs"}
    ok = [r for r in rows if r["status"] == "ok"]
    assert {(r["format"], r["runtime"]) for r in ok} == {("pytorch", "torch"), ("onnx", "onnxruntime"), ("tflite", "litert")}
    for r in ok:
        assert r["latency_ms"]["runs"] >= 20 and 0 < r["latency_ms"]["median"] <= r["latency_ms"]["p90"]
        assert r["nme"] is not None and 0 < r["nme"] < 2
        assert 10 <= r["n_images"] <= 24  # crops that hold a face
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 2 and "no such file" in failed[0]["error"]
    saved = json.loads(Path(result["files"]["json"]).read_text())
    assert saved["rows"][0]["model"] == rows[0]["model"] and "host" in saved and saved["host"]["cores"] >= 1


def test_reference_rows_are_timed_not_scored_and_the_profile_rides_along(bench_result):
    root, result = bench_result
    reference = [r for r in result["rows"] if r["reference"] and r["threads"] == 1]
    assert [(r["model"], r["variant"], r["runtime"]) for r in reference] == [("atpn-lite", "float", "litert"),
                                                                            ("atpn-lite", "int8", "litert")]
    for r in reference:
        assert r["status"] == "ok" and r["latency_ms"]["median"] > 0 and r["nme"] is None and r["peak_memory_mb"] is None
    assert all(r["peak_share"] is None for r in result["rows"] if r["runtime"] != "onnxruntime")
    md = Path(result["files"]["md"]).read_text()
    assert "atpn-lite (untrained latency reference)" in md and "profile.md" in md
    profiled = result["profile"]["artifacts"]
    assert {a["runtime"] for a in profiled} == {"litert", "onnxruntime"}
    assert all("backbone.stem" in a["blocks_ms"] for a in profiled)
    assert Path(result["profile"]["files"]["png"]).is_file()


def test_macs_and_drop(bench_result):
    from atpn_edge.models import build_model, count_params_and_macs

    _, result = bench_result
    params, macs = count_params_and_macs(build_model("atpn-lite"), 112)
    ok = [r for r in result["rows"] if r["status"] == "ok" and not r["reference"]]
    assert all(r["macs"] == macs and r["params"] == params for r in ok)
    tflite = next(r for r in ok if r["format"] == "tflite")
    # the converter's estimate counts bias adds too: within a few percent of ours, and shown
    assert tflite["macs_converter_source"] == "tflite converter estimate"
    assert 0 <= tflite["macs_diff_rel"] < 0.05
    # exported float artifacts reproduce the checkpoint's accuracy: no drop
    for r in ok:
        assert abs(r["nme_drop_rel"]) < 1e-3
    assert all(r["peak_memory_mb"] is not None and 0.5 < r["peak_memory_mb"] < 500 for r in ok)
    assert all(r["gmacs_per_s"] > 0 for r in ok)


def test_markdown_and_plots(bench_result):
    _, result = bench_result
    text = Path(result["files"]["md"]).read_text()
    assert "| model | variant |" in text and "## 1 thread(s)" in text and "## 2 thread(s)" in text
    assert "failed: " in text
    for key in ("latency_nme_png", "size_nme_png"):
        png = Path(result["files"][key])
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_rows_name_the_artifact_file_they_measured():
    """Three int8 .tflite files of one network would be three identical `atpn int8` rows: a file the user
    named is shown in its row; rows exported on the fly (`checkpoint -> spec`) and unreadable files are not."""
    from atpn_edge.bench.report import markdown_table

    base = {"variant": "int8", "format": "tflite", "runtime": "litert", "threads": 1, "latency_ms": {}}
    rows = [dict(base, model="atpn", path="/runs/ptq_int8_mixed/ptq_int8_mixed.tflite"),
            dict(base, model="atpn", path="runs/demo/float/best.pt -> tflite:int8"),
            dict(base, model="missing", path="missing.tflite")]
    names = [line.split(" | ")[0] for line in markdown_table(rows).splitlines()[2:]]
    assert names == ["| atpn `ptq_int8_mixed.tflite`", "| atpn", "| missing"]


def test_parse_exports():
    assert parse_exports("default") == ("tflite:fp32", "tflite:int8", "onnx:fp32", "onnx:int8", "executorch:fp32",
                                        "executorch:int8")
    assert "executorch:int8" in parse_exports("all") and "executorch:fp16" not in parse_exports("all")
    assert "tflite:fp16" in parse_exports("all")
    assert parse_exports("none") == ()
    with pytest.raises(UserError, match="onnx:fp16"):
        parse_exports("onnx:fp16")


def test_host_peak_is_measured():
    from atpn_edge.bench.host import PeakConfig, measure_matmul_gmacs, peak_share

    gmacs = measure_matmul_gmacs("fp32", 1, PeakConfig(size=256, repeats=3))
    assert 0.2 < gmacs < 500
    achieved, share = peak_share(10_000_000, 2.0, {"fp32": {"1": 10.0}}, "fp32", 1)
    assert achieved == pytest.approx(5.0) and share == pytest.approx(0.5)


def test_mediapipe_missing_becomes_a_row(tmp_path, monkeypatch):
    monkeypatch.setenv("ATPN_EDGE_PEERS", str(tmp_path))
    from atpn_edge.bench.entries import describe

    entry = describe(PEER_MEDIAPIPE)
    assert entry.status == "missing" and "make setup" in entry.error


def test_cli_bench_errors(capsys):
    from atpn_edge.cli import main

    assert main(["bench", "--model", "x.tflite", "--threads", "0"]) == 2
    assert "--threads 0" in capsys.readouterr().err
    assert main(["bench", "--model", "x.tflite", "--target", "phone"]) == 2
    assert main(["compare", "--budget", "huge"]) == 2
    assert "--budget huge" in capsys.readouterr().err
    assert main(["compare", "--budget", "smoke", "--formats", "tflite,coreml"]) == 2
    assert "--formats coreml" in capsys.readouterr().err


def test_compare_verdict_reads_the_flags_and_judges_int8_against_the_reference():
    from atpn_edge.bench.compare import BUDGETS, write_verdict

    def row(model, variant, ms, nme, size=None, **extra):
        return {"model": model, "variant": variant, "threads": 1, "status": "ok", "latency_ms": {"median": ms},
                "nme": nme, "size_bytes": size, "pose_mae": 3.0, "runtime": "litert", **extra}

    rows = [row("atpn", "float", 3.0, 0.080, 1_700_000), row("atpn", "int8", 3.6, 0.081, 570_000),
            row("atpn-no-shortcut", "float", 2.9, 0.084), row("atpn-no-fusion", "float", 2.8, 0.079),
            row("mediapipe-face-landmark", "fp16 weights", 4.2, 0.24, approximate=True),
            row("mobilenetv2", "float", 4.0, None, reference=True), row("mobilenetv2", "int8", 2.5, None, reference=True)]
    vnni = {"cpu": "Intel Xeon", "cpu_flags": ["avx2", "avx512_vnni", "amx_int8"],
            "peak_gmacs": {"method": "test", "fp32": {"1": 18.0}, "int8": {"1": 180.0}}}
    text = "\n".join(write_verdict(rows, BUDGETS["demo"], vnni))
    assert "0.83x the speed of float32" in text
    assert "has int8 dot-product instructions (avx512_vnni, amx_int8): target >= 1.5x NOT met" in text
    assert "mobilenetv2 int8 runs 1.60x its float32" in text and "is below it: NOT met" in text
    assert "peak" not in text  # no division by ONNX Runtime's AMX peak for a LiteRT row
    assert "0.86x MediaPipe face landmark's" in text and "target <= 0.6x NOT met" in text
    assert "0.570 MB: target <= 1.1 MB met" in text
    assert "Without the shortcut: NME 8.40% vs 8.00%" in text and "Without heatmap fusion: NME 7.90%" in text
    # the peer's approximate accuracy never wins "most accurate", nor does an untrained reference
    assert "Most accurate here: atpn-no-fusion float" in text
    # an AVX2 host: the 1.5x target does not apply, the reference ratio does
    avx2 = {"cpu": "AMD EPYC", "cpu_flags": ["avx2", "fma"]}
    rows[1]["latency_ms"]["median"] = 2.0
    text = "\n".join(write_verdict(rows, BUDGETS["demo"], avx2))
    assert "AMD EPYC has no int8 dot-product instructions (flags: avx2, fma)" in text
    assert "ATPN's 1.50x is below it: NOT met" in text
    rows[1]["latency_ms"]["median"] = 1.8
    assert "ATPN's 1.67x is at least that: met" in "\n".join(write_verdict(rows, BUDGETS["demo"], avx2))
    # without a reference the verdict says what to run
    assert "atpn-edge bench --reference mobilenetv2" in "\n".join(write_verdict(rows[:5], BUDGETS["demo"], avx2))


def test_compare_verdict_does_not_rank_models_that_all_fail():
    from atpn_edge.bench.compare import BUDGETS, write_verdict

    rows = [{"model": m, "variant": "float", "threads": 1, "status": "ok", "latency_ms": {"median": ms}, "nme": nme,
             "fr_10": fr} for m, ms, nme, fr in (("atpn", 3.0, 0.30, 0.99), ("atpn-lite", 1.2, 0.27, 0.96))]
    text = "\n".join(write_verdict(rows, BUDGETS["demo"]))
    assert "every trained model fails most test crops (FR@0.1 96% or more)" in text
    assert "Most accurate here" not in text
    rows[1]["fr_10"] = 0.2  # one model that works is ranked as usual
    assert "Most accurate here: atpn-lite float" in "\n".join(write_verdict(rows, BUDGETS["demo"]))
