
import pytest
import torch

from atpn_edge.errors import UserError
from atpn_edge.models import build_model
from atpn_edge.train.checkpoint import load_checkpoint, save_checkpoint


def test_round_trip_rebuilds_the_same_model(tmp_path):
    model = build_model("atpn-lite", num_landmarks=68)
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, metrics={"val": {"nme": 0.05}})
    loaded, ckpt = load_checkpoint(path)
    assert loaded.options == model.options and ckpt["meta"]["landmark_scheme"] == "ibug68"
    x = torch.randn(2, 3, 112, 112)
    model.eval()
    out_a, out_b = model(x), loaded(x)
    for key in out_a:
        torch.testing.assert_close(out_a[key], out_b[key])


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("hello")
    with pytest.raises(UserError, match="not a PyTorch checkpoint"):
        load_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nope.pt")


def test_foreign_pickle_is_refused_not_executed(tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("executed!",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "atpn-edge-checkpoint", "payload": Boom()}, path)
    with pytest.raises(UserError, match="weights-only"):
        load_checkpoint(path)


def test_plain_state_dict_is_not_an_atpn_checkpoint(tmp_path):
    path = tmp_path / "sd.pt"
    torch.save(build_model("atpn-lite").state_dict(), path)
    with pytest.raises(UserError, match="not an atpn-edge checkpoint"):
        load_checkpoint(path)


def test_checkpoint_from_another_architecture(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, build_model("atpn-lite"))
    ckpt = torch.load(path, weights_only=True)
    ckpt["model_options"] = dict(ckpt["model_options"], num_landmarks=68)
    torch.save(ckpt, path)
    with pytest.raises(UserError, match="weights do not match"):
        load_checkpoint(path)
    with pytest.raises(UserError, match="expected 'atpn'"):
        load_checkpoint(path, expect_model="atpn")


def test_checkpoint_written_before_versions_rebuilds_the_first_atpn(tmp_path):
    """ATPN version 2 (the int8-friendly channel plan) is the default; a checkpoint whose options predate
    the `version` option was written by version 1 and must load as version 1, with its own weights."""
    from atpn_edge.train.checkpoint import read_checkpoint

    assert build_model("atpn").options["version"] == 2
    old = build_model("atpn", version=1, heatmap_kernel="gaussian").eval()
    path = tmp_path / "old.pt"
    save_checkpoint(path, old)
    checkpoint = read_checkpoint(path)
    for option in ("version", "heatmap_kernel"):  # as the first releases wrote them
        del checkpoint["model_options"][option]
    torch.save(checkpoint, path)
    loaded, _ = load_checkpoint(path)
    assert loaded.options["version"] == 1 and len(loaded.backbone.stage1) == 2
    x = torch.randn(1, 3, 112, 112)
    torch.testing.assert_close(loaded(x)["landmarks"], old(x)["landmarks"])


@pytest.mark.parametrize("version", [0, 4, "2", True])
def test_unknown_atpn_version_is_a_user_error(version):
    with pytest.raises(UserError, match="version"):
        build_model("atpn", version=version)
