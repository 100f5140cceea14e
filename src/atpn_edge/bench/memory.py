"""Peak resident memory of loading and running a model, measured in this process (Linux).

Writing "5" to /proc/self/clear_refs resets the kernel's high-water mark of the resident set
(VmHWM) to the current RSS; after loading the model and running it, VmHWM - RSS(before) is the
peak extra memory the model needed: weights, arena, runtime buffers, first-call allocations.
Libraries already imported are not counted. Where the reset is not allowed the figure is None.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            m = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure_peak_mb(load_and_run: Callable[[], Any]) -> tuple[Any, float | None]:
    """-> (load_and_run()'s result, peak extra resident memory in MiB or None when unmeasurable)."""
    import gc

    gc.collect()
    ok = _reset_peak()
    before = _status_kib("VmRSS")
    result = load_and_run()
    peak = _status_kib("VmHWM")
    if not ok or before is None or peak is None:
        return result, None
    return result, max(0.0, (peak - before) / 1024.0)


def measure_in_subprocess(path: str, runtime: str, runs: int = 5, timeout_s: float = 120.0) -> float | None:
    """Peak extra resident memory (MiB) of loading `path` in `runtime` and running it `runs` times, in a
    fresh Python process (so freed heap from earlier work cannot hide the model's allocations).
    The baseline is taken after the runtime's libraries are imported."""
    import json
    import subprocess
    import sys

    code = (
        "import json,sys\n"
        "from atpn_edge.bench.memory import _child\n"
        "print(json.dumps(_child(sys.argv[1], sys.argv[2], int(sys.argv[3]))))\n"
    )
    try:
        done = subprocess.run([sys.executable, "-c", code, path, runtime, str(runs)], capture_output=True, text=True,
                              timeout=timeout_s)
        return json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"] if done.returncode == 0 else None
    except (subprocess.TimeoutExpired, ValueError, IndexError, KeyError):
        return None


def _child(path: str, runtime: str, runs: int) -> dict:
    import numpy as np

    if runtime == "torch":
        import torch  # noqa: F401 - imported before the baseline

        torch.set_num_threads(1)
    elif runtime == "onnxruntime":
        import onnxruntime  # noqa: F401
    elif runtime == "executorch":
        import executorch.runtime  # noqa: F401 - imports torch too
    else:
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401

    def load_and_run():
        from atpn_edge.bench.entries import Entry, open_entry

        entry = Entry(path=path, model="", variant="", format="", runtime=runtime)
        predictor = open_entry(entry, 1)
        crop = np.full((1, 112, 112, 3), 128, np.uint8)
        for _ in range(runs):
            predictor.predict(crop)  # what an app holds: one interpreter / session, one crop at a time
        return np.zeros(0)

    _, peak = measure_peak_mb(load_and_run)
    return {"peak_mb": peak}
