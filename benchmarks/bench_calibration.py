"""What calibration batches and QAT steps buy: int8 quality of the default checkpoint against their cost.

For each (calibration batches per task, QAT steps) it makes a quantization state with `anyir qat` (its own
process, timed), converts it at the build's tile (the Q/DQ PyTorch module every int8 artifact is checked
against) and measures, on the held-out verification tiles the build uses, the task PSNR drop against eager
fp32 per task, and how far the module's outputs are from those of the recipe's largest setting (PSNR, dB).

    python benchmarks/bench_calibration.py [--grid 2:40,4:40,8:40,16:40,4:0,4:20] [--json out.json]

Default build recipe: mobile/bundle.py BuildConfig.qat. Results: benchmarks/results/calibration.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_state(out: Path, calibration: int, steps: int) -> float:
    cmd = [sys.executable, "-m", "mobile.cli", "qat", "--out", str(out), "--calibration", str(calibration),
           "--quiet"] + (["--steps", str(steps)] if steps else ["--mode", "ptq"])
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"anyir qat failed: {r.stderr.strip()[-1500:]}")
    return time.perf_counter() - t


@torch.no_grad()
def measure(state: Path, tile: int, tasks) -> tuple[dict, dict]:
    from anyir_core.metrics import psnr
    from conversion.quantize import load_quantized
    from conversion.source import ModelSource
    from conversion.verify import _hwc, _nchw, verification_set

    qdq, _ = load_quantized(state, tile, tile)
    eager = ModelSource("default").eager_model()
    drops, outs = {}, {}
    for name, task, deg, clean in verification_set(tile, tile, tasks):
        x = torch.from_numpy(_nchw(deg))
        q, f = qdq(x).numpy(), eager(x).numpy()
        outs[(name, task)] = q
        drops.setdefault(task, []).append(psnr(_hwc(f), clean) - psnr(_hwc(q), clean))
    return {t: float(np.mean(v)) for t, v in drops.items()}, outs


def main(argv=None) -> None:
    from anyir_core.metrics import psnr_float
    from mobile.bundle import BuildConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default="1:40,2:40,4:40,8:40,16:40,4:0,4:20,16:0",
                    help="calibration:steps pairs (steps 0: PTQ, calibration only)")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "calibration.json"))
    args = ap.parse_args(argv)
    cfg = BuildConfig()
    tile, tasks = cfg.tile[0], cfg.tasks
    grid = [tuple(int(v) for v in g.split(":")) for g in args.grid.split(",")]
    rows, outputs = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-cal-") as d:
        for cal, steps in grid:
            seconds = make_state(Path(d) / f"c{cal}s{steps}", cal, steps)
            drops, outs = measure(Path(d) / f"c{cal}s{steps}", tile, tasks)
            outputs[(cal, steps)] = outs
            rows.append({"calibration": cal, "steps": steps, "qat_seconds": round(seconds, 1),
                         "drop_vs_fp32": {t: round(v, 3) for t, v in drops.items()},
                         "worst_drop": round(max(drops.values()), 3)})
            print(f"calibration {cal:>3} steps {steps:>3}: {seconds:6.1f} s, drop per task "
                  + " ".join(f"{t} {v:+.3f}" for t, v in drops.items()), flush=True)
    top = max(grid)  # the largest setting: what the others are compared with
    for r in rows:
        o = outputs[(r["calibration"], r["steps"])]
        r["psnr_vs_largest"] = round(min(psnr_float(o[k], outputs[top][k]) for k in o), 2) \
            if (r["calibration"], r["steps"]) != top else None
    doc = {"what": __doc__.splitlines()[0], "tile": [tile, tile], "tasks": list(tasks),
           "build_default": cfg.qat, "largest": {"calibration": top[0], "steps": top[1]},
           "host": {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads()},
           "rows": rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"{'calibration':>11} {'steps':>5} {'qat s':>7} {'worst drop dB':>13} {'min PSNR vs largest':>20}")
    for r in rows:
        print(f"{r['calibration']:>11} {r['steps']:>5} {r['qat_seconds']:>7.1f} {r['worst_drop']:>13.3f} "
              f"{'-' if r['psnr_vs_largest'] is None else r['psnr_vs_largest']:>20}")
    print(f"written {args.json}")


if __name__ == "__main__":
    main()
