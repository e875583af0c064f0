"""`anyir eval`: PSNR/SSIM per task and image for the model, the degraded input itself, and the classical
denoisers a user would otherwise reach for (scikit-image; noise tasks only)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .data import Sample, benchmark_samples, builtin_samples, folder_samples, task_seed
from .degrade import degrade
from .errors import AnyIRError
from .metrics import psnr, ssim

NOISE_SIGMA = {"noise15": 15.0, "noise25": 25.0, "noise50": 50.0}


@torch.no_grad()
def restore_array(model: torch.nn.Module, img: np.ndarray) -> np.ndarray:
    """Whole-image inference with the eager model (padding to a multiple of 8 happens inside)."""
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].float()
    return model(x)[0].clamp(0, 1).numpy().transpose(1, 2, 0)


def classical_denoisers(noisy: np.ndarray, sigma255: float) -> dict[str, np.ndarray]:
    """scikit-image's denoisers at their documented settings, given the true noise level:
    non-local means (fast mode, 5x5 patches, 13x13 search, h = 0.8 sigma, as in its gallery),
    wavelet BayesShrink in YCbCr with rescaled sigma, and TV (Chambolle) with its weight chosen
    per image by the PSNR against the clean image (an oracle: the best TV can do)."""
    from skimage.restoration import denoise_nl_means, denoise_tv_chambolle, denoise_wavelet

    s = sigma255 / 255.0
    out = {
        "nl_means": denoise_nl_means(noisy, h=0.8 * s, sigma=s, fast_mode=True, patch_size=5, patch_distance=6,
                                     channel_axis=-1),
        "wavelet": denoise_wavelet(noisy, sigma=s, method="BayesShrink", mode="soft", rescale_sigma=True,
                                   convert2ycbcr=True, channel_axis=-1),
    }
    out["tv"] = [denoise_tv_chambolle(noisy, weight=w * s, channel_axis=-1) for w in (0.5, 1.0, 1.5, 2.0)]
    return {k: (np.clip(v, 0, 1) if not isinstance(v, list) else [np.clip(x, 0, 1) for x in v]) for k, v in out.items()}


def _center_crop(img: np.ndarray, size: int) -> np.ndarray:
    if not size:
        return img
    h, w = img.shape[:2]
    size_h, size_w = min(size, h), min(size, w)
    y, x = (h - size_h) // 2, (w - size_w) // 2
    return img[y:y + size_h, x:x + size_w]


def _pairs(data: str, task: str) -> list[Sample]:
    kind, _, arg = data.partition(":")
    if kind == "builtin":
        base = builtin_samples(arg or "heldout")
    elif kind == "folder":
        base = folder_samples(arg)
    elif kind == "benchmark":
        t, _, root = arg.partition("=")
        if t != task:
            return []
        base = benchmark_samples(task, root, split="test")
    else:
        raise AnyIRError(f"unknown eval data {data!r}; use builtin:heldout, folder:PATH or benchmark:TASK=ROOT")
    out = []
    for s in base:
        deg = s.degraded if s.degraded is not None else degrade(s.clean, task, seed=task_seed(s.name, task))
        out.append(Sample(s.name, s.clean, deg, task))
    return out


def evaluate(model: torch.nn.Module, tasks: list[str], data: str = "builtin:heldout", crop: int = 0,
             baselines: bool = True, grid: str | Path | None = None, quiet: bool = False) -> dict:
    model.eval()
    rows, pictures = [], []
    from tqdm import tqdm
    jobs = [(t, s) for t in tasks for s in _pairs(data, t)]
    if not jobs:
        raise AnyIRError(f"no evaluation images for tasks {', '.join(tasks)} in {data}")
    for task, s in tqdm(jobs, desc="eval", disable=quiet, unit="img"):
        clean, deg = _center_crop(s.clean, crop), _center_crop(s.degraded, crop)
        restored = restore_array(model, deg)
        row = {"task": task, "image": s.name,
               "input": {"psnr": psnr(deg, clean), "ssim": ssim(deg, clean)},
               "anyir": {"psnr": psnr(restored, clean), "ssim": ssim(restored, clean)}}
        best_classical = None
        if baselines and task in NOISE_SIGMA:
            for name, out in classical_denoisers(deg, NOISE_SIGMA[task]).items():
                if isinstance(out, list):  # oracle-tuned: keep the best
                    out = max(out, key=lambda o: psnr(o, clean))
                row[name] = {"psnr": psnr(out, clean), "ssim": ssim(out, clean)}
                if best_classical is None or row[name]["psnr"] > row[best_classical[0]]["psnr"]:
                    best_classical = (name, out)
        rows.append(row)
        if grid and len([p for p in pictures if p[0] == task]) == 0:
            pics = [("input %.2f dB" % row["input"]["psnr"], deg), ("AnyIR %.2f dB" % row["anyir"]["psnr"], restored)]
            if best_classical:
                pics.append((f"{best_classical[0]} %.2f dB" % row[best_classical[0]]["psnr"], best_classical[1]))
            pics.append(("reference", clean))
            pictures.append((task, [(f"{task} / {s.name}: {label}", img) for label, img in pics]))
    report = {"data": data, "crop": crop, "tasks": tasks, "per_image": rows, "per_task": _aggregate(rows, tasks)}
    if grid:
        from .sheets import grid as make_grid
        make_grid([p[1] for p in pictures], grid)
    return report


def _aggregate(rows: list[dict], tasks: list[str]) -> dict:
    out = {}
    for task in tasks:
        sel = [r for r in rows if r["task"] == task]
        methods = [k for k in sel[0] if k not in ("task", "image")] if sel else []
        out[task] = {m: {metric: float(np.mean([r[m][metric] for r in sel if m in r]))
                         for metric in ("psnr", "ssim")} for m in methods}
        out[task]["n"] = len(sel)
    return out


def format_table(report: dict) -> str:
    methods = []
    for t in report["per_task"].values():
        methods += [m for m in t if m != "n" and m not in methods]
    head = f"{'task':<10}{'n':>3}  " + "  ".join(f"{m:>16}" for m in methods)
    lines = [f"PSNR dB / SSIM on {report['data']}" + (f" (centre {report['crop']}px)" if report["crop"] else ""),
             head, "-" * len(head)]
    for task, t in report["per_task"].items():
        cells = [f"{t[m]['psnr']:7.2f} / {t[m]['ssim']:.3f}" if m in t else f"{'-':>16}" for m in methods]
        lines.append(f"{task:<10}{t['n']:>3}  " + "  ".join(f"{c:>16}" for c in cells))
    return "\n".join(lines)
