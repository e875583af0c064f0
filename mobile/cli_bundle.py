"""`anyir build`, `anyir restore`, `anyir bundle verify`: the main job and its two companions."""
from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

from anyir_core.errors import AnyIRError


def _csv(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def cmd_build(args) -> None:
    import tempfile
    from .cli import _load_config_file
    from .cli_convert import _quiet_toolchain_logs
    from .bundle import BuildConfig, build, build_config_from
    from .cache import BuildCache
    from .logs import native_chatter_to, warnings_to
    if args.quiet and args.verbose:
        raise AnyIRError("--quiet and --verbose exclude each other")
    _quiet_toolchain_logs()
    log = Path(tempfile.gettempdir()) / "anyir-runtime.log"
    if not args.verbose:  # the runtimes' own lines (cpuinfo probes, XNNPACK notices, library warnings) go to a log
        native_chatter_to(log)
        warnings_to(log)
    opts = _load_config_file(args.config)
    flags = {"checkpoint": args.checkpoint, "preset": args.preset, "backends": _csv(args.backends),
             "precisions": _csv(args.precisions), "size": args.size, "overlap": args.overlap,
             "quant_state": args.quant_state, "name": args.name, "version": args.bundle_version, "out": args.out,
             "repeats": args.repeats}
    opts.update({k: v for k, v in flags.items() if v is not None})
    if args.qat_steps is not None:
        opts["qat"] = {**opts.get("qat", {"calibration": BuildConfig().qat["calibration"]}), "steps": args.qat_steps}
    if args.tflite_layout:
        opts["layouts"] = {**opts.get("layouts", {}), "tflite": args.tflite_layout}
    if args.coreml_layout:
        opts["layouts"] = {**opts.get("layouts", {}), "coreml": args.coreml_layout}
    if args.force:
        opts["force"] = True
    if args.strict:
        opts["strict"] = True
    if args.no_cache:
        opts["cache"] = False
    if args.cache_dir:
        opts["cache_dir"] = args.cache_dir
    if args.jobs is not None:
        opts["jobs"] = args.jobs
    ps = opts.get("precisions")
    if isinstance(ps, dict):  # (BuildConfig.validate iterates them: a number there was a traceback)
        for b, names in ps.items():
            if not isinstance(names, list) or not all(isinstance(p, str) for p in names):
                raise AnyIRError(f"build option precisions: {b}: expected a list of names, got {str(names)[:40]!r}")
    cfg = build_config_from(opts)
    _check_build_config(cfg)
    command = "anyir " + " ".join(shlex.quote(a) for a in (args.argv or ["build"]))
    t0 = time.perf_counter()
    dest = build(cfg, quiet=args.quiet, command=command, verbose=args.verbose)
    m = json.loads((dest / "manifest.json").read_text())
    print(summary(m, dest))
    print(BuildCache(cfg.cache_dir, enabled=cfg.cache).describe()
          + (f"; {m['build']['cache']['hits']} stages from it" if cfg.cache else ""))
    if not args.verbose:
        print(f"runtime messages: {log}")
    print(f"bundle: {dest} ({time.perf_counter() - t0:.0f} s); check it with `anyir bundle verify {dest}`")


def _check_build_config(cfg) -> None:
    """What BuildConfig.validate leaves open, checked before any work: the names `build` makes a folder of (a
    name with '/' or '..' put the bundle outside --out, found late as a traceback) and the tile it traces at
    (an absurd one was traced)."""
    import re

    from .cli_convert import MAX_TILE
    for what, value, chars in (("--name", cfg.name, "._-"), ("--version", cfg.version, "._+-")):  # as the schema
        if value is not None and not re.match(rf"^[A-Za-z0-9][A-Za-z0-9{re.escape(chars)}]{{0,63}}$", value):
            raise AnyIRError(f"{what} {value[:40]!r}: letters, digits and {' '.join(chars)} only (it names the "
                             "bundle's folder)")
    if max(cfg.tile) > MAX_TILE:
        raise AnyIRError(f"tile size {cfg.tile[0]}x{cfg.tile[1]}: at most {MAX_TILE} (larger photos are tiled)")


def summary(m: dict, dest: Path) -> str:
    lines = [f"{'artifact':<26}{'MB':>7}{'ms/tile':>9}{'x eager':>9}{'numeric dB':>12}  "
             + " ".join(f"{t:>8}" for t in (m["artifacts"][0]["quality"]["tiles"] if m["artifacts"] else []))]
    lat = m["host_latency"]
    lines.append(f"{'eager PyTorch fp32':<26}{'':>7}{lat['eager_ms_median']:>9.1f}{1:>9.2f}{'':>12}  "
                 + " ".join(f"{v['fp32_psnr']:>8.2f}" for v in (m["artifacts"][0]["quality"]["tiles"].values()
                                                                if m["artifacts"] else [])))
    for a in m["artifacts"]:
        n = a["numerics"]
        mark = "" if n["passed"] else " (below)"
        lines.append(f"{a['id'] + ('*' if a['id'] == m['default_artifact'] else ''):<26}{a['bytes'] / 1e6:>7.2f}"
                     + (f"{a['latency']['host_ms_median']:>9.1f}{a['latency']['speedup_vs_eager']:>9.2f}"
                        if a["latency"]["host_ms_median"] is not None else f"{'device':>9}{'-':>9}")
                     + f"{n['psnr_min']:>12.1f}  " + " ".join(f"{v['psnr']:>8.2f}" for v in a["quality"]["tiles"].values())
                     + mark)
    for f in m["failed"]:
        lines.append(f"not built: {f['backend']} {f['precision']} ({f['stage']}): {f['error']}")
    lines.append("* default artifact for `anyir restore` (the fastest passing one on this host); task columns: PSNR dB "
                 "on held-out tiles")
    lines.append("stages: " + ", ".join(f"{s['stage']} {s['seconds']:.0f}s" + (" (cached)" if s.get("cached") else "")
                                        for s in m["build"]["stages"]))
    rk = m.get("ranking") or {}
    lines.append("ranking: " + "; ".join(f"{plat} {' > '.join(ids) or '-'}" for plat, ids in rk.items())
                 + " (host: measured here; android/ios: by precision, then size)")
    return "\n".join(lines)


def cmd_bundle_verify(args) -> None:
    from .bundle import verify_bundle
    mpath = Path(args.bundle) / "manifest.json"
    try:  # verify_bundle takes a manifest that parses to a list or a number for a mapping (a traceback)
        doc = json.loads(mpath.read_text()) if mpath.is_file() else {}
    except (ValueError, UnicodeDecodeError):
        doc = {}  # verify_bundle names it
    if not isinstance(doc, dict):
        raise AnyIRError(f"{mpath}: a JSON {type(doc).__name__}, not a manifest; the bundle is damaged")
    r = verify_bundle(args.bundle)
    m = r["manifest"]
    if r["ok"]:
        print(f"{args.bundle}: OK: schema {m['schema']}, {len(m['files'])} files checked, "
              f"{len(m['artifacts'])} artifacts ({', '.join(a['id'] for a in m['artifacts'])})")
        return
    for p in r["problems"]:
        print(f"{args.bundle}: {p}", file=sys.stderr)
    raise AnyIRError(f"{args.bundle}: {len(r['problems'])} problem(s); first: {r['problems'][0]}")


def load_bundle_runner(bundle: str | Path, backend: str | None, precision: str | None):
    """(manifest entry, runner, manifest) for the chosen artifact of a bundle; the manifest checked (schema 1,
    valid, unique ids, no path out of the bundle: mobile/bundle_check.py) and checksums enforced."""
    from conversion.base import get_backend, read_record

    from .bundle import find_artifact
    from .bundle_check import inside, load_manifest
    root = Path(bundle)
    m = load_manifest(root)
    entry = find_artifact(m, backend, precision)
    rel = next(iter(entry["paths"].values()))
    file = inside(root, rel)
    inside(root, rel + ".json")
    art = read_record(file)  # refuses a changed or truncated artifact
    if art.sha256 != entry["sha256"]:
        raise AnyIRError(f"{rel}: does not match the manifest (sha256); run `anyir bundle verify {root}`")
    return entry, get_backend(art.backend).load(art, file.parent), m


def check_image(path: Path) -> None:
    from anyir_core.data import opened_image
    with opened_image(path) as im:
        try:
            im.verify()
        except (OSError, SyntaxError, ValueError) as e:
            raise AnyIRError(f"{path}: unreadable or truncated image ({str(e)[:100]})") from None


def cmd_restore(args) -> None:
    from anyir_core.tiling import TilePlan, read_photo, restore_tiled, write_photo
    from .cli_convert import _quiet_toolchain_logs
    _quiet_toolchain_logs()
    images = [Path(p) for p in args.images]
    for p in images:  # every input checked before the runtime loads (and before anything is written)
        check_image(p)
    out = Path(args.out)
    to_folder = len(images) > 1 or out.is_dir() or not out.suffix
    targets = [(out / f"{p.stem}.png") if to_folder else out for p in images]
    if len(set(targets)) != len(targets):
        raise AnyIRError("two inputs share a file name; restore them into separate --out folders")
    clash = [t for t in targets if t.exists()]
    if clash and not args.force:
        raise AnyIRError(f"{clash[0]} exists; pass --force to replace it")
    if args.vectors and Path(args.vectors).exists() and not Path(args.vectors).is_dir():
        raise AnyIRError(f"--vectors {args.vectors}: a file, not a folder")
    for folder in {t.parent for t in targets} | ({Path(args.vectors).parent} if args.vectors else set()):
        folder.mkdir(parents=True, exist_ok=True)  # an unwritable place fails here, before any work
    entry, runner, m = load_bundle_runner(args.bundle, args.backend, args.precision)
    if getattr(runner, "emulated", False) and not args.quiet:
        print(f"{entry['id']}: Core ML runs only on Apple devices; here the numpy reference interpreter executes it "
              "(the program's own arithmetic; seconds per tile)", file=sys.stderr)
    tile = tuple(m["input"]["tile"])
    overlap = m["input"]["overlap"] if args.overlap is None else args.overlap
    for src, dst in zip(images, targets):
        photo = read_photo(src)
        t = time.perf_counter()
        plan = TilePlan(photo.rgb.shape[0], photo.rgb.shape[1], tile[0], tile[1], overlap)
        restored = restore_tiled(photo.rgb, runner.run_nchw, tile, overlap, progress=not args.quiet)
        write_photo(dst, restored, photo)
        print(f"{src} -> {dst} ({photo.rgb.shape[1]}x{photo.rgb.shape[0]}, {len(plan)} tiles, {entry['id']}, "
              f"{time.perf_counter() - t:.1f} s)")
    if args.vectors:
        import os
        import shutil

        from .vectors import write_vectors
        photo = read_photo(images[0])
        dest = Path(args.vectors)
        dest.parent.mkdir(parents=True, exist_ok=True)
        work = dest.parent / f".{dest.name}.partial-{os.getpid()}"  # whole or not at all (a full disk, Ctrl-C)
        try:
            write_vectors(work, {entry["id"]: runner}, tile, overlap, photo=photo.rgb, photo_name=images[0].name,
                          tolerances={entry["id"]: entry["numerics"]["threshold"]})
            if dest.is_dir():
                for f in work.iterdir():
                    os.replace(f, dest / f.name)
            else:
                work.rename(dest)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"test vectors: {args.vectors}")


def add_parsers(sub, argv=None) -> None:
    s = sub.add_parser("build", help="the main job: checkpoint -> verified, profiled, app-ready bundle in dist/")
    s.add_argument("--config", help="YAML or JSON file of build options (BuildConfig fields); flags override it")
    s.add_argument("--checkpoint", help="default: the built-in default checkpoint")
    s.add_argument("--preset")
    s.add_argument("--backends", help="comma list (default executorch,tflite,coreml)")
    s.add_argument("--precisions", help="comma list of fp32,fp16,int8,int8w (default per backend: see README)")
    s.add_argument("--size", nargs="+", type=int, metavar="H [W]", help="tile size (default 256)")
    s.add_argument("--overlap", type=int, help="tile overlap for photos of any size (default from anyir_core.tiling)")
    s.add_argument("--tflite-layout", choices=("NCHW", "NHWC"), help="default NHWC (Android bitmaps)")
    s.add_argument("--coreml-layout", choices=("NCHW", "image"), help="default NCHW (multiarray); image: CVPixelBuffer input")
    s.add_argument("--quant-state", help="reuse a state from `anyir qat` instead of running QAT")
    s.add_argument("--qat-steps", type=int, help="QAT fine-tuning steps in the build (default 40)")
    s.add_argument("--name")
    s.add_argument("--version", dest="bundle_version", help="bundle version (default: the package version)")
    s.add_argument("--out", help="parent folder of the bundle (default dist)")
    s.add_argument("--repeats", type=int, help="latency repeats per artifact (default 10)")
    s.add_argument("--force", action="store_true", help="replace an existing bundle of the same name and version")
    s.add_argument("--strict", action="store_true", help="fail if any backend x precision fails")
    s.add_argument("--no-cache", action="store_true", help="run every stage; neither read nor write the build cache")
    s.add_argument("--cache-dir", help="build cache folder (default $ANYIR_CACHE_DIR, else ~/.cache/anyir-mobile/build)")
    s.add_argument("--jobs", type=int, help="worker processes for the artifacts (default $ANYIR_BUILD_JOBS, else one "
                   "per CPU up to 4); 1: everything in this process, with progress bars")
    s.add_argument("--quiet", action="store_true", help="print nothing but errors and the final summary")
    s.add_argument("--verbose", action="store_true",
                   help="also each verification's table and the runtimes' own lines (otherwise kept in a log)")
    s.set_defaults(func=cmd_build, argv=argv)

    s = sub.add_parser("restore", help="restore photos of any size through a bundle's artifact (tiled)")
    s.add_argument("images", nargs="+")
    s.add_argument("--bundle", required=True)
    s.add_argument("--backend")
    s.add_argument("--precision", choices=("fp32", "fp16", "int8"))
    s.add_argument("--out", required=True, help="output file (one image) or folder")
    s.add_argument("--overlap", type=int, help="default: the bundle's")
    s.add_argument("--vectors", help="also write app test vectors (plans, blend, pre/post-processed arrays) here")
    s.add_argument("--force", action="store_true")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_restore)

    s = sub.add_parser("bundle", help="bundle tools")
    bsub = s.add_subparsers(dest="bundle_cmd", required=True)
    v = bsub.add_parser("verify", help="check a bundle's manifest schema and every file's checksum")
    v.add_argument("bundle")
    v.set_defaults(func=cmd_bundle_verify)
