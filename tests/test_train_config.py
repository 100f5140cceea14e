import pytest

from atpn_edge.errors import UserError
from atpn_edge.train.config import TrainConfig, load_config


def _write(tmp_path, text):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


def test_recipe_overrides_and_nested_weights(tmp_path):
    path = _write(tmp_path, "epochs: 3\nloss_weights:\n  pose: 0.5\n")
    config = load_config(path, {"lr": 0.01, "batch_size": None})
    assert config.epochs == 3 and config.lr == 0.01 and config.batch_size == TrainConfig().batch_size
    assert config.loss_weights.pose == 0.5 and config.loss_weights.landmarks == 1.0


@pytest.mark.parametrize(
    "text,needle",
    [
        ("epocs: 3\n", "unknown key 'epocs'"),
        ("epochs: three\n", "'epochs' must be a whole number"),
        ("epochs: 2.5\n", "'epochs' must be a whole number"),
        ("loss_weights:\n  posee: 1\n", "unknown key 'loss_weights.posee'"),
        ("augment: 1\n", "'augment' must be true or false"),
        ("epochs: 0\n", "'epochs' must be at least 1"),
        ("lr: -1\n", "'lr' must be greater than 0"),
        ("[1, 2]\n", "expected a mapping"),
        ("epochs: [\n", "not valid YAML"),
    ],
)
def test_bad_recipes_name_file_and_key(tmp_path, text, needle):
    path = _write(tmp_path, text)
    with pytest.raises(UserError) as e:
        load_config(path)
    assert needle in str(e.value) and str(path) in str(e.value)


def test_demo_recipe_is_valid():
    from pathlib import Path

    config = load_config(Path(__file__).parents[1] / "recipes" / "train_demo.yaml")
    assert config.model == "atpn" and config.data == "synthetic"
