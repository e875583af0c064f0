"""Training: the released recipe (AdamW, linear warm-up then cosine, L1 + 0.1 x L1 on rfft2 real/imag),
resumable to the step, on CPU, one GPU, or several through `torchrun` (DDP).

A run directory holds `config.json`, `log.jsonl` (one line per logged step), `checkpoints/step_N/`
(model.safetensors + model.json sidecar + trainer.pt with optimizer/scheduler state; each written to a
temp folder and renamed, so a kill mid-save leaves the previous one whole) and, at the end,
`model.safetensors` + `model.json`.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
import time
import types
import typing
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import _atomic_write, _check_finite, load_checkpoint, read_safetensors, save_checkpoint
from .data import PatchSampler, Sample, benchmark_samples, builtin_samples, folder_samples, paired_samples
from .degrade import parse_tasks
from .errors import AnyIRError, CheckpointError


class TrainingInterrupted(AnyIRError):
    """Stopped by SIGINT/SIGTERM after saving; `--resume` continues."""

    exit_code = 130
from .presets import resolve_config


@dataclass
class TrainConfig:
    preset: str = "anyir-mobile"
    tasks: list[str] = field(default_factory=lambda: ["noise15", "noise25", "noise50", "rain", "haze"])
    data: list[str] = field(default_factory=lambda: ["builtin:train"])
    patch: int = 64
    batch: int = 8
    steps: int = 1000
    lr: float = 2e-4
    min_lr: float = 1e-6
    warmup: float = 0.1  # fraction of steps (the release: 15 of 150 epochs)
    weight_decay: float = 0.01
    fft_loss_weight: float = 0.1
    grad_clip: float = 0.0  # 0 = off, as released
    seed: int = 0
    init: str | None = None  # checkpoint to fine-tune from
    save_every: int = 200
    log_every: int = 10
    keep: int = 2
    threads: int = 0  # 0 = torch default
    workers: int = 0  # data-loading processes (batch `step` stays a pure function of (seed, step))
    darken: float = 0.0  # probability of an exposure-darkened clean patch (dark scenes in the mix)
    color: float = 0.0  # probability of a recoloured clean patch (channel order + white balance)
    amp: str = "off"  # "bf16": CUDA autocast to bfloat16 for the forward pass (the loss stays fp32)
    device: str = "auto"

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return config_from(cls, d, "training")

    def validate(self) -> None:
        resolve_config(self.preset)
        self.tasks = parse_tasks(self.tasks)
        for name, v, lo in (("patch", self.patch, 8), ("batch", self.batch, 1), ("steps", self.steps, 1),
                            ("save_every", self.save_every, 1), ("log_every", self.log_every, 1),
                            ("workers", self.workers, 0), ("seed", self.seed, 0), ("threads", self.threads, 0),
                            ("keep", self.keep, 1)):
            if v < lo:
                raise AnyIRError(f"--{name.replace('_', '-')} must be at least {lo}, got {v}")
        if self.patch % 8:
            raise AnyIRError(f"--patch must be a multiple of 8 (the model downsamples 3 times), got {self.patch}")
        for name in ("darken", "color"):
            if not 0 <= getattr(self, name) <= 1:
                raise AnyIRError(f"--{name} is a probability in [0, 1]")
        if self.amp not in ("off", "bf16"):
            raise AnyIRError(f"--amp is off or bf16, got {self.amp!r}")
        if not 0 <= self.warmup < 1:
            raise AnyIRError("--warmup is a fraction of the steps in [0, 1)")


def config_from(cls, opts: dict, what: str):
    """A validated config dataclass from a mapping; unknown names, and values of the wrong type (a config file
    says `patch: "big"`), get one line naming them."""
    if not isinstance(opts, dict):
        raise AnyIRError(f"{what} options must be a mapping of names to values, not a {type(opts).__name__}")
    bad = sorted(set(opts) - {f.name for f in fields(cls)})
    if bad:
        raise AnyIRError(f"unknown {what} option(s): {', '.join(bad)}")
    hints = typing.get_type_hints(cls)
    for name, value in opts.items():
        if not _fits(value, hints[name]):
            raise AnyIRError(f"{what} option {name}: expected {_type_name(hints[name])}, got {type(value).__name__} "
                             f"{str(value)[:40]!r}")
    cfg = cls(**opts)
    cfg.validate()
    return cfg


def _fits(value, hint) -> bool:
    """Whether a value read from JSON/YAML (or a flag) has the type a config field declares."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is list or hint is list:
        return isinstance(value, (list, tuple)) and (not args or all(_fits(v, args[0]) for v in value))
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    return True


def _type_name(hint) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if hint is type(None):
        return "null"
    if origin is list:
        return f"a list of {_type_name(args[0])}s" if args else "a list"
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false", dict: "a mapping",
            list: "a list"}.get(hint, str(hint))


def load_sources(specs: list[str], tasks: list[str]) -> list[Sample]:
    """`builtin:train|heldout|all`, `folder:PATH`, `paired:DEGRADED_DIR,CLEAN_DIR`,
    `benchmark:TASK=ROOT` (train layouts of the paper's sets)."""
    out: list[Sample] = []
    for spec in specs:
        kind, _, arg = spec.partition(":")
        if kind == "builtin":
            out += builtin_samples(arg or "train")
        elif kind == "folder":
            out += folder_samples(arg)
        elif kind == "paired":
            deg, _, clean = arg.partition(",")
            out += paired_samples(deg, clean)
        elif kind == "benchmark":
            task, _, root = arg.partition("=")
            out += benchmark_samples(task, root, split="train")
        else:
            raise AnyIRError(f"unknown data source {spec!r}; use builtin:train, folder:PATH, "
                             "paired:DEGRADED,CLEAN or benchmark:TASK=ROOT")
    return out


def restoration_loss(pred: torch.Tensor, target: torch.Tensor, fft_weight: float) -> tuple[torch.Tensor, dict]:
    l1 = F.l1_loss(pred, target)
    if fft_weight:
        p, t = torch.fft.rfft2(pred), torch.fft.rfft2(target)
        fft = F.l1_loss(torch.view_as_real(p), torch.view_as_real(t))
    else:
        fft = torch.zeros(())
    return l1 + fft_weight * fft, {"l1": l1.item(), "fft": fft.item()}


def optimizer_step(net, opt, cfg, step: int, inp: torch.Tensor, tgt: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """One step of the recipe at the scheduled learning rate (shared by training and QAT)."""
    for g in opt.param_groups:
        g["lr"] = lr_at(cfg, step)
    amp = getattr(cfg, "amp", "off") == "bf16"
    with torch.autocast(inp.device.type, dtype=torch.bfloat16, enabled=amp):
        out = net(inp)
    loss, parts = restoration_loss(out.float(), tgt, cfg.fft_loss_weight)
    if not torch.isfinite(loss):
        raise AnyIRError(f"loss became {float(loss)} at step {step}; lower --lr")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if getattr(cfg, "grad_clip", 0):
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
    opt.step()
    return loss, parts


def lr_at(cfg: TrainConfig, step: int) -> float:
    warm = int(cfg.warmup * cfg.steps)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    t = (step - warm) / max(1, cfg.steps - warm)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(t, 1.0)))


class _Stop:
    """SIGINT/SIGTERM: finish the step, save, exit. A second signal aborts at once."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self.old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for s, h in self.old.items():
            signal.signal(s, h)


def _checkpoints(run: Path) -> list[Path]:
    d = run / "checkpoints"
    done = [p for p in d.glob("step_*") if (p / "trainer.pt").is_file()] if d.is_dir() else []
    return sorted(done, key=lambda p: int(p.name.split("_")[1]))


def _save_state(run: Path, model, opt, cfg: TrainConfig, step: int, log_lines: int, keep: int) -> None:
    ckdir = run / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    final = ckdir / f"step_{step:07d}"
    tmp = ckdir / f".tmp_step_{step:07d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_checkpoint(model, tmp / "model.safetensors", cfg.preset, {"step": step, "recipe": asdict(cfg)})
    torch.save({"optimizer": opt.state_dict(), "step": step, "log_lines": log_lines}, tmp / "trainer.pt")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in _checkpoints(run)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def resume_point(existing: list[Path], load, run: Path, hint: str = "") -> tuple[int, int]:
    """(step, log lines) from the newest of `existing` (oldest first) that `load` reads; a damaged one is
    skipped with a warning for the one before. (0, 0) with nothing to resume; a CheckpointError when every
    checkpoint is damaged (`hint`: what to do then)."""
    for ck in reversed(existing):
        try:
            return load(ck)
        except CheckpointError as e:  # a damaged newest checkpoint: fall back to the one before
            warnings.warn(f"skipping damaged checkpoint: {e}")
    if existing:
        raise CheckpointError(f"{run}: no loadable checkpoint to resume from{hint}")
    return 0, 0


def _load_state(ck: Path, model, opt) -> tuple[int, int]:
    """(step, log lines) of a saved checkpoint, loaded into `model` and `opt`; a CheckpointError for anything
    that does not fit (the caller then falls back to the checkpoint before)."""
    state, _ = read_safetensors(ck / "model.safetensors")
    _check_finite(ck / "model.safetensors", state)
    try:
        trainer = torch.load(ck / "trainer.pt", map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{ck}/trainer.pt: unreadable ({str(e).splitlines()[0][:100]})") from None
    model_before = {k: v.clone() for k, v in model.state_dict().items()}
    opt_before = opt.state_dict()
    try:
        model.load_state_dict(state)
        opt.load_state_dict(trainer["optimizer"])
        return int(trainer["step"]), int(trainer["log_lines"])
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as e:
        model.load_state_dict(model_before)  # leave both as they were for the checkpoint before
        opt.load_state_dict(opt_before)
        raise CheckpointError(f"{ck}: does not fit this run ({str(e).splitlines()[0][:100]})") from None


def _dist_info() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return world, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))


def train(cfg: TrainConfig, run_dir: str | Path, resume: bool = False, quiet: bool = False,
          stop_after: int | None = None) -> Path:
    """Train (or resume) into `run_dir`; returns the final checkpoint path. `stop_after` ends the
    process's work after that many steps of this call, saving first (used by tests and schedulers)."""
    cfg.validate()
    run = Path(run_dir)
    world, rank, local_rank = _dist_info()
    if cfg.device == "auto":
        device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(cfg.device)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    threads_before = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, run, resume, quiet, stop_after, device, world, rank, local_rank)
    finally:
        torch.set_num_threads(threads_before)


def _train(cfg, run, resume, quiet, stop_after, device, world, rank, local_rank) -> Path:
    main = rank == 0

    existing = _checkpoints(run)
    if existing and not resume:
        raise AnyIRError(f"{run} already holds a run (step {int(existing[-1].name.split('_')[1])});"
                         " pass --resume to continue it or choose another --out")
    if resume and (run / "config.json").is_file():
        try:
            saved = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
        except (ValueError, AnyIRError) as e:
            raise AnyIRError(f"{run / 'config.json'}: not this project's training config ({str(e)[:100]}); "
                             "start a new run with another --out") from None
        if asdict(saved) != asdict(cfg):
            diff = [k for k in asdict(cfg) if asdict(cfg)[k] != asdict(saved)[k]]
            if diff != ["steps"]:  # extending a run is allowed
                raise AnyIRError(f"--resume with different settings ({', '.join(diff)}); use the run's config.json")

    torch.manual_seed(cfg.seed)
    if cfg.init:
        model = load_checkpoint(cfg.init, preset=cfg.preset, use_fft=False)
    else:
        from . import create_model
        model = create_model(cfg.preset, use_fft=False)  # the exact FFT-free fusion: same function, faster
    model.to(device).train()
    if cfg.amp != "off" and device.type != "cuda":
        raise AnyIRError(f"--amp {cfg.amp} needs a CUDA device (training runs on {device})")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.999))
    step, log_lines = resume_point(existing if resume else [], lambda ck: _load_state(ck, model, opt), run)
    # the data first: a bad image or source fails before the run folder exists
    sampler = PatchSampler(load_sources(cfg.data, cfg.tasks), cfg.tasks, cfg.patch, cfg.batch,
                           seed=cfg.seed * 1000 + rank, darken=cfg.darken, color=cfg.color)
    fresh = not run.exists()
    try:
        return _run_steps(cfg, run, quiet, stop_after, device, world, rank, local_rank, main, model, opt, sampler,
                          step, log_lines)
    except BaseException:
        if main and fresh and not _checkpoints(run):  # nothing saved yet: leave no half-made run folder
            shutil.rmtree(run, ignore_errors=True)
        raise


def _run_steps(cfg, run, quiet, stop_after, device, world, rank, local_rank, main, model, opt, sampler, step,
               log_lines) -> Path:
    if main:
        run.mkdir(parents=True, exist_ok=True)
        _atomic_write(run / "config.json", lambda t: Path(t).write_text(json.dumps(asdict(cfg), indent=2) + "\n"))
        _truncate_log(run / "log.jsonl", log_lines)
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda" else None)

    batches = _batches(sampler, step, cfg.steps, cfg.workers)
    bar = None
    if main and not quiet:
        from tqdm import tqdm
        bar = tqdm(total=cfg.steps, initial=step, desc=f"train {cfg.preset}", unit="step", dynamic_ncols=True)
    log = open(run / "log.jsonl", "a") if main else None
    window_start, window_steps, done_here = time.perf_counter(), 0, 0
    try:
        with _Stop() as stop:
            while step < cfg.steps:
                inp, tgt, _ = next(batches)
                inp, tgt = inp.to(device, non_blocking=True), tgt.to(device, non_blocking=True)
                loss, parts = optimizer_step(net, opt, cfg, step, inp, tgt)
                step += 1
                done_here += 1
                window_steps += 1
                if main and (step % cfg.log_every == 0 or step == cfg.steps):
                    rate = window_steps * cfg.batch * world / (time.perf_counter() - window_start)
                    rec = {"step": step, "loss": loss.item(), **parts, "lr": opt.param_groups[0]["lr"],
                           "patches_per_s": round(rate, 2), "time": time.time()}
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
                    log_lines += 1
                    window_start, window_steps = time.perf_counter(), 0
                    if bar:
                        bar.set_postfix(loss=f"{loss.item():.4f}", rate=f"{rate:.1f}/s")
                if bar:
                    bar.update(1)
                interrupted = stop.requested or (stop_after is not None and done_here >= stop_after)
                if main and (step % cfg.save_every == 0 or step == cfg.steps or interrupted):
                    _save_state(run, model, opt, cfg, step, log_lines, cfg.keep)
                if stop.requested:
                    raise TrainingInterrupted(f"stopped at step {step} (checkpoint saved); continue with --resume")
                if interrupted:
                    return run / "checkpoints" / f"step_{step:07d}" / "model.safetensors"
    finally:
        if bar:
            bar.close()
        if log:
            log.close()
    final = run / "model.safetensors"
    if main:
        summary = summarize_log(run / "log.jsonl")
        save_checkpoint(model.cpu(), final, cfg.preset, {"step": step, "recipe": asdict(cfg), "training": summary})
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return final


class _StepBatches(torch.utils.data.Dataset):
    def __init__(self, sampler: PatchSampler, start: int, stop: int):
        self.sampler, self.start, self.stop = sampler, start, stop

    def __len__(self):
        return self.stop - self.start

    def __getitem__(self, i):
        return self.sampler.draw(self.start + i)


def _worker_init(_):
    torch.set_num_threads(1)  # the degradations use small torch convolutions; one thread per worker


def _batches(sampler: PatchSampler, start: int, stop: int, workers: int):
    """Batches start..stop-1 in order; with workers they are drawn ahead in other processes."""
    if not workers:
        return (sampler.draw(s) for s in range(start, stop))
    loader = torch.utils.data.DataLoader(_StepBatches(sampler, start, stop), batch_size=None, shuffle=False,
                                         num_workers=workers, prefetch_factor=4, worker_init_fn=_worker_init,
                                         pin_memory=torch.cuda.is_available())
    return iter(loader)


def _truncate_log(path: Path, lines: int) -> None:
    """Drop log lines written after the checkpoint we resume from, so the curve continues exactly."""
    if not path.exists():
        return
    kept = path.read_text().splitlines()[:lines]
    _atomic_write(path, lambda t: Path(t).write_text("".join(line + "\n" for line in kept)))


def read_log(path: str | Path) -> list[dict]:
    """The log's records; a line that does not parse (a damaged file) is left out with a warning."""
    out, bad = [], 0
    for line in Path(path).read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line) if line.strip() else None
        except ValueError:
            rec = None
            bad += 1
        if isinstance(rec, dict) and all(isinstance(rec.get(k), (int, float)) for k in ("step", "loss", "patches_per_s",
                                                                                      "time")):
            out.append(rec)
        elif rec is not None:
            bad += 1
    if bad:
        warnings.warn(f"{path}: {bad} unreadable line(s) left out of the summary")
    return out


def summarize_log(path: Path) -> dict:
    recs = read_log(path)
    if not recs:
        return {}
    tail = recs[-max(1, len(recs) // 10):]
    return {
        "steps": recs[-1]["step"],
        "first_loss": recs[0]["loss"],
        "final_loss_avg_last_10pct": float(np.mean([r["loss"] for r in tail])),
        "patches_per_s": float(np.median([r["patches_per_s"] for r in recs])),
        "wall_s": round(recs[-1]["time"] - recs[0]["time"], 1),
    }
