"""CLI: `atpn-edge bench`, `atpn-edge profile` and `atpn-edge compare` (registered through cli.COMMAND_MODULES)."""

from __future__ import annotations

import os
from atpn_edge.data.registry import DEFAULT_CACHE_DIR


def _threads(text: str) -> tuple[int, ...]:
    from atpn_edge.errors import UserError

    if text == "all":
        return (1, os.cpu_count() or 1) if (os.cpu_count() or 1) > 1 else (1,)
    try:
        values = tuple(dict.fromkeys(int(t) for t in text.split(",")))
    except ValueError:
        raise UserError(f"--threads {text}: expected a list like 1,2 or 'all'") from None
    if not values or min(values) < 1:
        raise UserError(f"--threads {text}: thread counts must be at least 1")
    return values


def cmd_bench(args) -> None:
    from atpn_edge.bench.entries import PEER_MEDIAPIPE, BenchConfig, parse_exports
    from atpn_edge.bench.harness import run_bench
    from atpn_edge.bench.targets import parse_target
    from atpn_edge.bench.timing import TimingConfig

    parse_target(args.target)
    models = list(args.model) + ([PEER_MEDIAPIPE] if args.with_mediapipe else [])
    config = BenchConfig(
        data=args.data, split=args.split, num_images=args.limit, threads=_threads(args.threads),
        timing=TimingConfig(warmup_runs=args.warmup, runs_per_round=args.runs, rounds=args.rounds),
        export=parse_exports(args.export), target=args.target, benchmark_binary=args.benchmark_binary,
        delegate=args.delegate, cache_dir=args.cache_dir, measure_memory=not args.no_memory, profile=args.profile,
        reference=args.reference,
    )
    result = run_bench(models, args.out, config=config)
    print(f"benchmarked {len(models)} model file(s): {result['files']['md']} (JSON {result['files']['json']})")
    if result.get("profile"):
        print(f"per-block profile: {result['profile']['files']['md']}")
    if args.json:
        from atpn_edge.io import write_json

        write_json(args.json, result)


def cmd_profile(args) -> None:
    from atpn_edge.bench.host import host_info
    from atpn_edge.bench.profile import profile_artifacts, profile_on_device
    from atpn_edge.bench.profile_report import blocks_table, write_profile_outputs
    from atpn_edge.bench.targets import parse_target
    from atpn_edge.bench.timing import TimingConfig
    from atpn_edge.errors import UserError

    kind, serial = parse_target(args.target)
    threads = _threads(args.threads)
    if len(threads) != 1:
        raise UserError(f"--threads {args.threads}: profile one thread count at a time")
    if kind == "adb":
        if not args.benchmark_binary:
            raise UserError("--target adb needs --benchmark-binary PATH (TFLite's Android benchmark_model, see docs/bench.md)")
        profiles = profile_on_device(args.artifact, args.benchmark_binary, serial, threads[0], args.delegate)
    elif kind == "host":
        timing = TimingConfig(warmup_runs=args.warmup, runs_per_round=args.runs, rounds=args.rounds, min_seconds_per_round=0.1)
        profiles = profile_artifacts(args.artifact, threads[0], timing)
    else:
        raise UserError(f"--target {args.target}: profile runs on host or adb[:SERIAL]")
    os.makedirs(args.out, exist_ok=True)
    files = write_profile_outputs(profiles, host_info(), args.out)
    print(blocks_table(profiles))
    print(f"profile: {files['md']} (JSON {files['json']}{', plot ' + files['png'] if 'png' in files else ''})")
    if args.json:
        from atpn_edge.io import read_json_or_none, write_json

        write_json(args.json, read_json_or_none(files["json"]))


def cmd_compare(args) -> None:
    from atpn_edge.bench.compare import run_compare

    result = run_compare(args.out, budget=args.budget, threads=_threads(args.threads), models=args.models,
                         num_images=args.limit, formats=args.formats)
    print(f"comparison: {result['files']['md']} (JSON {result['files']['json']})")
    for line in result.get("verdict", []):
        print(f"  {line}")
    if args.json:
        from atpn_edge.io import write_json

        write_json(args.json, result)


def _add_target_args(p, target_help: str) -> None:
    p.add_argument("--target", default="host", help=target_help)
    p.add_argument("--benchmark-binary", help="adb: TFLite's benchmark_model built for the phone (see docs/bench.md)")
    p.add_argument("--delegate", default="xnnpack", choices=["xnnpack", "gpu", "nnapi", "cpu"], help="adb: delegate")


def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help="latency, size, memory, MACs and accuracy of checkpoints and exported artifacts")
    p.add_argument("--model", action="append", required=True,
                   help="checkpoint (.pt), .tflite, .onnx or .pte; repeat for several (mediapipe:face_landmark names the peer)")
    p.add_argument("--export", default="none",
                   help="also export each checkpoint: default (tflite/onnx/executorch fp32+int8), all, none, or FORMAT:PRECISION,...")
    p.add_argument("--data", default="synthetic", help="synthetic (default) or KIND:PATH")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=1000, help="accuracy images (default 1000)")
    p.add_argument("--threads", default="all", help="thread counts, e.g. 1,2; 'all' = 1 and every core (default)")
    p.add_argument("--warmup", type=int, default=20, help="untimed calls before timing")
    p.add_argument("--runs", type=int, default=50, help="timed calls per round (at least)")
    p.add_argument("--rounds", type=int, default=3, help="rounds, interleaved across the models")
    _add_target_args(p, "host (default), local-benchmark, adb or adb:SERIAL")
    p.add_argument("--with-mediapipe", action="store_true", help="add MediaPipe's face landmark model as a peer row")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--reference", metavar="MODEL",
                   help="also time this registered model untrained as fp32 + int8 .tflite (e.g. mobilenetv2): the "
                        "int8/fp32 ratio this host and runtime give a well-formed graph, in the same run")
    p.add_argument("--profile", action="store_true",
                   help="also profile every .tflite/.onnx per block (profile.json/md/png in --out; see `atpn-edge profile`)")
    p.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR)
    p.add_argument("--out", default="runs/bench", help="folder for bench.json, bench.md and the PNG plots")
    p.add_argument("--json", help="also write the result JSON here")
    p.set_defaults(func=cmd_bench)

    p = subparsers.add_parser("profile", help="latency per block of the network (and per op where the runtime says), "
                              "fp32 and int8 side by side, with XNNPACK's partitions")
    p.add_argument("artifact", nargs="+", help=".tflite or .onnx files (e.g. atpn_fp32.tflite atpn_int8.tflite)")
    p.add_argument("--threads", default="1", help="one thread count (default 1)")
    p.add_argument("--warmup", type=int, default=20, help="untimed calls before timing")
    p.add_argument("--runs", type=int, default=100, help="timed calls per round (at least)")
    p.add_argument("--rounds", type=int, default=9, help="rounds; every prefix of every .tflite is timed in each")
    _add_target_args(p, "host (default) or adb[:SERIAL] (benchmark_model --enable_op_profiling)")
    p.add_argument("--out", default="runs/profile", help="folder for profile.json, profile.md and profile.png")
    p.add_argument("--json", help="also write the result JSON here")
    p.set_defaults(func=cmd_profile)

    p = subparsers.add_parser("compare", help="train and benchmark the light models and MediaPipe's on the same data and harness")
    p.add_argument("--budget", default="full", help="demo (a few minutes) or full (every model, the full budget)")
    p.add_argument("--models", help="comma-separated subset of the comparison's models")
    p.add_argument("--threads", default="1", help="thread counts for latency (default 1)")
    p.add_argument("--limit", type=int, default=None, help="accuracy images (default: the budget's)")
    p.add_argument("--formats", default="tflite",
                   help="formats each model is exported to, fp32 + int8, timed in one run: tflite, onnx, executorch")
    p.add_argument("--out", default="runs/compare")
    p.add_argument("--json")
    p.set_defaults(func=cmd_compare)
