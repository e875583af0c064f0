"""Measurements the bundle carries: host latency side by side, and whole-photo quality through the
tiled path (the numbers `anyir restore` reproduces on the same photos)."""
from __future__ import annotations

import time

import numpy as np
import torch


def host_latency(eager: torch.nn.Module, runners: list[tuple[str, object]], tile: tuple[int, int],
                 repeats: int = 10, warmup: int = 2) -> dict:
    """Median ms per tile of eager fp32 PyTorch and of each artifact, timed in interleaved rounds on the
    same input so that a noisy machine slows all of them alike."""
    rng = np.random.default_rng(0)
    x = rng.random((1, 3, *tile), dtype=np.float32)
    xt = torch.from_numpy(x)

    @torch.no_grad()
    def run_eager():
        eager(xt)

    calls = [("eager", run_eager)] + [(rid, (lambda r=r: r.run_nchw(x))) for rid, r in runners]
    for _, fn in calls:
        for _ in range(warmup):
            fn()
    times = {rid: [] for rid, _ in calls}
    for _ in range(repeats):
        for rid, fn in calls:
            t = time.perf_counter()
            fn()
            times[rid].append((time.perf_counter() - t) * 1e3)
    eager_ms = float(np.median(times["eager"]))
    return {"eager_ms_median": round(eager_ms, 3), "threads": torch.get_num_threads(), "repeats": repeats,
            "tile": list(tile),
            "artifacts": {rid: {"host_ms_median": round(float(np.median(times[rid])), 3),
                                "speedup_vs_eager": round(eager_ms / float(np.median(times[rid])), 3)}
                          for rid, _ in calls if rid != "eager"}}


def heldout_degraded(tasks) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(photo, task, degraded, clean): the whole held-out photos, degraded with the fixed seeds."""
    from anyir_core.data import builtin_samples, task_seed
    from anyir_core.degrade import degrade
    return [(s.name, t, degrade(s.clean, t, seed=task_seed(s.name, t)), s.clean)
            for s in builtin_samples("heldout") for t in tasks]


def photo_quality(run_nchw, tile: tuple[int, int], overlap: int, tasks) -> list[dict]:
    """Task PSNR (8-bit RGB) of whole held-out photos restored through the tiled path."""
    from anyir_core.metrics import psnr
    from anyir_core.tiling import restore_tiled
    rows = []
    for name, task, deg, clean in heldout_degraded(tasks):
        out = restore_tiled(deg, run_nchw, tile, overlap)
        p_in, p_out = psnr(deg, clean), psnr(out, clean)
        rows.append({"photo": name, "task": task, "size": [int(deg.shape[0]), int(deg.shape[1])],
                     "input_psnr": round(p_in, 3), "output_psnr": round(p_out, 3), "gain": round(p_out - p_in, 3)})
    return rows
