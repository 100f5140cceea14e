"""The embedded default data set: synthetic faces rendered from 3-D face geometry.

    from atpn_edge.data.synthetic import SyntheticFaces, SyntheticConfig, render_sequence
    ds = SyntheticFaces(num_samples=8000, seed=0, config=SyntheticConfig(size=112))
    sample = ds[0]                    # atpn_edge.data.sample.Sample
    arrays = ds.cached("runs/cache")  # SyntheticArrays, rendered once on all cores
"""

from atpn_edge.data.synthetic.dataset import (
    GENERATOR_VERSION,
    SyntheticArrays,
    SyntheticConfig,
    SyntheticFaces,
    render_sample,
)
from atpn_edge.data.synthetic.preview import preview
from atpn_edge.data.synthetic.sequence import SyntheticSequence, render_sequence

__all__ = [
    "GENERATOR_VERSION",
    "SyntheticArrays",
    "SyntheticConfig",
    "SyntheticFaces",
    "SyntheticSequence",
    "preview",
    "render_sample",
    "render_sequence",
]
