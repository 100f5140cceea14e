"""Compression: PT2E int8 quantization (pt2e.py), pruning and recipes."""
