"""MediaPipe's face landmark model as a peer: the same alignment + tracking job, timed in the same
LiteRT interpreter (XNNPACK) as our .tflite artifacts, scored on our data through 68 ibug points.

The model (`face_landmark.tflite` from the mediapipe 0.10.14 wheel, fetched by `make setup`, see
scripts/fetch_peers.py): input 1x192x192x3 float32 RGB in [0, 1] (MediaPipe's face_landmark graph
converts the ROI with output_tensor_float_range 0..1); outputs 1x1x1x1404 (468 x (x, y, z) in
input pixels) and 1x1x1x1 face-presence logit (the graph applies a sigmoid).

Crops: our 112x112 crops (square, 1.25 x the landmark box) resized to 192x192 (bilinear).
MediaPipe's own ROI is its detector box x 1.5, rotated upright; the framings are close but not
equal, so its NME here is approximate (marked so in every table).

468 -> 68 points: the correspondence published with PeizhiYan/Mediapipe_2_Dlib_Landmarks (2024),
a commonly used list: one mesh vertex per ibug point, or the mean of two where the ibug point
lies between mesh vertices. Our labels are mapped 98 -> 68 with WFLW98_TO_IBUG68. NME, FR and AUC
are then computed on the 68 points (inter-ocular: ibug 36 and 45).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from atpn_edge.errors import UserError
from atpn_edge.runtime._common import peers_dir
from atpn_edge.runtime.base import face_score_from_logit

INPUT_SIZE = 192
FILE_NAME = "face_landmark.tflite"
SOURCE = "mediapipe==0.10.14 wheel, mediapipe/modules/face_landmark/face_landmark.tflite"
MAPPING_SOURCE = "PeizhiYan/Mediapipe_2_Dlib_Landmarks (mesh vertex, or mean of two, per ibug point)"

# ibug point i -> MediaPipe mesh vertices whose mean stands for it
MESH468_TO_IBUG68: tuple[tuple[int, ...], ...] = (
    # jaw 0-16 (subject's right ear to left ear)
    (127,), (234,), (93,), (132, 58), (58, 172), (136,), (150,), (176,), (152,), (400,), (379,), (365,),
    (397, 288), (361,), (323,), (454,), (356,),
    # right brow 17-21, left brow 22-26
    (70,), (63,), (105,), (66,), (107,), (336,), (296,), (334,), (293,), (300,),
    # nose bridge 27-30, nostrils 31-35
    (168, 6), (197, 195), (5,), (4,), (75,), (97,), (2,), (326,), (305,),
    # right eye 36-41, left eye 42-47
    (33,), (160,), (158,), (133,), (153,), (144,), (362,), (385,), (387,), (263,), (373,), (380,),
    # outer lip 48-59
    (61,), (39,), (37,), (0,), (267,), (269,), (291,), (321,), (314,), (17,), (84,), (91,),
    # inner lip 60-67
    (78,), (82,), (13,), (312,), (308,), (317,), (14,), (87,),
)
assert len(MESH468_TO_IBUG68) == 68


def mesh_to_ibug68(mesh: np.ndarray) -> np.ndarray:
    """(..., 468, D) mesh points -> (..., 68, D) ibug points."""
    return np.stack([mesh[..., list(idx), :].mean(axis=-2) for idx in MESH468_TO_IBUG68], axis=-2)


def find_face_landmark_model() -> Path:
    """The fetched face_landmark.tflite, or UserError saying to run `make setup`."""
    path = peers_dir() / FILE_NAME
    if not path.is_file():
        raise UserError(f"{path}: MediaPipe's face landmark model is missing; run `make setup` "
                        "(scripts/fetch_peers.py reads it out of the mediapipe wheel)")
    return path


class MediaPipeFaceLandmark:
    """A Predictor (uint8 RGB crops -> landmarks (B, 68, 2) normalised, face_score) over the peer model."""

    runtime = "litert"
    num_landmarks = 68
    outputs = ("landmarks", "face_score")
    input_size = INPUT_SIZE

    def __init__(self, path: str | os.PathLike | None = None, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path) if path else find_face_landmark_model()
        self.name = self.path.name
        self.interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        details = self.interpreter.get_output_details()
        self.mesh_index = next(d["index"] for d in details if int(np.prod(d["shape"])) == 468 * 3)
        self.score_index = next(d["index"] for d in details if int(np.prod(d["shape"])) == 1)

    @staticmethod
    def prepare(images: np.ndarray) -> np.ndarray:
        """(B, S, S, 3) uint8 crops -> (B, 192, 192, 3) float32 in [0, 1]."""
        import cv2

        if images.ndim == 3:
            images = images[None]
        resized = [cv2.resize(im, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR) for im in images]
        return np.stack(resized).astype(np.float32) / 255.0

    def inference_call(self, x: np.ndarray):
        """(1, 192, 192, 3) float32 in [0, 1] placed once -> the bare invoke (runtime/base.Predictor)."""
        self.interpreter.set_tensor(self.input_index, np.ascontiguousarray(x, dtype=np.float32))
        return self.interpreter.invoke

    def run_normalized(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """(1, 192, 192, 3) float32 in [0, 1] -> raw mesh (1, 468, 3) in input pixels and the face logit."""
        self.interpreter.set_tensor(self.input_index, np.ascontiguousarray(x, dtype=np.float32))
        self.interpreter.invoke()
        mesh = self.interpreter.get_tensor(self.mesh_index).reshape(1, 468, 3)
        logit = self.interpreter.get_tensor(self.score_index).reshape(1)
        return {"mesh": mesh, "face_logit": logit}

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        x = self.prepare(images)
        meshes, scores = [], []
        for i in range(len(x)):
            out = self.run_normalized(x[i : i + 1])
            meshes.append(out["mesh"][0])
            scores.append(face_score_from_logit(out["face_logit"])[0])
        mesh = np.stack(meshes)
        # pixel centres: u = (x + 0.5) / S would be for integer pixel indices; MediaPipe's
        # coordinates are continuous in [0, S], so u = x / S.
        landmarks = mesh_to_ibug68(mesh[..., :2]) / INPUT_SIZE
        return {"landmarks": landmarks.astype(np.float32), "face_score": np.asarray(scores, np.float32)}
