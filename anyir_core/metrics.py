"""Metrics as the restoration papers' tables compute them: PSNR on RGB in [0, 255] after rounding to
8-bit, and SSIM with Wang et al.'s 11x11 Gaussian window (sigma 1.5), averaged over the RGB channels."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def _as_uint8_levels(img) -> np.ndarray:
    img = img.detach().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = img.transpose(1, 2, 0)  # CHW -> HWC
    return np.round(np.clip(img.astype(np.float64), 0, 1) * 255.0)


def psnr(a, b) -> float:
    """PSNR in dB between two images in [0, 1] (HWC or CHW), measured on rounded 8-bit RGB."""
    x, y = _as_uint8_levels(a), _as_uint8_levels(b)
    mse = np.mean((x - y) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def psnr_float(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    """PSNR with no rounding: for comparing two runtimes' float outputs (numeric agreement)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(peak**2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - size // 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim(a, b) -> float:
    """SSIM (Wang et al. 2004) on 8-bit RGB levels, valid region only, mean over channels."""
    x = torch.from_numpy(_as_uint8_levels(a).transpose(2, 0, 1))[:, None]
    y = torch.from_numpy(_as_uint8_levels(b).transpose(2, 0, 1))[:, None]
    if min(x.shape[-2:]) < 11:
        raise ValueError("SSIM needs images at least 11x11")
    w = _gaussian_window()[None, None]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = F.conv2d(x, w), F.conv2d(y, w)
    sxx = F.conv2d(x * x, w) - mx**2
    syy = F.conv2d(y * y, w) - my**2
    sxy = F.conv2d(x * y, w) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return float(s.mean())
