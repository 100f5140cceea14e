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
