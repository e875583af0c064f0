"""`anyir qat`, `anyir export`, `anyir verify`: the conversion commands (`anyir profile` is in cli_profile.py)."""
from __future__ import annotations

import json
from pathlib import Path

from anyir_core.errors import AnyIRError


def _quiet_toolchain_logs() -> None:
    # torchao logs that it cannot load its CUDA-only kernels; harmless on CPU (FACTS.md)
    import logging
    for name in ("torchao", "executorch", "root", "torch.utils._pytree", "coremltools"):
        logging.getLogger(name).setLevel(logging.ERROR)


# the largest tile an artifact is exported for: photos of any size are tiled, and a bigger static graph only
# costs memory (a 100000-px tile went on to trace the model at that size: 120 GB for its input alone)
MAX_TILE = 2048


def _tile(size: list[int] | None) -> tuple[int, int]:
    if not size:
        return 256, 256
    if len(size) > 2:
        raise AnyIRError(f"--size takes H or H W, got {len(size)} numbers")
    h, w = (size[0], size[0]) if len(size) == 1 else size
    if h % 8 or w % 8 or h < 16 or w < 16 or max(h, w) > MAX_TILE:
        raise AnyIRError(f"--size must be multiples of 8 from 16 to {MAX_TILE}, got {h}x{w} (larger photos are tiled)")
    return h, w


def cmd_qat(args) -> None:
    _quiet_toolchain_logs()
    from conversion.quantize import checkpoint_sidecar, quant_config_from, quantize

    if args.mode == "ptq" and (args.steps is not None or args.lr is not None):
        raise AnyIRError("--mode ptq only calibrates (--calibration batches per task); --steps and --lr are QAT's")
    opts = {k: v for k, v in {"mode": args.mode, "steps": args.steps, "patch": args.patch, "batch": args.batch,
                              "lr": args.lr, "seed": args.seed, "workers": args.workers, "threads": args.threads,
                              "save_every": args.save_every, "calibration": args.calibration,
                              "calibration_patch": args.calibration_patch, "calibration_batch": args.calibration_batch,
                              "float_levels": args.float_levels}.items() if v is not None}
    if args.tasks:
        opts["tasks"] = args.tasks.split(",")
    else:  # fine-tune on what the checkpoint was trained on
        tasks = checkpoint_sidecar(args.checkpoint).get("recipe", {}).get("tasks")
        if tasks:
            opts["tasks"] = tasks
    if args.data:
        opts["data"] = args.data
    out = quantize(args.checkpoint, args.out, quant_config_from(opts), preset=args.preset, resume=args.resume,
                   quiet=args.quiet, stop_after=args.stop_after)
    print(f"quantization state: {out}")


def cmd_export(args) -> None:
    _quiet_toolchain_logs()
    from conversion.base import InputSpec, get_backend, write_record
    from conversion.source import ModelSource

    backend = get_backend(args.backend)
    h, w = _tile(args.size)
    spec = InputSpec(height=h, width=w, layout=args.layout)
    backend.check(args.precision, spec.layout)
    src = ModelSource(args.checkpoint, preset=args.preset, quant_state=args.quant_state)
    src.fp32_model()  # a bad checkpoint fails here, before minutes of conversion
    if args.precision == "int8":
        src.quant_info()
    out = Path(args.out)
    if out.is_dir() or not out.suffix:
        layout = "" if spec.layout == "NCHW" else f"-{spec.layout.lower()}"
        out = out / f"{src.preset}-{args.backend}-{args.precision}-{h}x{w}{layout}{backend.suffix}"
    if out.exists() and not args.force:
        raise AnyIRError(f"{out} exists; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    art = backend.export(src, spec, args.precision, out)
    rec = write_record(art, out.parent)
    print(f"wrote {out} ({art.bytes / 1e6:.2f} MB) and {rec.name}")
    d = art.details.get("delegation")
    if d:
        print(f"delegation: {d['subgraphs']} XNNPACK subgraph(s), {d['nodes_delegated']} nodes inside, "
              f"{d['nodes_outside']} outside {d['ops_outside']}; MACs delegated {100 * d['mac_share_delegated']:.2f}%")


def cmd_verify(args) -> None:
    _quiet_toolchain_logs()
    from anyir_core.degrade import parse_tasks
    from conversion.verify import DEFAULT_TASKS, format_verdict, verify

    tasks = parse_tasks(args.tasks) if args.tasks else DEFAULT_TASKS
    v = verify(args.artifact, checkpoint=args.checkpoint, quant_state=args.quant_state, tasks=tasks,
               progress=not args.quiet)
    print(format_verdict(v))
    if args.json:
        Path(args.json).write_text(json.dumps(v, indent=2) + "\n")
    if not v["passed"]:
        raise AnyIRError(f"{v['artifact']}: numeric PSNR {v['numeric_psnr_min']:.1f} dB is below {v['threshold']:.0f} dB")


def add_parsers(sub) -> None:
    s = sub.add_parser("qat", help="quantization-aware fine-tuning (or --mode ptq calibration) for int8 artifacts")
    s.add_argument("--checkpoint", default="default")
    s.add_argument("--preset")
    s.add_argument("--out", required=True, help="folder for the quantization state")
    s.add_argument("--mode", choices=("qat", "ptq"))
    s.add_argument("--tasks", help="default: the tasks the checkpoint was trained on")
    s.add_argument("--data", action="append")
    for name, typ in (("steps", int), ("patch", int), ("batch", int), ("lr", float), ("seed", int),
                      ("workers", int), ("threads", int), ("save-every", int), ("calibration", int), ("calibration-patch", int),
                      ("calibration-batch", int), ("float-levels", int)):
        s.add_argument(f"--{name}", type=typ)
    s.add_argument("--resume", action="store_true")
    s.add_argument("--stop-after", type=int, help=__import__("argparse").SUPPRESS)
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_qat)

    s = sub.add_parser("export", help="convert a checkpoint into a mobile artifact")
    s.add_argument("--backend", required=True)
    s.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "int8", "int8w"),
                   help="fp32 | fp16 | int8 (from --quant-state) | int8w (Core ML: int8 weights only)")
    s.add_argument("--checkpoint", default="default")
    s.add_argument("--preset")
    s.add_argument("--quant-state", help="int8: the folder `anyir qat` wrote")
    s.add_argument("--size", nargs="+", type=int, metavar="H [W]", help="tile size (default 256)")
    s.add_argument("--layout", default="NCHW", choices=("NCHW", "NHWC", "image"),
                   help="NHWC: TFLite; image: Core ML image-typed input (CVPixelBuffer)")
    s.add_argument("--out", required=True, help="artifact file, or a folder to name it in")
    s.add_argument("--force", action="store_true")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("verify", help="run an artifact on held-out photos against its PyTorch reference")
    s.add_argument("artifact")
    s.add_argument("--checkpoint", help="default: the one named in the artifact's record")
    s.add_argument("--quant-state")
    s.add_argument("--tasks")
    s.add_argument("--json")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_verify)
