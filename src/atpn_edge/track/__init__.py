"""Face tracking on video without per-frame detection (issue 6): see tracker.py and run.py."""

from atpn_edge.track.smoothing import OneEuroConfig, OneEuroFilter
from atpn_edge.track.tracker import DetectEveryFrame, FrameResult, Tracker, TrackerConfig


def run_track(*args, **kwargs) -> dict:
    """See atpn_edge.track.run.run_track (imported lazily)."""
    from atpn_edge.track.run import run_track as _run_track

    return _run_track(*args, **kwargs)


__all__ = ["DetectEveryFrame", "FrameResult", "OneEuroConfig", "OneEuroFilter", "Tracker", "TrackerConfig", "run_track"]
