"""What every way of running a model agrees on: preprocessing and the Predictor protocol.

A Predictor takes a batch of uint8 RGB face crops and returns named numpy arrays:
    landmarks  (B, P, 2) float32  normalised crop coordinates (see data/sample.py)
    pose       (B, 3)    float32  yaw, pitch, roll in degrees            (if the model has it)
    face_score (B,)      float32  probability that the crop holds a face (if the model has it)
    face_box   (B, 4)    float32  x1, y1, x2, y2 of the face, normalised  (if the model has it)
Outputs are looked up by name, never by position.
"""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

INPUT_SIZE = 112
# pixel -> (pixel / 255 - MEAN) / STD, RGB, NCHW for PyTorch and ONNX.
MEAN = 0.5
STD = 0.5
PREPROCESSING = {
    "input_size": INPUT_SIZE,
    "channel_order": "RGB",
    "layout": "NCHW",
    "dtype": "float32",
    "normalisation": "x / 255 * (1 / std) - mean / std, mean = 0.5, std = 0.5 (maps [0, 255] to [-1, 1])",
    "mean": MEAN,
    "std": STD,
    "crop": "square, 1.25 x the face box's longer side, centred on the box",
}

OUTPUT_NAMES = ("landmarks", "pose", "face_score", "face_box")
# The tracking head's raw output; every Predictor and every exported graph turns it into face_score.
FACE_LOGIT = "face_logit"


def deployed_name(model_output: str) -> str:
    """A model's output name -> the Predictor / artifact output name (face_logit -> face_score)."""
    return "face_score" if model_output == FACE_LOGIT else model_output


def face_score_from_logit(logit: np.ndarray) -> np.ndarray:
    """The one logit -> probability rule (a sigmoid), (B, ...) -> (B,) float32."""
    logit = np.asarray(logit, dtype=np.float64).reshape(-1)
    return (1.0 / (1.0 + np.exp(-logit))).astype(np.float32)


def preprocess(images: np.ndarray, layout: str = "NCHW") -> np.ndarray:
    """(B, H, W, 3) uint8 RGB -> float32 in [-1, 1], NCHW (default) or NHWC."""
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected (B, H, W, 3) RGB images, got shape {images.shape}")
    x = (images.astype(np.float32) / 255.0 - MEAN) / STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if layout == "NCHW" else x)


class Predictor(Protocol):
    name: str  # e.g. the artifact's file name
    runtime: str  # "torch", "litert", "tflite-runtime", "onnxruntime"
    num_landmarks: int
    outputs: tuple[str, ...]  # which of OUTPUT_NAMES this model produces

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """(B, S, S, 3) uint8 RGB crops -> named outputs as documented above."""
        ...

    def inference_call(self, x: np.ndarray) -> Callable[[], object]:
        """A zero-argument call that runs only the runtime's inference on the normalised crop x
        (1, 3, S, S), already placed in the input tensor: what TFLite's benchmark_model and
        onnxruntime_perf_test time. Layout changes, quantization of the input and reading the
        outputs back, which an app does once in its own code, are outside it."""
        ...
