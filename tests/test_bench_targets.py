"""The adb target against a fake `adb` on PATH that replays recorded phone output and logs its calls,
and the local benchmark_litert_model target."""

import os
import stat
import sys
from pathlib import Path

import pytest

from atpn_edge.bench.targets import AdbTarget, parse_target
from atpn_edge.errors import UserError

FIXTURES = Path(__file__).parent / "fixtures" / "bench"

FAKE_ADB = r'''#!/usr/bin/env python3
import os, sys
log = os.environ["FAKE_ADB_LOG"]
args = sys.argv[1:]
with open(log, "a") as f:
    f.write(" ".join(args) + "\n")
mode = os.environ.get("FAKE_ADB_MODE", "ok")
if args and args[0] == "-s":
    args = args[2:]
if args[0] == "devices":
    print("List of devices attached")
    if mode == "nodevice":
        sys.exit(0)
    print("R58M123ABC\t" + ("unauthorized" if mode == "unauthorized" else "device"))
    sys.exit(0)
if args[0] == "push":
    if mode == "refuse" :
        print("adb: error: failed to copy '%s' to '%s': remote couldn't create file: Permission denied" % (args[1], args[2]), file=sys.stderr)
        sys.exit(1)
    print("%s: 1 file pushed." % args[1])
    sys.exit(0)
if args[0] == "shell":
    if "benchmark_model" in args[1] and "--graph" in args[1]:
        sys.stdout.write(open(os.environ["FAKE_ADB_REPLAY"]).read())
    sys.exit(0)
sys.exit(1)
'''


@pytest.fixture()
def fake_adb(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    adb = bin_dir / "adb"
    adb.write_text(FAKE_ADB.replace("#!/usr/bin/env python3", f"#!{sys.executable}"))
    adb.chmod(adb.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_LOG", str(tmp_path / "adb.log"))
    monkeypatch.setenv("FAKE_ADB_REPLAY", str(FIXTURES / "benchmark_model_android_old.txt"))
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF fake")
    model = tmp_path / "m.tflite"
    model.write_bytes(b"fake")
    return {"log": tmp_path / "adb.log", "binary": str(binary), "model": str(model)}


def test_adb_push_run_parse_cleanup(fake_adb):
    results = AdbTarget(fake_adb["binary"], delegate="gpu").run([fake_adb["model"]], threads=4, num_runs=50, warmup_runs=5)
    result = results[fake_adb["model"]]
    assert result.typical_ms == pytest.approx(2.1334) and result.runs == 468 and result.partitions == 3
    calls = fake_adb["log"].read_text().splitlines()
    assert calls[0] == "devices"
    assert any(c.startswith("-s R58M123ABC push") and c.endswith("/benchmark_model") for c in calls)
    run = next(c for c in calls if "--graph=" in c)
    assert "--num_threads=4" in run and "--use_gpu=true" in run and "--num_runs=50" in run and "--warmup_runs=5" in run
    assert calls[-1].startswith("-s R58M123ABC shell rm -rf /data/local/tmp/atpn_edge_bench_")


@pytest.mark.parametrize("mode, message", [
    ("nodevice", "no Android device attached"),
    ("unauthorized", "is unauthorized: accept the USB debugging prompt"),
    ("refuse", "the phone refused: adb: error: failed to copy"),
])
def test_adb_errors_are_one_line(fake_adb, monkeypatch, mode, message):
    monkeypatch.setenv("FAKE_ADB_MODE", mode)
    with pytest.raises(UserError, match=message) as info:
        AdbTarget(fake_adb["binary"]).run([fake_adb["model"]], threads=1, num_runs=5, warmup_runs=1)
    assert "\n" not in str(info.value)
    if mode == "refuse":  # cleaned up on the phone even after the refusal
        assert "shell rm -rf" in fake_adb["log"].read_text().splitlines()[-1]


def test_adb_missing_and_binary_missing(fake_adb, monkeypatch, tmp_path):
    with pytest.raises(UserError, match="no such file"):
        AdbTarget(str(tmp_path / "nope")).check()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(UserError, match="adb not found on PATH"):
        AdbTarget(fake_adb["binary"]).check()


def test_adb_wrong_serial(fake_adb):
    with pytest.raises(UserError, match="device XYZ is not attached"):
        AdbTarget(fake_adb["binary"], serial="XYZ").check()


def test_parse_target():
    assert parse_target("adb:R58M") == ("adb", "R58M")
    assert parse_target("local-benchmark") == ("local-benchmark", None)
    with pytest.raises(UserError):
        parse_target("phone")
