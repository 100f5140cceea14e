"""Compression recipes: validation, PTQ (+ saved .pt2 round trip), pruning (+ pruned checkpoints),
fine-tuning resume, QAT, and run_recipe end to end on atpn-lite with tiny data."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from atpn_edge.compress import pt2e
from atpn_edge.compress.recipe import PruneStep, QATStep, TrainParams, load_recipe, recipe_from_dict
from atpn_edge.data.sample import Sample
from atpn_edge.errors import UserError
from atpn_edge.models import build_model, count_params_and_macs

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


def fake_samples(n: int, points: int = 98, seed: int = 0) -> list[Sample]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        lm = (0.5 + 0.25 * rng.uniform(-1, 1, (points, 2))).astype(np.float32)
        out.append(Sample(image=rng.integers(0, 255, (112, 112, 3), dtype=np.uint8), landmarks=lm,
                          pose=rng.uniform(-30, 30, 3).astype(np.float32), face_score=float(i % 2),
                          face_box=np.array([0.1, 0.1, 0.9, 0.9], np.float32), source=f"fake:{i}"))
    return out


@pytest.fixture(scope="module")
def loss_config():
    from atpn_edge.train.config import TrainConfig

    return TrainConfig()


# --------------------------------------------------------------------------- recipes
@pytest.mark.parametrize("path", sorted((ROOT / "recipes").glob("*.yaml")))
def test_shipped_recipes_validate(path):
    if path.name.startswith("train_"):
        pytest.skip("training config, not a compression recipe")
    recipe = load_recipe(path)
    assert recipe.name == path.stem
    assert recipe.steps


SHRUNK = {"epochs": 2, "train_samples": 16, "batch_size": 8, "calibration_samples": 8, "sensitivity_samples": 8}


def _shrunk(values):
    """A recipe's YAML with every budget cut to a few crops and two epochs (QAT freezes observers at epoch 2;
    the steps and their other options kept)."""
    if isinstance(values, dict):
        shrunk = {k: min(v, SHRUNK[k]) if k in SHRUNK else _shrunk(v) for k, v in values.items()}
        return {**shrunk, "batch_size": 8} if "epochs" in values else shrunk  # a train block
    return [_shrunk(v) for v in values] if isinstance(values, list) else values


@pytest.mark.parametrize("path", sorted(p for p in (ROOT / "recipes").glob("*.yaml") if not p.name.startswith("train_")),
                         ids=lambda p: p.stem)
def test_shipped_recipes_run_end_to_end(path, lite_checkpoint, tmp_path):
    """Every shipped recipe's steps, with its own options on a shrunk budget, run through run_recipe and report."""
    import yaml

    from atpn_edge.runner.run import run_recipe

    values = yaml.safe_load(path.read_text())
    values = {**_shrunk({k: v for k, v in values.items() if k != "float_reference"}),
              "float_reference": values.get("float_reference", {})}
    values["evaluate"] = {"samples": 8, "formats": []}
    shrunk = tmp_path / path.name
    shrunk.write_text(yaml.safe_dump(values))
    report = run_recipe(shrunk, lite_checkpoint, tmp_path / "out", cache_dir=str(tmp_path / "cache"), progress=False)
    assert report["accuracy"]["float"]["n_images"] > 0
    assert (tmp_path / "out" / "report.md").is_file()
    assert [s["kind"] for s in report["steps"]] == [next(iter(s)) if isinstance(s, dict) else s for s in values["steps"]]


def test_recipe_defaults_and_overrides():
    recipe = recipe_from_dict({"name": "x", "steps": [{"prune": {"macs_reduction": 0.5, "train": {"epochs": 7}}}, "qat"]})
    prune = recipe.step("prune")
    assert prune.macs_reduction == 0.5 and prune.train.epochs == 7
    assert prune.train.lr == PruneStep().train.lr  # unnamed keys keep the step's own defaults
    assert recipe.precision == "int8" and recipe.step("qat").train.epochs == QATStep().train.epochs


def test_report_says_when_the_float_model_trained_less_than_the_recipes_reference(tmp_path):
    """A recipe states the float model its numbers came from; a checkpoint that saw fewer training crops (an
    8-epoch model for a 16-epoch recipe, or a best.pt saved early) is flagged in report.json and report.md."""
    from atpn_edge.compress.recipe import FloatReference
    from atpn_edge.runner.report import _float_reference_line, float_reference

    recipe = recipe_from_dict({"name": "x", "steps": ["ptq"], "float_reference": {"epochs": 16, "train_samples": 8000}})
    assert recipe.float_reference.crops == 128_000 and recipe.to_dict()["float_reference"]["epochs"] == 16
    config = {"epochs": 16, "train_samples": 8000, "data": "synthetic"}
    full = float_reference({"train_config": config, "meta": {"epoch": 16}}, recipe.float_reference)
    early = float_reference({"train_config": config, "meta": {"epoch": 8}}, recipe.float_reference)  # best.pt of epoch 8
    unknown = float_reference({"train_config": {}, "meta": {}}, recipe.float_reference)
    unstated = float_reference({"train_config": config, "meta": {"epoch": 8}}, FloatReference())
    assert not full["short"] and full["crops"] == 128_000
    assert early["short"] and early["epochs"] == 8 and early["crops"] == 64_000
    assert not unknown["short"] and unknown["crops"] is None
    assert not unstated["short"] and unstated["recipe_epochs"] is None
    assert "Fewer training crops" in _float_reference_line(early)
    assert "Fewer" not in _float_reference_line(full) and "16 x 8,000" in _float_reference_line(full)
    assert "records no training budget" in _float_reference_line(unknown)


@pytest.mark.parametrize("values, message", [
    ({"name": "x", "steps": [{"ptq": {"calibraton_samples": 8}}]}, "unknown key 'steps[0].ptq.calibraton_samples'"),
    ({"name": "x", "steps": [{"ptq": {"calibration_samples": "many"}}]}, "'steps[0].ptq.calibration_samples' must be a whole number"),
    ({"name": "x", "steps": [{"ptq": {"observer": "kl"}}]}, "'steps[0].ptq.observer' must be one of"),
    ({"name": "x", "steps": [{"prune": {"macs_reduction": 1.5}}]}, "'steps[0].prune.macs_reduction' must be at most 0.95"),
    ({"name": "x", "steps": [{"prune": {"train": {"lr": 0}}}]}, "'steps[0].prune.train.lr' must be greater than 0"),
    ({"name": "x", "steps": [{"ptq": {}}, {"prune": {}}]}, "'steps[0].ptq' must be the last step"),
    ({"name": "x", "steps": [{"distill": {}}]}, "unknown step kind 'distill'"),
    ({"name": "x", "steps": []}, "'steps' must be a non-empty list"),
    ({"name": "x", "steps": ["ptq"], "evaluate": {"formats": ["coreml"]}}, "'evaluate.formats[0]' must be one of"),
    ({"name": "x", "steps": [{"qat": {"freeze_observers_epoch": 9}}]}, "freeze_observers_epoch"),
    ({"name": "x", "steps": ["ptq"], "export": {}}, "unknown key 'export'"),
    ({"name": "x", "steps": ["ptq"], "float_reference": {"epochs": -1}}, "'float_reference.epochs' must be at least 0"),
])
def test_recipe_errors_name_file_and_key(tmp_path, values, message):
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(values))
    with pytest.raises(UserError) as e:
        load_recipe(path)
    text = str(e.value)
    assert str(path) in text and message in text and "\n" not in text


def test_cli_bad_recipe_is_one_line_exit_2(tmp_path, capsys):
    from atpn_edge.cli import main

    path = tmp_path / "r.yaml"
    path.write_text("name: r\nsteps: [{ptq: {per_channel: maybe}}]\n")
    assert main(["quantize", "--recipe", str(path), "--model", "none.pt"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "per_channel" in err and str(path) in err


# --------------------------------------------------------------------------- PTQ and the saved artifact
def test_ptq_is_int8_close_to_float_and_round_trips_pt2(lite_model, tmp_path):
    from atpn_edge.compress.quantize import load_quantized, ptq, save_quantized

    images = np.stack([s.image for s in fake_samples(16)])
    graph = ptq(lite_model, images, pt2e.QuantSpec(observer="minmax"), progress=False)
    assert pt2e.is_quantized_graph(graph)
    x = torch.from_numpy(np.random.default_rng(1).uniform(-1, 1, (3, 3, 112, 112)).astype(np.float32))
    q = pt2e.QuantizedModel(graph)(x)
    with torch.no_grad():
        f = lite_model(x)
    err = (q["landmarks"] - f["landmarks"]).abs().max().item()
    assert 0 < err < 0.05  # quantized (not identical), but close
    path = save_quantized(graph, tmp_path / "m.pt2")
    assert (tmp_path / "m.pt2.json").is_file()
    loaded = load_quantized(path)
    assert pt2e.is_quantized_graph(loaded)
    assert pt2e.graph_info(loaded)["output_names"] == ("landmarks", "pose", "face_logit", "face_box")
    r = pt2e.QuantizedModel(loaded)(x)
    for k in q:
        assert torch.equal(q[k], r[k]), k
    (tmp_path / "m.pt2.json").unlink()
    with pytest.raises(UserError, match="sidecar"):
        load_quantized(path)


# --------------------------------------------------------------------------- pruning
def test_prune_reaches_mac_target_keeps_outputs_and_rebuilds(lite_model, tmp_path):
    from atpn_edge.compress.prune import load_any_checkpoint, prune_channels, save_pruned_checkpoint

    _, macs = count_params_and_macs(lite_model, 112)
    pruned = prune_channels(lite_model, int(0.5 * macs))
    p_params, p_macs = count_params_and_macs(pruned, 112)
    assert 0.3 * macs < p_macs <= 0.5 * macs
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        a, f = pruned(x), lite_model(x)
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in f.items()}
    save_pruned_checkpoint(tmp_path / "p.pt", pruned)
    rebuilt, ckpt = load_any_checkpoint(tmp_path / "p.pt")
    assert count_params_and_macs(rebuilt, 112) == (p_params, p_macs)
    with torch.no_grad():
        b = rebuilt(x)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert ckpt["meta"]["macs"] == p_macs


def test_prune_scope_hidden_shrinks_only_the_expansions():
    """scope hidden: only the inverted residuals' expanded channels go; every other layer (stem, block outputs,
    shortcut, fusion, heads) keeps its width, and the MAC target is still reached."""
    from torch import nn

    from atpn_edge.compress.prune import hidden_layers, prune_channels

    torch.manual_seed(0)
    model = build_model("atpn").eval()  # version 2: most MACs sit in stage 3's expansions
    _, macs = count_params_and_macs(model, 112)
    pruned = prune_channels(model, int(0.5 * macs), scope="hidden")
    assert 0.4 * macs < count_params_and_macs(pruned, 112)[1] <= 0.5 * macs
    before = {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    after = {n: m.out_channels for n, m in pruned.named_modules() if isinstance(m, nn.Conv2d)}
    hidden = {n for n, m in model.named_modules() if any(m is h for h in hidden_layers(model))}
    assert hidden and all(after[n] < before[n] for n in hidden)
    assert {n: after[n] for n in before if n not in hidden} == {n: before[n] for n in before if n not in hidden}


# --------------------------------------------------------------------------- fine-tuning resume
def test_finetune_resume_is_exact(lite_model, loss_config, tmp_path):
    from atpn_edge.compress import finetune as ft

    samples = fake_samples(32)
    params = TrainParams(epochs=2, lr=1e-3, batch_size=16, train_samples=32, augment=True)
    straight = ft.finetune(copy.deepcopy(lite_model), samples, params, loss_config, num_points=98, progress=False)

    state = tmp_path / "state.pt"
    calls = []

    def crash_at_epoch_1(m, epoch):
        calls.append(epoch)
        if epoch == 1:
            raise KeyboardInterrupt

    interrupted = copy.deepcopy(lite_model)
    with pytest.raises(KeyboardInterrupt):
        ft.finetune(interrupted, samples, params, loss_config, num_points=98, state_path=state,
                    epoch_hook=crash_at_epoch_1, progress=False)
    assert torch.load(state, weights_only=True)["epoch"] == 1
    resumed = ft.finetune(copy.deepcopy(lite_model), samples, params, loss_config, num_points=98, state_path=state,
                          progress=False)
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    assert not torch.equal(straight.state_dict()["landmark_head.regressor.weight"],
                           lite_model.state_dict()["landmark_head.regressor.weight"])


def test_distillation_pulls_the_student_toward_the_teacher(lite_model, loss_config):
    """train.distill adds the teacher's outputs as soft targets: after the same fine-tuning the student's
    landmarks and pose sit nearer the teacher's than without it, and the teacher itself is not trained."""
    from atpn_edge.compress import finetune as ft

    torch.manual_seed(1)
    teacher = build_model("atpn-lite").eval()
    teacher_before = copy.deepcopy(teacher.state_dict())
    samples = fake_samples(32)
    x = torch.from_numpy(np.stack([ft.training_loader(samples, 98, TrainParams(batch_size=32, augment=False), 0)
                                   .dataset[i]["image"] for i in range(32)]))

    def gap(student):
        with torch.no_grad():
            a, b = student(x), teacher(x)
        return float((a["landmarks"] - b["landmarks"]).abs().mean()), float((a["pose"] - b["pose"]).abs().mean())

    runs = {}
    for distill in (0.0, 5.0):
        params = TrainParams(epochs=2, lr=2e-3, batch_size=16, train_samples=32, augment=False, distill=distill)
        runs[distill] = gap(ft.finetune(copy.deepcopy(lite_model), samples, params, loss_config, num_points=98,
                                        progress=False, teacher=teacher))
    assert runs[5.0][0] < 0.8 * runs[0.0][0] and runs[5.0][1] < runs[0.0][1], runs
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, teacher_before[k]), k


# --------------------------------------------------------------------------- QAT
@pytest.mark.slow
def test_qat_trains_converts_and_resumes_from_state(lite_model, loss_config, tmp_path):
    from atpn_edge.compress.quantize import qat

    step = QATStep(freeze_bn_epoch=1, freeze_observers_epoch=1,
                   train=TrainParams(epochs=2, lr=1e-3, batch_size=8, train_samples=16, augment=False))
    samples = fake_samples(16)
    state = tmp_path / "qat_state.pt"
    graph = qat(lite_model, samples, step, loss_config, num_points=98, state_path=state, progress=False)
    assert pt2e.is_quantized_graph(graph) and state.is_file()
    x = torch.randn(2, 3, 112, 112)
    out = pt2e.QuantizedModel(graph)(x)
    with torch.no_grad():
        f = lite_model(x)
    assert (out["landmarks"] - f["landmarks"]).abs().max() > 0  # it trained and quantized
    saved = torch.load(state, weights_only=True)
    assert saved["epoch"] == 2 and saved["extra"]["step"] == "qat"
    # Observers froze at epoch 1: their enabled flags are saved off, so a resumed run keeps them frozen.
    flags = [v for k, v in saved["state_dict"].items() if k.endswith("observer_enabled")]
    assert flags and all(int(v) == 0 for v in flags)
    # (Exact resume of the shared fine-tuning loop is tested above; a second QAT convert costs ~1 min.)


# --------------------------------------------------------------------------- run_recipe end to end
@pytest.fixture(scope="module")
def checkpoint(lite_checkpoint):
    return lite_checkpoint


def test_run_recipe_ptq_and_prune_reports_and_resume(checkpoint, tmp_path):
    import yaml

    from atpn_edge.runner.run import run_recipe

    cache = str(tmp_path / "cache")
    ptq_recipe = tmp_path / "ptq.yaml"
    ptq_recipe.write_text(yaml.safe_dump({"name": "ptq", "steps": [{"ptq": {"calibration_samples": 16, "observer": "minmax"}}],
                                          "evaluate": {"samples": 24, "formats": []}}))
    report = run_recipe(ptq_recipe, checkpoint, tmp_path / "ptq", cache_dir=cache, progress=False)
    acc = report["accuracy"]
    assert acc["float"]["measured_on"] == "pytorch" and acc["ptq"]["measured_on"] == "pytorch"
    assert acc["float"]["n_images"] == acc["ptq"]["n_images"] > 0 and report["evaluation"]["n_images"] == 24
    # the report's numbers are what the saved artifacts give on the same images, measured here independently
    from atpn_edge.compress.pt2e import QuantizedModel
    from atpn_edge.compress.quantize import load_quantized
    from atpn_edge.data.registry import open_eval_set, real_faces_or_none
    from atpn_edge.evaluate import evaluate
    from atpn_edge.train.checkpoint import load_checkpoint
    from atpn_edge.train.predict import torch_predict_fn

    images = open_eval_set("synthetic", "test", 24, 98, 112, cache)
    float_fn = torch_predict_fn(load_checkpoint(checkpoint)[0])
    int8_fn = torch_predict_fn(QuantizedModel(load_quantized(tmp_path / "ptq" / "model_int8.pt2")))
    want = {name: evaluate(fn, images, progress=False)[0].nme for name, fn in (("float", float_fn), ("ptq", int8_fn))}
    assert acc["float"]["nme"] == pytest.approx(want["float"], rel=1e-6)
    assert acc["ptq"]["nme"] == pytest.approx(want["ptq"], rel=1e-6)
    assert acc["ptq"]["nme_drop_rel"] == pytest.approx(want["ptq"] / want["float"] - 1, rel=1e-5)
    for name in ("report.json", "report.md", "report.png", "model_int8.pt2", "model_int8.pt2.json"):
        assert (tmp_path / "ptq" / name).is_file(), name
    # every row is also scored on the built-in real photographs (installed by `make setup`)
    real = real_faces_or_none(98)
    assert real is not None, "make setup fetches the real-photo set (scripts/fetch_peers.py)"
    assert acc["float"]["real_n_images"] == acc["ptq"]["real_n_images"] == len(real) > 0
    real_want = {name: evaluate(fn, real, progress=False)[0].nme for name, fn in (("float", float_fn), ("ptq", int8_fn))}
    assert acc["float"]["real_nme"] == pytest.approx(real_want["float"], rel=1e-6)
    assert acc["float"]["real_nme_drop_rel"] == 0.0
    assert acc["ptq"]["real_nme_drop_rel"] == pytest.approx(real_want["ptq"] / real_want["float"] - 1, rel=1e-5)
    assert "NME real photos" in (tmp_path / "ptq" / "report.md").read_text()
    assert report["float_reference"]["crops"] is None  # the fixture checkpoint records no training budget
    assert "Float reference: the checkpoint records no training budget." in (tmp_path / "ptq" / "report.md").read_text()

    prune_recipe = tmp_path / "prune.yaml"
    prune_recipe.write_text(yaml.safe_dump({"name": "pr", "steps": [{"prune": {
        "macs_reduction": 0.4, "iterative_steps": 2, "epochs_between_steps": 1,
        "train": {"epochs": 1, "batch_size": 8, "train_samples": 16, "augment": False}}}],
        "evaluate": {"samples": 24, "formats": []}}))
    report = run_recipe(prune_recipe, checkpoint, tmp_path / "pr", cache_dir=cache, progress=False)
    assert report["params_macs"]["macs_reduction"] >= 0.4
    assert report["accuracy"]["pr"]["macs"] < report["accuracy"]["float"]["macs"]
    pruned = tmp_path / "pr" / "step0_pruned.pt"
    stamp = os.stat(pruned).st_mtime_ns
    again = run_recipe(prune_recipe, checkpoint, tmp_path / "pr", cache_dir=cache, progress=False)
    assert os.stat(pruned).st_mtime_ns == stamp  # the finished pruning step was reused
    assert again["accuracy"]["pr"]["nme"] == pytest.approx(report["accuracy"]["pr"]["nme"])


@pytest.mark.parametrize("kind", ["fp16", "dynamic_int8"])
def test_run_recipe_export_precision_recipes_deploy_a_tflite(checkpoint, tmp_path, kind):
    """fp16 / dynamic_int8 change nothing in PyTorch: the exporter applies the precision, and the .tflite is
    measured in LiteRT beside the float model (these recipes had no runner step and raised KeyError)."""
    import yaml

    from atpn_edge.compress.recipe import STEP_KINDS
    from atpn_edge.runner.run import STEPS, run_recipe

    assert set(STEPS) == set(STEP_KINDS)
    recipe = tmp_path / f"{kind}.yaml"
    recipe.write_text(yaml.safe_dump({"name": kind, "steps": [kind], "evaluate": {"samples": 16, "formats": ["tflite"]}}))
    report = run_recipe(recipe, checkpoint, tmp_path / kind, cache_dir=str(tmp_path / "cache"), progress=False)
    row = report["accuracy"][f"{kind}_tflite"]
    assert row["measured_on"] == "tflite" and row["role"] == "deployed" and report["precision"] == kind.replace("_", "-")
    assert abs(row["nme_drop_rel"]) < 0.05 and report["headline"]["variant"] == f"{kind}_tflite"
    assert row["size_bytes"] < 0.7 * os.path.getsize(checkpoint)  # 16-bit / 8-bit weights, not fp32


def test_run_recipe_composes_prune_finetune_qat_with_float_control(checkpoint, tmp_path):
    """prune -> finetune -> QAT in one recipe run: every step runs, the pruned float model before
    quantization and the QAT float control (same epochs, no fake-quant) are reported beside the int8 one."""
    import yaml

    from atpn_edge.runner.run import run_recipe

    tiny = {"epochs": 1, "batch_size": 8, "train_samples": 16, "augment": False}
    recipe = tmp_path / "pqat.yaml"
    recipe.write_text(yaml.safe_dump({"name": "pqat", "steps": [
        {"prune": {"macs_reduction": 0.3, "iterative_steps": 1, "epochs_between_steps": 0, "train": tiny}},
        {"finetune": {"train": tiny}},
        {"qat": {"freeze_bn_epoch": 0, "freeze_observers_epoch": 1, "float_control": True, "train": tiny}}],
        "evaluate": {"samples": 16, "formats": []}}))
    report = run_recipe(recipe, checkpoint, tmp_path / "pqat", cache_dir=str(tmp_path / "cache"), progress=False)
    assert [s["kind"] for s in report["steps"]] == ["prune", "finetune", "qat"]
    acc = report["accuracy"]
    assert {"float", "pqat", "pqat_float_before_quant", "pqat_float_control"} <= set(acc)
    assert report["params_macs"]["macs_reduction"] >= 0.3
    assert acc["pqat_float_before_quant"]["macs"] == acc["pqat"]["macs"] < acc["float"]["macs"]
    assert (tmp_path / "pqat" / "step1_finetune_state.pt").is_file()
    assert (tmp_path / "pqat" / "step2_float_control_state.pt").is_file()
    # the control and the QAT model start from the same weights but are different models
    assert acc["pqat_float_control"]["nme"] != acc["pqat"]["nme"]


def test_unpruned_control_gets_the_same_fine_tuning(checkpoint, tmp_path):
    """prune_*: the unpruned model trained with every fine-tuning segment of the recipe is a row of its own,
    so the report separates what pruning costs from what the extra training buys."""
    import yaml

    from atpn_edge.runner.run import run_recipe

    tiny = {"epochs": 1, "batch_size": 8, "train_samples": 16, "augment": False}
    recipe = tmp_path / "pc.yaml"
    recipe.write_text(yaml.safe_dump({"name": "pc", "steps": [
        {"prune": {"macs_reduction": 0.3, "iterative_steps": 2, "epochs_between_steps": 1, "train": tiny,
                   "unpruned_control": True}},
        {"finetune": {"train": tiny}}],
        "evaluate": {"samples": 16, "formats": []}}))
    out = tmp_path / "pc"
    report = run_recipe(recipe, checkpoint, out, cache_dir=str(tmp_path / "cache"), progress=False)
    acc = report["accuracy"]
    control = acc["pc_unpruned_control"]
    assert control["macs"] == acc["float"]["macs"] > acc["pc"]["macs"]
    assert control["nme"] != acc["float"]["nme"]  # it trained
    # the prune step's two training segments (recovery, final) and the finetune step, each resumable
    for name in ("step0_unpruned_control_1_state.pt", "step0_unpruned_control_2_state.pt", "step1_unpruned_control_state.pt"):
        assert (out / name).is_file(), name
        assert torch.load(out / name, weights_only=True)["epoch"] == 1
    assert "Against the control `pc_unpruned_control` (unpruned float model given the same fine-tuning" in (
        out / "report.md").read_text()
    assert control["role"] == "control" and report["headline"]["control"]["variant"] == "pc_unpruned_control"
    again = run_recipe(recipe, checkpoint, out, cache_dir=str(tmp_path / "cache"), progress=False)
    assert again["accuracy"]["pc_unpruned_control"]["nme"] == pytest.approx(control["nme"])  # finished training reused

    # With distillation the pruned model learns from the control, and the control itself still learns from the
    # labels alone: the same control (its finished states are even reused), a different pruned model.
    distilled = {**tiny, "distill": 2.0}
    recipe.write_text(yaml.safe_dump({"name": "pc", "steps": [
        {"prune": {"macs_reduction": 0.3, "iterative_steps": 2, "epochs_between_steps": 1, "train": distilled,
                   "unpruned_control": True}},
        {"finetune": {"train": distilled}}],
        "evaluate": {"samples": 16, "formats": []}}))
    kd = run_recipe(recipe, checkpoint, out, cache_dir=str(tmp_path / "cache"), progress=False)["accuracy"]
    assert kd["pc_unpruned_control"]["nme"] == pytest.approx(control["nme"])
    assert kd["pc"]["nme"] != pytest.approx(acc["pc"]["nme"])


# --------------------------------------------------------------------------- sensitivity / mixed precision
def test_sensitivity_ranks_units_and_writes_table_and_chart(tmp_path):
    from atpn_edge.compress.sensitivity import quant_units, sensitivity, write_sensitivity

    torch.manual_seed(0)
    small = build_model("atpn-lite", heads=("landmarks",)).eval()
    units = quant_units(small)
    assert "backbone.stem" in units and "landmark_head.regressor" in units
    assert not any(u.startswith(v + ".") for u in units for v in units)  # top-most blocks only
    samples = fake_samples(8)
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (8, 3, 112, 112)).astype(np.float32))
    gt = np.stack([s.landmarks for s in samples])
    chosen = ["backbone.stem", "landmark_head.regressor"]
    result = sensitivity(small, x, x, gt, pt2e.QuantSpec(observer="minmax"), modes=("all_but", "only"),
                         units=chosen, progress=False)
    assert {r["unit"] for r in result["rows"]} == set(chosen)
    gains = [r["gain"] for r in result["rows"]]
    assert gains == sorted(gains, reverse=True)
    for r in result["rows"]:
        assert r["gain"] == pytest.approx(result["int8_nme"] - r["all_but_nme"])
        assert r["damage"] == pytest.approx(r["only_nme"] - result["float_nme"])
    assert result["int8_nme"] != result["float_nme"]
    paths = write_sensitivity(result, tmp_path / "sensitivity")
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths.values())
    assert "backbone.stem" in paths["md"].read_text()


def test_training_crops_do_not_depend_on_which_steps_ran_first(tmp_path):
    """A step asking for more crops than an earlier step loaded gets them all (pruning's 4,000 must not cap a
    later fine-tune's 12,000), and the first crops are the same ones."""
    from atpn_edge.runner.context import RunContext
    from atpn_edge.train.config import TrainConfig

    ctx = RunContext(None, tmp_path, "synthetic", 98, 112, TrainConfig(), str(tmp_path / "cache"), False, train_pool=16)
    small = ctx.train_samples(8)
    assert len(small) == 8
    large = ctx.train_samples(24)
    assert len(large) == 24
    np.testing.assert_array_equal(large[7].image, small[7].image)
    assert len(ctx.train_samples(16)) == 16


def test_int8_calibration_takes_face_crops_only(tmp_path):
    """Non-face crops stretch the landmark and box outputs' int8 ranges: calibration skips them, keeping
    the pool's order (the same crops whichever step asks), and says so when there is no face at all."""
    from atpn_edge.data.registry import face_samples
    from atpn_edge.data.sample import Sample
    from atpn_edge.errors import UserError
    from atpn_edge.runner.context import RunContext, calibration_images
    from atpn_edge.train.config import TrainConfig

    ctx = RunContext(None, tmp_path, "synthetic", 98, 112, TrainConfig(), str(tmp_path / "cache"), False, train_pool=24)
    pool = ctx.train_samples(24)
    faces = [pool[i] for i in range(24) if pool[i].landmarks is not None]
    assert 0 < len(faces) < 24, "the synthetic pool mixes non-face crops in"
    got = calibration_images(ctx, 6)
    np.testing.assert_array_equal(got, np.stack([s.image for s in faces[:6]]))
    everything = calibration_images(ctx, 6, faces_only=False)
    np.testing.assert_array_equal(everything, np.stack([pool[i].image for i in range(6)]))
    with pytest.raises(UserError, match="no face crops"):
        face_samples([Sample(image=np.zeros((112, 112, 3), np.uint8), face_score=0.0)], 4)


def test_sensitivity_allocation_spares_the_block_that_costs_most(lite_model):
    """block_sensitivity ranks the inverted residuals by score rise per MAC; prune_channels with its weights
    takes fewer channels from the costly block than one ratio for all does, at the same MAC target."""
    from atpn_edge.compress.prune import _blocks, block_sensitivity, prune_channels
    from atpn_edge.models import count_params_and_macs

    widths = [b.hidden_layers()[0].out_channels for b in _blocks(lite_model)]

    def score(m):  # block 0's expanded channels are 20x as costly to lose as the others'
        lost = [w - b.hidden_layers()[0].out_channels for w, b in zip(widths, _blocks(m))]
        return sum(loss * (20.0 if i == 0 else 1.0) for i, loss in enumerate(lost)) / 1000

    weights = block_sensitivity(lite_model, score)
    assert len(weights) == len(widths) and weights[0] == min(weights) and sum(weights) == pytest.approx(len(widths))
    _, macs = count_params_and_macs(lite_model, 112)
    target = int(0.7 * macs)
    uniform = prune_channels(lite_model, target, scope="hidden")
    allocated = prune_channels(lite_model, target, scope="hidden", block_weights=weights)
    assert count_params_and_macs(allocated, 112)[1] <= target
    first = [_blocks(m)[0].hidden_layers()[0].out_channels for m in (uniform, allocated)]
    assert first[1] > first[0], first
