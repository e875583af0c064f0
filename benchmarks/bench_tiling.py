"""Tiled vs whole-image restoration: how much the tile plan changes the output, per overlap.

AnyIR's per-image statistics make a tile's output depend on the tile, so the tiled path the apps use is
not bit-equal to one pass over the whole photo. This prints, for each overlap, the PSNR between the
tiled and the whole-image output of the same eager model (images in [0, 1]) and the task PSNR of both,
on the held-out photos degraded as in training.  Default overlap in anyir_core/tiling.py comes from here.

    python benchmarks/bench_tiling.py [--checkpoint default] [--tile 256] [--overlaps 0 16 32 64 96]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def main(argv=None) -> None:
    from anyir_core import load_checkpoint
    from anyir_core.data import builtin_samples, task_seed
    from anyir_core.degrade import degrade
    from anyir_core.metrics import psnr, psnr_float
    from anyir_core.tiling import TilePlan, restore_tiled

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="default")
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--overlaps", type=int, nargs="+", default=[0, 16, 32, 64, 96])
    p.add_argument("--tasks", default="noise15,noise25,noise50,rain,haze")
    p.add_argument("--json")
    args = p.parse_args(argv)

    model = load_checkpoint(args.checkpoint)
    tasks = args.tasks.split(",")

    @torch.no_grad()
    def run(x: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(x)).numpy()

    rows = []
    t0 = time.perf_counter()
    for s in builtin_samples("heldout"):
        for task in tasks:
            deg = degrade(s.clean, task, seed=task_seed(s.name, task))
            whole = np.clip(run(np.ascontiguousarray(deg.transpose(2, 0, 1)[None]))[0].transpose(1, 2, 0), 0, 1)
            for ov in args.overlaps:
                tiled = restore_tiled(deg, run, (args.tile, args.tile), overlap=ov)
                plan = TilePlan(*deg.shape[:2], args.tile, args.tile, ov)
                rows.append({"photo": s.name, "size": list(deg.shape[:2]), "task": task, "overlap": ov,
                             "tiles": len(plan), "tiled_vs_whole": psnr_float(tiled, whole),
                             "task_whole": psnr(whole, s.clean), "task_tiled": psnr(tiled, s.clean)})
    print(f"{len(rows)} restorations in {time.perf_counter() - t0:.0f} s; tile {args.tile}, checkpoint {args.checkpoint}")
    print(f"{'overlap':>8}{'tiles':>7}{'tiled vs whole min':>20}{'mean':>8}{'task whole':>12}{'task tiled':>12}")
    for ov in args.overlaps:
        r = [x for x in rows if x["overlap"] == ov]
        print(f"{ov:>8}{sum(x['tiles'] for x in r) / len(r):>7.1f}{min(x['tiled_vs_whole'] for x in r):>20.2f}"
              f"{np.mean([x['tiled_vs_whole'] for x in r]):>8.2f}{np.mean([x['task_whole'] for x in r]):>12.2f}"
              f"{np.mean([x['task_tiled'] for x in r]):>12.2f}")
    worst = min(rows, key=lambda x: x["tiled_vs_whole"] if x["overlap"] == max(args.overlaps) else 1e9)
    print(f"worst at overlap {max(args.overlaps)}: {worst['photo']} {worst['task']} {worst['tiled_vs_whole']:.2f} dB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
