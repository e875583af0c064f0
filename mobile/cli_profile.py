"""`anyir profile BUNDLE|ARTIFACT --target host|android|ios` and `anyir profile compare R1.json R2.json ...`."""
from __future__ import annotations

import sys
from pathlib import Path

from anyir_core.errors import AnyIRError


def _eager_reference(manifest: dict | None, targets, quiet: bool):
    """(model, artifact ref) of the checkpoint the artifacts were made from, or (None, None) with a note when
    it is not here (a bundle carries the checkpoint's sha256, not the checkpoint)."""
    from anyir_core.checkpoint import load_checkpoint
    from conversion.base import file_sha256
    from conversion.source import ModelSource
    name = (manifest or {}).get("model", {}).get("checkpoint", {}).get("name") or targets[0].art.source.get("checkpoint")
    want = (manifest or {}).get("model", {}).get("checkpoint", {}).get("sha256") or targets[0].art.checkpoint_sha256
    try:
        src = ModelSource(name or "default")
        path = src.checkpoint_path
        got = file_sha256(path)
    except (AnyIRError, OSError, TypeError):
        got, path = None, None
    if got is None or got != want:
        if not quiet:
            print(f"no eager reference row: the checkpoint {name!r} the artifacts were made from is not here "
                  "(or differs); pass --checkpoint", file=sys.stderr)
        return None, None
    model = load_checkpoint(str(path)).eval()
    return model, {"id": "eager-pytorch-fp32", "file": Path(path).name, "sha256": got, "backend": "pytorch",
                   "precision": "fp32", "bytes": Path(path).stat().st_size}


def cmd_profile(args) -> None:
    import tempfile
    from .cli_convert import _quiet_toolchain_logs
    from .logs import native_chatter_to
    from .profiling import ProfileError, format_table, host_target, new_profile, profile_host, select, write_result
    _quiet_toolchain_logs()
    if not args.verbose:
        native_chatter_to(Path(tempfile.gettempdir()) / "anyir-runtime.log")
    if args.source == "compare":
        return cmd_compare(args)
    if args.results:
        raise AnyIRError(f"anyir profile takes one bundle or artifact, got {1 + len(args.results)} paths "
                         "(to compare results: anyir profile compare R1.json R2.json ...)")
    if args.runs < 1 or args.warmup < 0 or (args.threads is not None and args.threads < 1):
        raise AnyIRError("--runs must be at least 1, --warmup at least 0, --threads at least 1")
    if args.target == "android":
        from .profile_android import profile_android
        profile = profile_android(args)
    elif args.target == "ios":
        from .profile_ios import profile_ios
        profile = profile_ios(args)
    else:
        bundle, targets, manifest = select(args.source, args.artifact)
        import torch
        threads = args.threads or torch.get_num_threads()
        eager, ref = (None, None)
        if not args.no_reference:
            if args.checkpoint:
                targets[0].art.source["checkpoint"] = args.checkpoint
                manifest = None if manifest is None else {**manifest, "model": {**manifest["model"], "checkpoint": {
                    **manifest["model"]["checkpoint"], "name": args.checkpoint}}}
            eager, ref = _eager_reference(manifest, targets, args.quiet)
        photo = None
        if args.photo:
            from anyir_core.tiling import read_photo
            from .cli_bundle import check_image
            check_image(Path(args.photo))
            photo = read_photo(args.photo).rgb
        profile = new_profile(host_target(), {"runs": args.runs, "warmup": args.warmup, "threads": threads}, bundle)
        profile["results"] = profile_host(targets, runs=args.runs, warmup=args.warmup, threads=threads,
                                          eager=eager, eager_ref=ref, ops=not args.no_ops, memory=not args.no_memory,
                                          photo=photo, overlap=(manifest or {}).get("input", {}).get("overlap"),
                                          progress=not args.quiet and sys.stderr.isatty())
    print(format_table(profile))
    if args.out:
        out = write_result(profile, args.out)
        print(f"wrote {out}")
    failed = [r for r in profile["results"] if r["status"] != "ok"]
    if failed and len(failed) == len(profile["results"]):
        raise ProfileError(f"every artifact failed; first: {failed[0]['artifact']['id']}: {failed[0]['error']}")


def cmd_compare(args) -> None:
    from .profile_compare import compare, into_bundle
    files = args.results
    if not files:
        raise AnyIRError("anyir profile compare takes result files: anyir profile compare R1.json R2.json ...")
    text, plot = compare(files, plot_path=args.plot)
    print(text)
    if plot:
        print(f"wrote {plot}")
    if args.into:
        added = into_bundle(args.into, files)
        print(f"added {len(added)} profile(s) to {args.into} ({', '.join(added)}); "
              f"`anyir bundle verify {args.into}` checks it")


def add_parsers(sub) -> None:
    s = sub.add_parser(
        "profile", help="profile a bundle's artifacts on the host, an Android device or an iOS device",
        description="anyir profile BUNDLE|ARTIFACT --target host|android|ios [--out r.json]; "
                    "anyir profile compare R1.json R2.json ... [--plot p.png] [--into BUNDLE]")
    s.add_argument("source", metavar="BUNDLE|ARTIFACT|compare", help="a bundle folder, one artifact, or `compare`")
    s.add_argument("results", nargs="*", help=__import__("argparse").SUPPRESS)  # compare's result files
    s.add_argument("--target", default="host", choices=("host", "android", "ios"))
    s.add_argument("--artifact", action="append", metavar="ID", help="only this artifact id (repeatable)")
    s.add_argument("--runs", type=int, default=20, help="timed runs after warm-up (default 20)")
    s.add_argument("--warmup", type=int, default=3)
    s.add_argument("--threads", type=int, help="default: torch's thread count on the host, 4 on a phone")
    s.add_argument("--photo", help="also time one whole photo through the tiled path (host; on Android the app's)")
    s.add_argument("--checkpoint", help="host: checkpoint for the eager reference row (default: the bundle's)")
    s.add_argument("--no-reference", action="store_true", help="host: skip the eager PyTorch row")
    s.add_argument("--no-ops", action="store_true", help="skip per-op tables")
    s.add_argument("--no-memory", action="store_true", help="host: skip the per-artifact peak-memory processes")
    s.add_argument("--out", help="result JSON (profile-1 schema)")
    s.add_argument("--quiet", action="store_true")
    s.add_argument("--verbose", action="store_true", help="show the runtimes' own log lines (kept out by default)")
    g = s.add_argument_group("android")
    g.add_argument("--serial", help="adb device serial (required when several devices are attached)")
    g.add_argument("--adb", help="adb executable (default: adb on PATH)")
    g.add_argument("--benchmark-model", help="LiteRT benchmark_model binary for the device's ABI (.tflite rows)")
    g.add_argument("--executor-runner", help="ExecuTorch executor_runner built with ETDump for the device (.pte rows)")
    g.add_argument("--app", action="store_true", help="also run the Android demo's benchmark mode (installed app)")
    g.add_argument("--timeout", type=int, default=900, help="seconds to wait for a device run (default 900)")
    g = s.add_argument_group("ios")
    g.add_argument("--device", help="xcodebuild destination device or simulator name")
    g.add_argument("--destination", help="full xcodebuild -destination (instead of --device)")
    g.add_argument("--project", help="AnyIRDemo.xcodeproj (default ios_demo/AnyIRDemo/AnyIRDemo.xcodeproj)")
    g.add_argument("--xcresult", help="read an existing .xcresult instead of running xcodebuild")
    g = s.add_argument_group("compare")
    g.add_argument("--plot", help="compare: write latency and top-op plots to this PNG")
    g.add_argument("--into", help="compare: add the results to this bundle's manifest and report")
    s.set_defaults(func=cmd_profile)
