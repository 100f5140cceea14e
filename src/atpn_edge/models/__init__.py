"""Models: ATPN, its lite variant and the baselines (PFLD 0.25x/1x, MobileNetV2 regression).

    model = build_model("atpn", num_landmarks=98, heads=("landmarks", "pose", "tracking"))
    out = model(x)  # x (B, 3, S, S) float32 RGB in [-1, 1] -> dict:
        landmarks  (B, P, 2) normalised crop coordinates, u = (x + 0.5) / S
        pose       (B, 3)    yaw, pitch, roll in degrees
        face_logit (B,)      raw logit of "this crop holds a face"        (ATPN tracking head)
        face_box   (B, 4)    x1, y1, x2, y2 of the face, normalised crop coords (tracking head)
Only the keys of the heads that exist are returned.
"""

from torch import nn

from atpn_edge.models.atpn import set_regressor_template
from atpn_edge.models.counting import count_params, count_params_and_macs, model_summary
from atpn_edge.models.registry import MODEL_NAMES, build_model, model_heads, rebuild_model, resolve_options, select_heads
from atpn_edge.models.template import landmark_template


def landmark_regressor(model: nn.Module) -> nn.Linear | None:
    """The final Linear of the landmark head (its bias holds the mean-shape template), if any."""
    head = getattr(model, "landmark_head", None)
    if isinstance(head, nn.Linear):
        return head
    return getattr(head, "regressor", None)


def set_landmark_template(model: nn.Module, template) -> None:
    """Initialise the landmark regressor's bias with a (P, 2) mean shape (e.g. the training set's)."""
    regressor = landmark_regressor(model)
    if regressor is None:
        raise ValueError(f"model {getattr(model, 'name', model)!r} has no landmark regressor")
    set_regressor_template(regressor, template)


__all__ = [
    "MODEL_NAMES",
    "build_model",
    "count_params",
    "count_params_and_macs",
    "landmark_regressor",
    "landmark_template",
    "model_heads",
    "model_summary",
    "rebuild_model",
    "resolve_options",
    "select_heads",
    "set_landmark_template",
]
