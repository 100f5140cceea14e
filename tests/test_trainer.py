"""The trainer on a tiny synthetic set: learning happens, resume is exact, DDP keeps replicas equal."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from atpn_edge.errors import UserError
from atpn_edge.train import trainer as trainer_module
from atpn_edge.train.checkpoint import load_checkpoint, read_checkpoint
from atpn_edge.train.config import TrainConfig

TINY = dict(model="atpn-lite", train_samples=64, val_samples=16, batch_size=16, epochs=2, threads=1, lr=3e-3)


def _config(tmp_path, **kw):
    return TrainConfig(**{**TINY, "cache_dir": str(tmp_path / "cache"), **kw})


def test_resume_after_interrupt_is_exact(tmp_path, monkeypatch):
    config = _config(tmp_path)
    trainer_module.train(config, tmp_path / "straight", progress=False)

    real_save = trainer_module.save_checkpoint
    calls = {"n": 0}

    def save_then_die(path, *args, **kwargs):
        real_save(path, *args, **kwargs)
        if Path(path).name == "last.pt":
            calls["n"] += 1
            raise KeyboardInterrupt  # the user pressed Ctrl-C right after epoch 1 was saved

    monkeypatch.setattr(trainer_module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        trainer_module.train(config, tmp_path / "interrupted", progress=False)
    assert calls["n"] == 1 and read_checkpoint(tmp_path / "interrupted" / "last.pt")["train_state"]["epoch"] == 1
    monkeypatch.setattr(trainer_module, "save_checkpoint", real_save)
    trainer_module.train(config, tmp_path / "interrupted", resume=True, progress=False)

    straight, _ = load_checkpoint(tmp_path / "straight" / "last.pt")
    resumed, ckpt = load_checkpoint(tmp_path / "interrupted" / "last.pt")
    assert ckpt["train_state"]["epoch"] == 2
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    log = json.loads((tmp_path / "interrupted" / "log.json").read_text())
    assert [e["epoch"] for e in log["epochs"]] == [1, 2]


def test_checkpoint_describes_itself_and_loss_falls(tmp_path):
    # Few samples, no augmentation: the network must be able to fit them.
    config = _config(tmp_path, epochs=6, train_samples=32, augment=False)
    trainer_module.train(config, tmp_path / "run", progress=False)
    ckpt = read_checkpoint(tmp_path / "run" / "best.pt")
    meta = ckpt["meta"]
    assert meta["params"] > 0 and meta["macs"] > 0 and meta["landmark_scheme"] == "wflw98"
    assert meta["preprocessing"]["channel_order"] == "RGB" and "nme" in meta["metrics"]["val"]
    assert ckpt["train_config"]["model"] == "atpn-lite" and "train_state" not in ckpt
    log = json.loads((tmp_path / "run" / "log.json").read_text())
    losses = [e["train"]["landmarks"] for e in log["epochs"]]
    assert losses[-1] < losses[0]


def test_resume_without_a_run_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="nothing to resume"):
        trainer_module.train(_config(tmp_path), tmp_path / "empty", resume=True, progress=False)


def test_ddp_two_cpu_processes_keep_replicas_identical(tmp_path):
    out = tmp_path / "ddp"
    recipe = tmp_path / "r.yaml"
    recipe.write_text("\n".join(f"{k}: {v}" for k, v in {**TINY, "epochs": 1, "cache_dir": str(tmp_path / "cache")}.items()))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "atpn_edge.cli", "train", "--config", str(recipe), "--out", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    log = json.loads((out / "log.json").read_text())
    assert log["world_size"] == 2
    checksums = log["epochs"][0]["replica_checksums"]
    assert len(checksums) == 2 and checksums[0] == checksums[1]
    assert (out / "best.pt").is_file()
