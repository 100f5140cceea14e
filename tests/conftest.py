"""Fixtures many test files share: the untrained ATPN-lite most tests run, and a checkpoint of it.

Both are session-wide and read-only: a test that changes the model works on a copy (copy.deepcopy)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def lite_model():
    """ATPN-lite, 98 points, seed-0 weights, eval mode (torch imported here, not at collection: the
    torch-free tests run beside these)."""
    import torch

    from atpn_edge.models import build_model

    torch.manual_seed(0)
    return build_model("atpn-lite").eval()


@pytest.fixture(scope="session")
def lite_checkpoint(tmp_path_factory, lite_model):
    """`lite_model` saved as an ATPN checkpoint (train_config {}: a recipe falls back to TrainConfig())."""
    from atpn_edge.train.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("lite") / "float.pt"
    save_checkpoint(path, lite_model, train_config={})
    return path


@pytest.fixture(scope="session")
def calib():
    """8 noise crops: calibration for int8 exports."""
    from crops import random_crops

    return random_crops(8, 0)


@pytest.fixture(scope="session")
def held_out():
    """3 other noise crops: what exported artifacts are compared on."""
    from crops import random_crops

    return random_crops(3, 1)


@pytest.fixture(scope="session")
def lite_quantized(lite_model, calib):
    """`lite_model` through PT2E PTQ (QuantSpec defaults: the input conv float), calibrated on `calib`."""
    import torch

    from atpn_edge.compress.pt2e import QuantSpec, convert, prepare_ptq
    from atpn_edge.runtime.base import preprocess

    x = torch.from_numpy(preprocess(calib))
    prepared = prepare_ptq(lite_model, x[:1], QuantSpec())
    with torch.no_grad():
        for i in range(len(x)):
            prepared(x[i : i + 1])
    return convert(prepared)
