"""Atomic writes: final files get the mode a plain open() would give, and temp files that a killed
writer left beside a file are removed on its next write, without touching anything else."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atpn_edge.io import atomic_path, remove_stale_temps, write_json, write_text


@pytest.fixture()
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_final_file_mode_follows_the_umask(tmp_path, umask_022):
    write_json(tmp_path / "a.json", {"x": 1})
    with open(tmp_path / "plain.txt", "w") as f:
        f.write("x")
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == 0o644
    os.umask(0o077)
    write_text(tmp_path / "b.txt", "y")
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600


def test_a_killed_writer_leaves_nothing_after_the_next_write(tmp_path):
    target = tmp_path / "model.tflite"
    script = ("import sys, time; from atpn_edge.io import atomic_path\n"
              f"with atomic_path({str(target)!r}) as tmp:\n    print(tmp, flush=True); time.sleep(60)\n")
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    left = writer.stdout.readline().strip()
    writer.kill()
    writer.wait()
    assert os.path.exists(left) and not target.exists()  # SIGKILL: no broken file, one temp file
    unrelated = [tmp_path / ".model.tflite.notes.tmp", tmp_path / ".other.tflite.123.abcdefgh.tmp", tmp_path / "keep.tmp"]
    for path in unrelated:
        path.write_text("mine")
    live = tmp_path / f".model.tflite.{os.getpid()}.abcdefgh.tmp"  # a writer that is still running
    live.write_text("")
    legacy_old, legacy_new = tmp_path / ".model.tflite.k2j4h5g6.tmp", tmp_path / ".model.tflite.q1w2e3r4.tmp"
    legacy_old.write_text("")
    legacy_new.write_text("")
    hour_ago = time.time() - 2 * 3600
    os.utime(legacy_old, (hour_ago, hour_ago))
    write_text(target, "done")
    assert target.read_text() == "done" and not os.path.exists(left) and not legacy_old.exists()
    assert all(p.exists() for p in unrelated + [live, legacy_new])
    assert remove_stale_temps(target) == []


def test_a_failed_write_removes_its_temp(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "x.json") as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_recipes_by_name_or_path(tmp_path):
    from atpn_edge.compress.recipe import load_recipe
    from atpn_edge.io import RECIPES_DIR, recipe_path
    from atpn_edge.train.config import load_config

    assert recipe_path("ptq_int8") == recipe_path("ptq_int8.yaml") == RECIPES_DIR / "ptq_int8.yaml"
    assert load_recipe("ptq_int8") == load_recipe(RECIPES_DIR / "ptq_int8.yaml")
    import yaml

    shipped = yaml.safe_load((Path(__file__).resolve().parents[1] / "recipes" / "train_demo.yaml").read_text())  # the repo's copy, read directly
    assert load_config("train_demo").epochs == shipped["epochs"] and load_config("train_demo").lr == shipped["lr"]
    mine = tmp_path / "ptq_int8.yaml"  # a path is a path, even with a shipped recipe's name
    mine.write_text("name: mine\nsteps: []\n")
    assert recipe_path(mine) == mine
    assert recipe_path("no_such_recipe") == Path("no_such_recipe")
