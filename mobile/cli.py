"""The `anyir` command. User errors print one line and exit 2; nothing half-written is left."""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path


def _fail(msg: str, code: int = 2):
    print(f"anyir: error: {msg}", file=sys.stderr)
    sys.exit(code)


def _load_config_file(path: str | None) -> dict:
    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        _fail(f"{p}: no such config file")
    text = p.read_text()
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml
            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
    except Exception as e:
        _fail(f"{p}: not valid {'YAML' if p.suffix in ('.yaml', '.yml') else 'JSON'} ({str(e).splitlines()[0][:100]})")
    if not isinstance(data, dict):
        _fail(f"{p}: expected a mapping of option names to values")
    return data


# --- info -------------------------------------------------------------------------------------------

def cmd_info(args) -> None:
    from anyir_core.inspect import describe
    print(describe(args.preset, tuple(args.size), checkpoint=args.checkpoint, show_ops=not args.no_ops))


# --- degrade ----------------------------------------------------------------------------------------

def cmd_degrade(args) -> None:
    from anyir_core.data import load_image, save_image
    from anyir_core.degrade import degrade, parse_tasks
    from anyir_core.sheets import contact_sheet

    img = load_image(args.image)
    if args.sheet:
        tasks = parse_tasks(args.kind) if args.kind else None
        contact_sheet(img, args.out, tasks=tasks, seed=args.seed)
        print(f"wrote {args.out}")
        return
    if not args.kind:
        _fail("--kind is required (or use --sheet for all kinds on one page)")
    tasks = parse_tasks(args.kind)
    if len(tasks) != 1:
        _fail("--kind takes one degradation (join kinds with + to compose them)")
    save_image(args.out, degrade(img, tasks[0], seed=args.seed))
    print(f"wrote {args.out}")


# --- train ------------------------------------------------------------------------------------------

_TRAIN_FLAGS = ("preset", "tasks", "data", "patch", "batch", "steps", "lr", "min_lr", "warmup", "weight_decay",
                "fft_loss_weight", "grad_clip", "seed", "init", "save_every", "log_every", "keep", "threads",
                "workers", "darken", "color", "amp", "device")


def train_config(args):
    """The TrainConfig that `anyir train` ARGS describe: the config file, then the flags over it."""
    from anyir_core.train import TrainConfig

    opts = _load_config_file(args.config)
    for name in _TRAIN_FLAGS:
        v = getattr(args, name)
        if v is not None:
            opts[name] = v
    if isinstance(opts.get("tasks"), str):
        opts["tasks"] = opts["tasks"].split(",")
    return TrainConfig.from_dict(opts)


def cmd_train(args) -> None:
    from anyir_core.train import train

    final = train(train_config(args), args.out, resume=args.resume, quiet=args.quiet, stop_after=args.stop_after)
    print(f"checkpoint: {final}")


# --- eval -------------------------------------------------------------------------------------------

def cmd_eval(args) -> None:
    from anyir_core.checkpoint import load_checkpoint
    from anyir_core.degrade import parse_tasks
    from anyir_core.evaluate import evaluate, format_table

    from anyir_core.checkpoint import _atomic_write

    model = load_checkpoint(args.checkpoint or "default", preset=args.preset)
    tasks = parse_tasks(args.tasks)
    report = evaluate(model, tasks, data=args.data, crop=args.crop, baselines=not args.no_baselines,
                      grid=args.grid, quiet=args.quiet)
    print(format_table(report))
    if args.json:
        _atomic_write(Path(args.json), lambda t: Path(t).write_text(json.dumps(report, indent=2) + "\n"))
        print(f"wrote {args.json}")
    if args.grid:
        print(f"wrote {args.grid}")


def build_parser(argv=None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="anyir", description="AnyIR Mobile: all-in-one image restoration for phones")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("info", help="parameters, MACs, input constraints and export-form ops of a preset")
    s.add_argument("--preset", default="anyir")
    s.add_argument("--size", nargs=2, type=int, default=(224, 224), metavar=("H", "W"))
    s.add_argument("--checkpoint", help="describe the preset stored in this checkpoint")
    s.add_argument("--no-ops", action="store_true", help="skip the export-form op inventory (faster)")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("degrade", help="apply a synthetic degradation to an image")
    s.add_argument("image")
    s.add_argument("--kind", help="noise15, noise25, noise50, rain, haze, blur, lowlight, or a composite a+b")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--sheet", action="store_true", help="write a contact sheet of every kind instead")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_degrade)

    s = sub.add_parser("train", help="train or fine-tune (resumable; several GPUs through torchrun)")
    s.add_argument("--config", help="YAML or JSON file of training options; flags override it")
    s.add_argument("--out", required=True, help="run directory")
    s.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    s.add_argument("--preset")
    s.add_argument("--tasks", help="comma-separated degradations, or 3task / 5task")
    s.add_argument("--data", action="append",
                   help="builtin:train | folder:PATH | paired:DEGRADED,CLEAN | benchmark:TASK=ROOT (repeatable)")
    for name, typ in (("patch", int), ("batch", int), ("steps", int), ("lr", float), ("min-lr", float),
                      ("warmup", float), ("weight-decay", float), ("fft-loss-weight", float), ("grad-clip", float),
                      ("seed", int), ("save-every", int), ("log-every", int), ("keep", int), ("threads", int),
                      ("workers", int), ("darken", float), ("color", float)):
        s.add_argument(f"--{name}", type=typ)
    s.add_argument("--amp", choices=("off", "bf16"), help="bf16: mixed precision on CUDA (off by default)")
    s.add_argument("--init", help="checkpoint to fine-tune from")
    s.add_argument("--device", help="auto, cpu, cuda, cuda:N")
    s.add_argument("--stop-after", type=int, help=argparse.SUPPRESS)
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("eval", help="PSNR/SSIM per task and image, with baselines")
    s.add_argument("--checkpoint", help="default: the built-in default checkpoint")
    s.add_argument("--preset")
    s.add_argument("--tasks", default="noise15,noise25,noise50,rain,haze")
    s.add_argument("--data", default="builtin:heldout",
                   help="builtin:heldout | folder:PATH (degraded on the fly) | benchmark:TASK=ROOT (input/ + target/)")
    s.add_argument("--crop", type=int, default=0, help="evaluate a centred crop of this size (0 = whole image)")
    s.add_argument("--no-baselines", action="store_true")
    s.add_argument("--json", help="write the full report here")
    s.add_argument("--grid", help="write a before/after/reference grid PNG here")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_eval)

    from .cli_convert import add_parsers
    add_parsers(sub)
    from .cli_profile import add_parsers as add_profile_parsers
    add_profile_parsers(sub)
    from .cli_bundle import add_parsers as add_bundle_parsers
    add_bundle_parsers(sub, argv=list(argv) if argv is not None else sys.argv[1:])
    return p


def main(argv=None) -> None:
    try:
        _main(argv)
    except KeyboardInterrupt:  # also one raised during the imports, or while an error was being reported
        _fail("interrupted", 130)


def _main(argv) -> None:
    from anyir_core.errors import AnyIRError  # (imports torch: Ctrl-C lands here as often as anywhere)

    args = build_parser(argv).parse_args(argv)
    warnings.filterwarnings("ignore", message=".*_C_(mxfp8|cutlass).*")
    try:
        args.func(args)
    except AnyIRError as e:
        _fail(str(e), e.exit_code)
    except OSError as e:  # a full disk, a read-only or missing folder: the system's words, one line
        _fail(_os_error(e))


def _os_error(e: OSError) -> str:
    where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f)
    what = e.strerror or str(e).splitlines()[0][:200] or type(e).__name__
    hint = {28: "; free some space", 27: "; free some space (a file size limit was hit)", 30: "; write elsewhere",
            13: "; write elsewhere", 20: "; a file stands where a folder is needed", 17: "; a file stands where a "
            "folder is needed"}.get(e.errno, "")
    return f"{where + ': ' if where else ''}{what}{hint}"


if __name__ == "__main__":
    main()
