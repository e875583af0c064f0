"""Test vectors for the demo apps: what the Python reference computes, written so that Kotlin and Swift
tests can load it without a numpy reader (raw little-endian float32 + a JSON index).

    vectors.json            index: shapes, dtypes, files, the tolerance per artifact
    plans                   tile plans for sizes that exercise every rule (smaller than a tile, exact,
                            one pixel over, odd, 12 MP)
    blend_HxW_oN.f32        the per-tile blend weight (H x W)
    photo.png               an 8-bit photo (smaller than a tile in one dimension, so padding is tested)
    photo_input.f32         its pre-processed form: H x W x 3 float32 RGB in [0, 1]
    tile_input.f32          the first tile as fed to a model: 1 x 3 x H x W (NCHW; transpose for NHWC)
    tile_output_<id>.f32    that tile through each artifact, on this host
    photo_restored_<id>.png the photo restored through each artifact by the tiled path
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FORMAT = "anyir-mobile/testvectors/1"


def _f32(path: Path, arr: np.ndarray) -> dict:
    arr = np.ascontiguousarray(arr, dtype="<f4")
    path.write_bytes(arr.tobytes())
    return {"file": path.name, "shape": list(arr.shape), "dtype": "float32-le"}


def default_photo(tile: tuple[int, int]) -> tuple[str, np.ndarray]:
    """A held-out crop, noise25-degraded, shorter than the tile and wider than one tile."""
    from anyir_core.data import load_builtin, task_seed
    from anyir_core.degrade import degrade
    clean = load_builtin("coffee")
    h = max(8, min(clean.shape[0], tile[0] * 3 // 4))
    w = min(clean.shape[1], tile[1] + tile[1] // 2 + 3)
    crop = clean[:h, :w]
    return "coffee-noise25", degrade(crop, "noise25", seed=task_seed("coffee", "noise25"))


def write_vectors(folder: str | Path, runners: dict, tile: tuple[int, int], overlap: int,
                  photo: np.ndarray | None = None, photo_name: str | None = None,
                  tolerances: dict | None = None) -> Path:
    """`runners`: artifact id -> object with run_nchw (1x3xHxW float32 -> same)."""
    from anyir_core.tiling import TilePlan, pad_to_tile, restore_tiled, write_photo, Photo
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    th, tw = tile
    sizes = [(th, tw), (th + 1, 2 * tw), (th // 2 - 3, tw // 3), (1, 1), (301, 451), (3000, 4000)]
    plans = [TilePlan(h, w, th, tw, overlap).to_dict() for h, w in sizes]
    index = {"format": FORMAT, "tile": [th, tw], "overlap": overlap, "value_range": [0.0, 1.0],
             "color_order": "RGB", "plans": plans}
    index["blend"] = _f32(folder / f"blend_{th}x{tw}_o{overlap}.f32", TilePlan(th, tw, th, tw, overlap).weights())
    if photo is None:
        photo_name, photo = default_photo(tile)
    photo = np.asarray(photo, dtype=np.float32)
    write_photo(folder / "photo.png", photo, Photo(rgb=photo))
    photo8 = np.round(photo * 255.0) / 255.0  # what an app reads back from the PNG
    plan = TilePlan(photo.shape[0], photo.shape[1], th, tw, overlap)
    tile_in = pad_to_tile(photo8, plan)[plan.ys[0]:plan.ys[0] + th, plan.xs[0]:plan.xs[0] + tw]
    tile_in = np.ascontiguousarray(tile_in.transpose(2, 0, 1)[None], dtype=np.float32)
    index["photo"] = {"name": photo_name, "png": "photo.png", "plan": plan.to_dict(),
                      "input": _f32(folder / "photo_input.f32", photo8)}
    index["tile_input"] = _f32(folder / "tile_input.f32", tile_in)
    index["outputs"] = {}
    for rid, runner in runners.items():
        out = runner.run_nchw(tile_in)
        restored = restore_tiled(photo8, runner.run_nchw, tile, overlap)
        write_photo(folder / f"photo_restored_{rid}.png", restored, Photo(rgb=restored))
        index["outputs"][rid] = {"tile_output": _f32(folder / f"tile_output_{rid}.f32", out),
                                 "photo_restored": f"photo_restored_{rid}.png",
                                 "min_psnr_db": (tolerances or {}).get(rid)}
    (folder / "vectors.json").write_text(json.dumps(index, indent=1) + "\n")
    return folder
