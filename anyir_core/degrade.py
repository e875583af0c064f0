"""Synthetic degradations: deterministic functions of (clean image, seed, parameters), composable.

Images are float32 HxWx3 RGB arrays in [0, 1]. Every degradation ends by rounding to 8-bit levels,
as a degraded image saved to disk (and every benchmark set) would be. Unset parameters are drawn
from the seed, so `degrade(img, "rain", seed=3)` is the same image on every machine.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .errors import AnyIRError


def _quantize8(img: np.ndarray) -> np.ndarray:
    return (np.round(np.clip(img, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def line_kernel(length: float, angle_deg: float, size: int | None = None) -> np.ndarray:
    """A normalised anti-aliased line segment (motion-blur / rain-streak kernel)."""
    size = size or int(math.ceil(length)) | 1
    c = (size - 1) / 2
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - c
    t = math.radians(angle_deg)
    along = xx * math.cos(t) + yy * math.sin(t)
    across = -xx * math.sin(t) + yy * math.cos(t)
    k = np.clip(1.0 - np.abs(across), 0, 1) * np.clip(length / 2 + 0.5 - np.abs(along), 0, 1)
    return (k / k.sum()).astype(np.float32)


def _filter(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Per-channel 2-D correlation with reflect padding (torch, so anyir_core needs no scipy)."""
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[:, None]
    k = torch.from_numpy(kernel)[None, None]
    ph, pw = kernel.shape[0] // 2, kernel.shape[1] // 2
    mode = "reflect" if ph < img.shape[0] and pw < img.shape[1] else "replicate"
    x = F.pad(x, (pw, pw, ph, ph), mode=mode)
    return F.conv2d(x, k)[:, 0].numpy().transpose(1, 2, 0)


def _smooth_field(rng: np.random.Generator, h: int, w: int, cells: int = 4) -> np.ndarray:
    coarse = torch.from_numpy(rng.random((1, 1, cells, cells), dtype=np.float32))
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)[0, 0].numpy()


def gaussian_noise(img, rng, sigma: float = 25.0):
    """Additive white Gaussian noise, sigma on the [0, 255] scale (BSD68 / CBSD68 protocol)."""
    return img + rng.standard_normal(img.shape, dtype=np.float32) * (sigma / 255.0)


def rain(img, rng, density: float | None = None, length: float | None = None, angle: float | None = None,
         intensity: float | None = None):
    """Rain100L-like streaks: sparse drops smeared along one direction, added to the image."""
    h, w = img.shape[:2]
    density = density if density is not None else rng.uniform(0.004, 0.012)
    length = length if length is not None else rng.uniform(10, 28)
    angle = angle if angle is not None else rng.uniform(60, 120)  # degrees from the x axis; 90 = vertical
    intensity = intensity if intensity is not None else rng.uniform(0.6, 0.95)
    drops = (rng.random((h, w), dtype=np.float32) < density).astype(np.float32)
    drops *= rng.uniform(0.5, 1.0, size=(h, w)).astype(np.float32)
    streaks = _filter(drops[..., None], line_kernel(length, angle))[..., 0] * length
    streaks = np.clip(streaks * intensity, 0, 1)
    return img + streaks[..., None] * (1.0 - img) * 0.9


def haze(img, rng, beta: float | None = None, airlight: float | None = None):
    """Atmospheric scattering model I = J t + A (1 - t), t = exp(-beta d), with a synthetic depth map
    that grows towards the top of the frame plus smooth variation."""
    h, w = img.shape[:2]
    beta = beta if beta is not None else rng.uniform(0.6, 1.6)
    airlight = airlight if airlight is not None else rng.uniform(0.75, 0.95)
    ramp = np.linspace(1.0, 0.2, h, dtype=np.float32)[:, None]
    depth = np.clip(0.6 * ramp + 0.5 * _smooth_field(rng, h, w), 0.05, 1.2)
    t = np.exp(-beta * depth)[..., None]
    tint = np.float32(airlight) + rng.uniform(-0.03, 0.03, size=3).astype(np.float32)
    return img * t + tint * (1.0 - t)


def motion_blur(img, rng, length: float | None = None, angle: float | None = None):
    """Uniform linear camera motion."""
    length = length if length is not None else rng.uniform(5, 17)
    angle = angle if angle is not None else rng.uniform(0, 180)
    return _filter(img, line_kernel(length, angle))


def low_light(img, rng, gain: float | None = None, gamma: float | None = None, noise: float | None = None):
    """Under-exposure: a darker gain, a gamma that crushes shadows, and sensor noise."""
    gain = gain if gain is not None else rng.uniform(0.12, 0.35)
    gamma = gamma if gamma is not None else rng.uniform(1.2, 1.8)
    noise = noise if noise is not None else rng.uniform(0.002, 0.01)
    dark = gain * np.power(img, gamma)
    return dark + rng.standard_normal(img.shape, dtype=np.float32) * noise * np.sqrt(dark + 1e-3)


def identity(img, rng):
    """No degradation: clean -> clean training samples."""
    return img


@dataclass(frozen=True)
class Task:
    """A named degradation with fixed parameters, as the paper's benchmarks use them."""
    name: str
    fn: Callable
    params: tuple = ()
    description: str = ""


TASKS: dict[str, Task] = {t.name: t for t in [
    Task("noise15", gaussian_noise, (("sigma", 15.0),), "Gaussian noise, sigma 15"),
    Task("noise25", gaussian_noise, (("sigma", 25.0),), "Gaussian noise, sigma 25"),
    Task("noise50", gaussian_noise, (("sigma", 50.0),), "Gaussian noise, sigma 50"),
    Task("rain", rain, (), "rain streaks"),
    Task("haze", haze, (), "haze (atmospheric scattering)"),
    Task("blur", motion_blur, (), "linear motion blur"),
    Task("lowlight", low_light, (), "low light"),
    Task("clean", identity, (), "no degradation (teaches the model to leave clean input alone)"),
]}
THREE_TASKS = ("noise15", "noise25", "noise50", "rain", "haze")
FIVE_TASKS = ("noise25", "rain", "haze", "blur", "lowlight")


def parse_tasks(spec: str | list[str] | tuple[str, ...]) -> list[str]:
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    out = []
    for name in (n.strip() for n in names):
        if name in ("3task", "all3"):
            out += THREE_TASKS
        elif name in ("5task", "all5"):
            out += FIVE_TASKS
        elif "+" in name:
            for part in name.split("+"):
                parse_tasks(part)
            out.append(name)
        elif name in TASKS:
            out.append(name)
        else:
            raise AnyIRError(f"unknown degradation {name!r}; choose from {', '.join(TASKS)} (or 3task, 5task,"
                             " or a composite such as haze+noise15)")
    return out


def degrade(img: np.ndarray, task: str, seed: int = 0, **params) -> np.ndarray:
    """Apply task `task` ("noise25", or a composite "haze+noise15" applied left to right)."""
    if img.ndim != 3 or img.shape[2] != 3:
        raise AnyIRError(f"degrade expects an HxWx3 RGB image, got shape {img.shape}")
    img = np.asarray(img, dtype=np.float32)
    rng = np.random.default_rng(seed)
    for part in parse_tasks([task])[0].split("+"):
        t = TASKS[part]
        img = np.clip(t.fn(img, rng, **{**dict(t.params), **params}), 0.0, 1.0)
    return _quantize8(img)
