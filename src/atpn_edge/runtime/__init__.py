"""Torch-free inference: preprocessing, the Predictor protocol and the adapters for exported artifacts."""
