"""Photos of any size through a fixed-size model: the tile plan, the blend, and the photo round trip.

This is the reference the demo apps mirror (they are tested against vectors written from it), so every
rule is spelled out here once:

- Padding: an image smaller than the tile in a dimension is reflect-padded (mirror without repeating
  the edge pixel, applied again if the image is tiny; a
  1-pixel axis repeats) at the bottom/right up to the tile size.
- Plan: per axis, n = 1 + ceil((L - T) / (T - overlap)) tiles whose origins are spread evenly,
  origin_i = floor(i * (L - T) / (n - 1)), so neighbours overlap by at least `overlap` pixels and the
  last tile ends on the image edge.
- Blend: each tile output is weighted by w(y) * w(x) with w(t) = sin^2(pi/2 * (t + 0.5) / overlap) over
  the first and last `overlap` pixels of the tile and 1 inside, accumulated, and divided by the summed
  weights. The weights never reach zero, so image borders (covered by one tile) come out unchanged.

AnyIR normalizes with per-image statistics (the gate's spatial mean/std, the attention's sums over the
tile), so a tile's output depends on what else is in the tile: tiled output is not bit-equal to a
whole-image pass. `benchmarks/bench_tiling.py` measures by how much and picked the defaults below.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import ImageError

# benchmarks/bench_tiling.py (default checkpoint, 256 tiles, held-out photos x 5 tasks): tiled vs whole-image
# PSNR does not depend on the overlap (mean 42.2 dB at 0, 42.9 at 16/32/64, 42.8 at 96; the difference is the
# per-tile statistics, not seams), so the smallest overlap that hides seams costs the fewest tiles.
DEFAULT_OVERLAP = 32


def axis_origins(length: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along one axis of `length` (already padded to at least `tile`)."""
    if length < tile:
        raise ValueError(f"axis of {length} px is shorter than the {tile} px tile; pad first")
    if length == tile:
        return [0]
    n = 1 + math.ceil((length - tile) / (tile - overlap))
    return [(i * (length - tile)) // (n - 1) for i in range(n)]


def ramp(tile: int, overlap: int) -> np.ndarray:
    """The 1-D blend weight over one tile axis (float32, never zero)."""
    w = np.ones(tile, dtype=np.float32)
    if overlap > 0:
        t = (np.arange(overlap, dtype=np.float64) + 0.5) / overlap
        edge = np.sin(0.5 * np.pi * t) ** 2
        w[:overlap] = edge
        w[tile - overlap:] = np.minimum(w[tile - overlap:], edge[::-1])
    return w


@dataclass(frozen=True)
class TilePlan:
    height: int  # the image
    width: int
    tile_h: int
    tile_w: int
    overlap: int

    def __post_init__(self):
        if self.height < 1 or self.width < 1:
            raise ImageError(f"cannot tile an empty {self.width}x{self.height} image")
        if not 0 <= self.overlap < min(self.tile_h, self.tile_w) // 2:
            raise ImageError(f"overlap {self.overlap} must be in [0, {min(self.tile_h, self.tile_w) // 2})")

    @property
    def padded(self) -> tuple[int, int]:
        return max(self.height, self.tile_h), max(self.width, self.tile_w)

    @property
    def ys(self) -> list[int]:
        return axis_origins(self.padded[0], self.tile_h, self.overlap)

    @property
    def xs(self) -> list[int]:
        return axis_origins(self.padded[1], self.tile_w, self.overlap)

    def __len__(self) -> int:
        return len(self.ys) * len(self.xs)

    def weights(self) -> np.ndarray:
        """The tile's HxW blend weight."""
        return np.outer(ramp(self.tile_h, self.overlap), ramp(self.tile_w, self.overlap)).astype(np.float32)

    def to_dict(self) -> dict:
        ph, pw = self.padded
        return {"image": [self.height, self.width], "tile": [self.tile_h, self.tile_w], "overlap": self.overlap,
                "padded": [ph, pw], "pad_bottom": ph - self.height, "pad_right": pw - self.width,
                "ys": self.ys, "xs": self.xs, "tiles": len(self)}


def pad_to_tile(img: np.ndarray, plan: TilePlan) -> np.ndarray:
    ph, pw = plan.padded
    if (ph, pw) == img.shape[:2]:
        return img
    return np.pad(img, ((0, ph - img.shape[0]), (0, pw - img.shape[1]), (0, 0)), mode="reflect")


def restore_tiled(img: np.ndarray, run: Callable[[np.ndarray], np.ndarray], tile: tuple[int, int],
                  overlap: int = DEFAULT_OVERLAP, progress: bool = False) -> np.ndarray:
    """Restore float32 HxWx3 [0, 1] `img` with `run` (1x3xTxT NCHW float32 -> same), tile by tile.

    Memory is the padded image, one accumulator and one weight plane (about 28 bytes per pixel), never
    a batch of all tiles: a 12-megapixel photo stays well under 1 GB."""
    if img.ndim != 3 or img.shape[2] != 3:
        raise ImageError(f"expected an HxWx3 image, got shape {img.shape}")
    plan = TilePlan(img.shape[0], img.shape[1], tile[0], tile[1], overlap)
    src = pad_to_tile(np.asarray(img, dtype=np.float32), plan)
    acc = np.zeros((3,) + src.shape[:2], dtype=np.float32)
    wsum = np.zeros(src.shape[:2], dtype=np.float32)
    w = plan.weights()
    th, tw = tile
    cells = [(y, x) for y in plan.ys for x in plan.xs]
    if progress:
        from tqdm import tqdm
        cells = tqdm(cells, desc="restore", unit="tile", leave=False)
    for y, x in cells:
        patch = np.ascontiguousarray(src[y:y + th, x:x + tw].transpose(2, 0, 1)[None])
        out = run(patch)
        if out.shape != patch.shape:
            raise ImageError(f"the model returned {out.shape} for a {patch.shape} tile")
        acc[:, y:y + th, x:x + tw] += out[0] * w
        wsum[y:y + th, x:x + tw] += w
    acc /= wsum
    return np.clip(acc[:, :img.shape[0], :img.shape[1]].transpose(1, 2, 0), 0.0, 1.0)


# --- the photo round trip: what comes in is what goes out (mode, alpha, bit depth, orientation) ----

@dataclass
class Photo:
    rgb: np.ndarray  # float32 HxWx3 in [0, 1], EXIF orientation applied
    alpha: np.ndarray | None = None  # kept as stored, put back unchanged
    gray: bool = False  # written back as one channel (mean of the restored RGB)
    bits: int = 8
    source_mode: str = "RGB"


def read_photo(path: str | Path) -> Photo:
    from PIL import ImageOps

    from .data import read_with, to_float_rgb

    def convert(im) -> Photo:
        im = ImageOps.exif_transpose(im)
        mode, alpha = im.mode, None
        if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
            alpha = np.asarray(im.convert("RGBA"), dtype=np.uint8)[..., 3].copy()
        return Photo(rgb=to_float_rgb(im), alpha=alpha, bits=16 if mode.startswith("I") else 8, source_mode=mode,
                     gray=mode in ("L", "LA", "1", "I", "I;16", "I;16B", "I;16L", "F"))
    return read_with(path, convert)


def write_photo(path: str | Path, rgb: np.ndarray, like: Photo) -> None:
    """Write restored `rgb` in the form of the photo it came from (8/16-bit, gray, alpha)."""
    from PIL import Image
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.clip(rgb, 0.0, 1.0)
    if like.gray:
        g = rgb.mean(axis=2)
        if like.bits == 16:
            im = Image.fromarray((g * 65535.0 + 0.5).astype(np.uint16))
        else:
            im = Image.fromarray((g * 255.0 + 0.5).astype(np.uint8))
            if like.alpha is not None:
                im = Image.merge("LA", (im, Image.fromarray(like.alpha)))
    else:
        im = Image.fromarray((rgb * 255.0 + 0.5).astype(np.uint8))
        if like.alpha is not None:
            im = Image.merge("RGBA", (*im.split(), Image.fromarray(like.alpha)))
    if path.suffix.lower() in (".jpg", ".jpeg") and im.mode in ("RGBA", "LA"):
        im = im.convert(im.mode[:-1])  # JPEG has no alpha
    tmp = path.with_name(f".{path.name}.partial")
    try:
        im.save(tmp, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
