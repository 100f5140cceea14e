"""Data: the Sample record, landmark schemes, crops, real data set loaders and augmentation.

Nothing here imports torch. Loaders are imported lazily by `registry.open_dataset`.
"""

from atpn_edge.data.registry import DataSpec, open_dataset, parse_data_spec
from atpn_edge.data.sample import Sample

__all__ = ["DataSpec", "Sample", "open_dataset", "parse_data_spec"]
