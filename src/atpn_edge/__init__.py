"""atpn-edge: train, compress, export and benchmark ATPN, a multitask mobile face network.

Importing this package (and its `data`, `metrics` and `runtime` modules) never imports torch,
so exported artifacts can be run on a board with only numpy, OpenCV and an interpreter.
"""

__version__ = "0.1.0"
