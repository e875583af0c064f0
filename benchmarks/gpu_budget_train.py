"""Fine-tune for a fixed GPU time budget: probe throughput, pick the step count, train.

A GPU lease is counted in minutes, so the step count (which fixes the cosine schedule) is chosen from a
measured rate instead of guessed: the script times a few optimizer steps for each candidate batch size and
precision on synthetic patches, takes the fastest in patches/s (bf16 only where it beats fp32 by a clear
margin), sizes --steps to fit --budget-s and runs the ordinary `anyir train` loop with those settings. It
prints the equivalent `anyir train` command, so the checkpoint is reproducible without this script. A
deadline SIGTERM (the training loop saves and stops on it) guards the lease if the rate drops.

    python benchmarks/gpu_budget_train.py --budget-s 420 --out runs/gpu \\
        --init anyir_core/weights/default.safetensors -- --tasks noise15,noise25,noise50,rain,haze,clean ...
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anyir_core.checkpoint import load_checkpoint  # noqa: E402
from anyir_core.train import TrainConfig, TrainingInterrupted, optimizer_step, train  # noqa: E402
from mobile.cli import build_parser, train_config  # noqa: E402


def probe(cfg: TrainConfig, candidates: list[tuple[int, str]], steps: int = 8) -> list[dict]:
    """Patches per second of one optimizer step for each (batch, amp), synthetic data, after warm-up."""
    dev = torch.device(cfg.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    model = load_checkpoint(cfg.init, preset=cfg.preset, use_fft=False).to(dev).train()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    rows = []
    for batch, amp in candidates:
        net = copy.deepcopy(model)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-5)
        c = copy.copy(cfg)
        c.batch, c.amp = batch, amp
        x = torch.rand(batch, 3, cfg.patch, cfg.patch, device=dev)
        for i in range(3):
            optimizer_step(net, opt, c, i, x, x)
        sync()
        t = time.perf_counter()
        for i in range(steps):
            optimizer_step(net, opt, c, i, x, x)
        sync()
        dt = (time.perf_counter() - t) / steps
        rows.append({"batch": batch, "amp": amp, "step_s": round(dt, 4), "patches_per_s": round(batch / dt, 1),
                     "max_mem_gb": round(torch.cuda.max_memory_allocated() / 1e9, 2) if dev.type == "cuda" else None})
        print("probe", rows[-1], flush=True)
        del net, opt
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget-s", type=float, required=True, help="seconds of training to fit")
    ap.add_argument("--out", required=True)
    ap.add_argument("--init", required=True)
    ap.add_argument("--device", default="cuda", help="cuda (cpu only to smoke-test this script)")
    ap.add_argument("--batches", default="16,64", help="candidate batch sizes")
    ap.add_argument("--bf16-margin", type=float, default=1.4, help="use bf16 only if this much faster")
    ap.add_argument("--lr-per-16", type=float, default=2e-4, help="lr at batch 16, scaled by sqrt(batch/16)")
    ap.add_argument("train_args", nargs=argparse.REMAINDER, help="after --: `anyir train` flags")
    a = ap.parse_args()
    rest = [x for x in a.train_args if x != "--"]
    args = build_parser().parse_args(["train", "--out", a.out, "--init", a.init, "--device", a.device, *rest])
    cfg = train_config(args)

    t0 = time.perf_counter()
    amps = ("off", "bf16") if a.device.startswith("cuda") else ("off",)
    cands = [(int(b), amp) for b in a.batches.split(",") for amp in amps]
    rows = probe(cfg, cands)
    best32 = max((r for r in rows if r["amp"] == "off"), key=lambda r: r["patches_per_s"])
    best16 = max((r for r in rows if r["amp"] == "bf16"), key=lambda r: r["patches_per_s"], default=None)
    pick = best16 if best16 and best16["patches_per_s"] > a.bf16_margin * best32["patches_per_s"] else best32
    cfg.batch, cfg.amp = pick["batch"], pick["amp"]
    cfg.lr = round(a.lr_per_16 * (cfg.batch / 16) ** 0.5, 6)
    # the real loop adds data loading and logging: budget 85% of the probed rate
    cfg.steps = max(100, int(a.budget_s * 0.85 / pick["step_s"]))
    cfg.save_every = max(100, cfg.steps // 4)
    probe_s = time.perf_counter() - t0
    print(f"picked batch {cfg.batch} amp {cfg.amp} lr {cfg.lr}: {cfg.steps} steps (probe took {probe_s:.0f} s)")
    flags = []
    for k, v in vars(cfg).items():
        default = getattr(TrainConfig(), k)
        if v != default:
            flags += [f"--{k.replace('_', '-')}", ",".join(v) if isinstance(v, list) else str(v)]
    print("equivalent: anyir train --out", shlex.quote(a.out), " ".join(shlex.quote(f) for f in flags), flush=True)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "probe.json").write_text(json.dumps({"rows": rows, "pick": pick, "steps": cfg.steps}, indent=2))

    # deadline: 25% over the budget, the loop saves at the signal and stops
    timer = threading.Timer(a.budget_s * 1.25, lambda: os.kill(os.getpid(), signal.SIGTERM))
    timer.daemon = True
    timer.start()
    t1 = time.perf_counter()
    try:
        final = train(cfg, a.out, quiet=True)
        print(f"trained {cfg.steps} steps in {time.perf_counter() - t1:.0f} s -> {final}")
    except TrainingInterrupted as e:
        print(f"deadline: {e}")
    finally:
        timer.cancel()


if __name__ == "__main__":
    main()
