"""Running exported artifacts needs neither torch nor litert-torch: the CLI run in a subprocess where
they cannot be imported (predict, eval on synthetic data and on a WFLW fixture, track, bench and
profile of a .tflite), a training command that says in one line which install it needs, and (slow)
a fresh board venv built from the registry with only the runtime install."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from fixtures.real_formats import write_wflw
from atpn_edge.export import export_model
from atpn_edge.models import build_model

ROOT = Path(__file__).resolve().parents[1]
BLOCKED = ("torch", "torchao", "litert_torch", "torch_pruning", "onnxscript", "onnxslim")
NO_TORCH = ("import sys\nfor m in {blocked!r}:\n    sys.modules[m] = None\n"
            "from atpn_edge.cli import main\nsys.exit(main(sys.argv[1:]))\n").format(blocked=BLOCKED)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("torch_free")
    torch.manual_seed(0)
    calib = np.random.default_rng(0).integers(0, 256, (4, 112, 112, 3), dtype=np.uint8)
    artifact = export_model(build_model("atpn-lite").eval(), "tflite", "fp32", root / "lite.tflite", calib_images=calib).path
    photo = root / "face.png"
    cv2.imwrite(str(photo), np.full((160, 160, 3), 128, np.uint8))
    write_wflw(root / "wflw")
    return {"root": root, "model": str(artifact), "photo": str(photo), "wflw": str(root / "wflw")}


def _run(args: list[str], cwd: Path, python: str = sys.executable, script: str | None = NO_TORCH, timeout: int = 600):
    command = [python, "-c", script, *args] if script else [python, *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")} if script else os.environ)


def _commands(w: dict) -> list[list[str]]:
    out = w["root"]
    return [
        ["predict", w["photo"], "--model", w["model"], "--box", "20,20,140,140", "--out", str(out / "pred"),
         "--json", str(out / "predict.json")],
        ["eval", "--model", w["model"], "--data", "synthetic", "--limit", "4", "--cache-dir", str(out / "cache"),
         "--json", str(out / "eval_synthetic.json")],
        ["eval", "--model", w["model"], "--data", f"wflw:{w['wflw']}", "--json", str(out / "eval_wflw.json")],
        ["track", "synthetic", "--model", w["model"], "--max-frames", "12", "--no-video", "--out", str(out / "track"),
         "--json", str(out / "track.json")],
        ["bench", "--model", w["model"], "--threads", "1", "--runs", "3", "--rounds", "1", "--warmup", "1", "--limit", "4",
         "--no-memory", "--cache-dir", str(out / "cache"), "--out", str(out / "bench"), "--json", str(out / "bench.json")],
        ["profile", w["model"], "--runs", "3", "--rounds", "2", "--warmup", "1", "--out", str(out / "profile")],
    ]


def _check_outputs(out: Path) -> None:
    assert json.loads((out / "predict.json").read_text())["images"][0]["faces"]
    assert json.loads((out / "eval_synthetic.json").read_text())["n_images"] >= 1
    assert json.loads((out / "eval_wflw.json").read_text())["n_images"] == 6
    assert json.loads((out / "track.json").read_text())["frames"] == 12
    rows = json.loads((out / "bench.json").read_text())["rows"]
    assert rows[0]["status"] == "ok" and rows[0]["latency_ms"]["median"] > 0
    assert "backbone.stem" in (out / "profile" / "profile.md").read_text()


def test_cli_runs_artifacts_without_torch(workspace):
    for args in _commands(workspace):
        done = _run(args, workspace["root"])
        assert done.returncode == 0, f"{args[0]}: {done.stderr[-1500:]}"
        assert "ModuleNotFoundError" not in done.stderr
    _check_outputs(workspace["root"])
    # the same numbers as the full install on the same crops
    full = workspace["root"] / "eval_wflw_full.json"
    done = _run(["-m", "atpn_edge.cli", "eval", "--model", workspace["model"], "--data", f"wflw:{workspace['wflw']}",
                 "--json", str(full)], workspace["root"], script=None)
    assert done.returncode == 0, done.stderr[-1500:]
    free = json.loads((workspace["root"] / "eval_wflw.json").read_text())
    assert json.loads(full.read_text())["nme"] == pytest.approx(free["nme"], rel=1e-6)


def test_help_starts_without_torch_quickly(workspace):
    import time

    start = time.perf_counter()
    done = _run(["--help"], workspace["root"])
    elapsed = time.perf_counter() - start
    assert done.returncode == 0 and "profile" in done.stdout
    assert elapsed < 5.0  # the board target is under 1 s; the bound here leaves room for a loaded CI box


def test_training_commands_name_the_install_they_need(workspace):
    done = _run(["train", "--config", str(ROOT / "recipes" / "train_demo.yaml"), "--out", str(workspace["root"] / "t")],
                workspace["root"])
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("atpn-edge: error:")]
    assert len(lines) == 1 and "needs torch" in lines[0] and "atpn-edge[train]" in lines[0]


def _pins(extra: str | None = None) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return list(project["dependencies"]) + (list(project["optional-dependencies"][extra]) if extra else [])


@pytest.mark.slow
def test_board_venv_from_the_registry(workspace, tmp_path):
    """The runtime install on a fresh venv: numpy, OpenCV, PyYAML, tqdm, ai-edge-litert and the package."""
    venv = tmp_path / "board"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    install = subprocess.run([python, "-m", "pip", "install", "--quiet", *_pins("litert")],
                             capture_output=True, text=True, timeout=1200)
    assert install.returncode == 0, install.stderr[-2000:]
    install = subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", str(ROOT)],
                             capture_output=True, text=True, timeout=1200)
    assert install.returncode == 0, install.stderr[-2000:]
    assert subprocess.run([python, "-c", "import torch"], capture_output=True).returncode != 0
    # the installed (non-editable) package finds its recipes by name and its assets
    found = subprocess.run([python, "-c", "from atpn_edge.compress.recipe import load_recipe; "
                            "from atpn_edge.train.config import load_config; from atpn_edge.data.vw300 import SPLITS_FILE; "
                            "import atpn_edge.io as io; print(load_recipe('ptq_int8').name, load_config('train_demo').epochs, "
                            "SPLITS_FILE.is_file(), io.__file__, (io.Path(io.__file__).parent / 'docs' / 'INTERFACES.md').is_file())"],
                           capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert found.returncode == 0, found.stderr[-1500:]
    name, epochs, assets, location, docs = found.stdout.split()
    shipped = yaml.safe_load((ROOT / "recipes" / "train_demo.yaml").read_text())
    assert (epochs, assets, docs) == (str(shipped["epochs"]), "True", "True") and str(venv) in location
    for args in _commands(workspace)[:4]:
        done = subprocess.run([str(venv / "bin" / "atpn-edge"), *args], capture_output=True, text=True,
                              cwd=workspace["root"], timeout=600)
        assert done.returncode == 0, f"{args[0]}: {done.stderr[-1500:]}"
    done = subprocess.run([str(venv / "bin" / "atpn-edge"), "train", "--config", str(ROOT / "recipes" / "train_demo.yaml"),
                           "--out", str(tmp_path / "t")], capture_output=True, text=True, cwd=workspace["root"], timeout=300)
    assert done.returncode == 2 and "atpn-edge[train]" in done.stderr and "Traceback" not in done.stderr
