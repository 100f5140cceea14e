"""`atpn-edge track INPUT`: register(subparsers) adds the parser; nothing heavy imported here."""

from __future__ import annotations

import argparse
import logging

from atpn_edge.errors import UserError
from atpn_edge.runtime.loader import RUNTIMES

log = logging.getLogger(__name__)


def _categories(text: str) -> tuple[str, ...]:
    names = []
    for part in text.split(","):
        part = part.strip()
        if part in ("1", "2", "3"):
            names.append(f"category{part}")
        elif part in ("category1", "category2", "category3"):
            names.append(part)
        else:
            raise UserError(f"--categories {text}: expected a list of 1, 2, 3")
    return tuple(names)


def cmd_track(args) -> None:
    from atpn_edge.track.run import run_track
    from atpn_edge.track.smoothing import OneEuroConfig
    from atpn_edge.track.tracker import TrackerConfig

    try:
        config = TrackerConfig(score_threshold=args.score_threshold, follow=args.follow, smooth=not args.no_smooth,
                               smoothing=OneEuroConfig(min_cutoff=args.min_cutoff, beta=args.beta))
    except ValueError as e:
        raise UserError(str(e)) from None
    summary = run_track(args.model, args.out, args.input, data=args.data, categories=_categories(args.categories),
                        runtime=args.runtime, threads=args.threads, config=config, baseline=not args.no_baseline,
                        write_video=not args.no_video, max_frames=args.max_frames, max_videos=args.max_videos,
                        synthetic_frames=args.frames, detector=args.detector)

    def fmt(v, spec=".4f"):
        return "n/a" if v is None else format(v, spec)

    print(f"tracked {summary['input']}: {summary['frames']} frames, {summary['detector_calls']} detector calls "
          f"({fmt(summary['detector_calls_per_100'], '.1f')}/100 frames), lost rate {fmt(summary['lost_rate'], '.3f')}, "
          f"{fmt(summary['ms_per_frame']['median'], '.2f')} ms/frame median, NME {fmt(summary['nme'])}")
    base = summary.get("baseline_detect_every_frame")
    if base:
        print(f"detect every frame: {fmt(base['ms_per_frame']['median'], '.2f')} ms/frame median, NME {fmt(base['nme'])}, "
              f"lost rate {fmt(base['lost_rate'], '.3f')}")
    if summary.get("warning"):
        print(f"warning: {summary['warning']}")
    if summary.get("error"):
        print(f"stopped early: {summary['error']}")
    print(f"outputs in {args.out}/ (summary.json, frames.jsonl" + (", track.mp4)" if not args.no_video else ")"))
    if args.json:
        from atpn_edge.io import write_json

        write_json(args.json, summary)


def register(subparsers) -> None:
    p = subparsers.add_parser("track", help="track a face through a video: detect once, follow with the model",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("input", nargs="?", default="synthetic",
                   help="synthetic[:SEED] (a rendered sequence with ground truth), a video file, a folder of frames, "
                        "a 300VW video folder, or a camera index")
    p.add_argument("--model", required=True, help="checkpoint (.pt) or exported artifact (.tflite, .onnx, .pte)")
    p.add_argument("--runtime", choices=list(RUNTIMES), default=None,
                   help="default: litert for .tflite, onnxruntime for .onnx, executorch for .pte, torch for checkpoints")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data", help="300vw:PATH: evaluate on the 300VW test videos instead of INPUT")
    p.add_argument("--categories", default="1,2,3", help="300VW test categories")
    p.add_argument("--max-videos", type=int, help="300VW: at most this many videos")
    p.add_argument("--max-frames", type=int, help="at most this many frames per video")
    p.add_argument("--frames", type=int, default=150, help="length of a synthetic sequence")
    p.add_argument("--out", default="runs/track", help="folder for track.mp4, frames.jsonl, summary.json")
    p.add_argument("--score-threshold", type=float, default=0.5, help="face score below which the track is lost")
    add_detector_option(p)
    p.add_argument("--follow", choices=["landmarks", "face_box"], default="landmarks",
                   help="next crop from the landmarks or the predicted face box")
    p.add_argument("--no-smooth", action="store_true", help="switch off One Euro smoothing of landmarks and pose")
    p.add_argument("--min-cutoff", type=float, default=1.5, help="One Euro min cutoff (Hz) for landmarks")
    p.add_argument("--beta", type=float, default=1.0, help="One Euro speed coefficient (speed in face sizes per second)")
    p.add_argument("--no-baseline", action="store_true", help="skip the detect-every-frame comparison")
    p.add_argument("--no-video", action="store_true", help="skip the annotated MP4")
    p.add_argument("--json", help="also write the summary here")
    p.set_defaults(func=cmd_track)


def add_detector_option(parser: argparse.ArgumentParser) -> None:
    """`--detector` of predict and track (the names of runtime/detector.py's DETECTORS; that module loads OpenCV,
    which the CLI does not import to start)."""
    parser.add_argument("--detector", choices=("auto", "blazeface", "haar"), default="auto",
                        help="face detector: MediaPipe's BlazeFace (fetched by make setup; auto uses it when present) "
                             "or OpenCV's Haar cascade")
