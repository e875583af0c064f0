"""Test vectors for the demo apps: what the Python reference computes, written so that Kotlin and Swift
tests can load it without a numpy reader (raw little-endian arrays + a JSON index).

    vectors.json              index: format, rules, shapes, dtypes, files, the tolerance per artifact
    plans                     tile plans for sizes that exercise every rule (smaller than a tile, exact,
                              one pixel over, odd, 12 MP)
    blend_HxW_oN.f32          the per-tile blend weight (H x W)
    photo.png                 an 8-bit photo of 2 x 2 tiles (rows blend across bands, columns within one)
    photo_input.f32           its pre-processed form: H x W x 3 float32 RGB in [0, 1]
    tile_inputs.f32           every tile of the photo as fed to a model, in plan order: N x 3 x H x W (NCHW)
    tile_input.f32            the first of them: 1 x 3 x H x W (kept for readers of format 1)
    tile_output_<id>.f32      the first tile through each artifact, on this host
    tile_outputs_<id>.f32     every tile through each artifact, in plan order: an app's blend replays these
                              without a runtime and must land on photo_restored_<id>.png
    photo_restored_<id>.png   the photo restored through each artifact by the tiled path
    int8_io.i8 / .f32         the first tile quantized as a full-integer model takes it, and dequantized back
    exif_*.u8                 a 2 x 3 RGB image and its upright form for each EXIF orientation 1-8
    pad_*.f32                 small images and their reflect padding to a 16 x 16 tile
    int8_ties*                values exactly halfway between int8 steps and their quantization (half to even)
    standin_*.png             a seeded 301 x 451 photo and its restoration by a stand-in model (RULES["standin"])

Plan order is row-major: for y in ys, for x in xs. Every rule an app must mirror is named in `rules`.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FORMAT = "anyir-mobile/testvectors/2"
# full-integer int8 I/O (`--float-levels 0` TFLite files): the 8-bit pixel minus 128
INT8_IO = {"scale": 1.0 / 255.0, "zero_point": -128}
RULES = {
    "tile_order": "row-major: for y in ys, for x in xs",
    "padding": "reflect at bottom/right up to the tile size (mirror without repeating the edge pixel; again "
               "while still short; an axis of 1 px repeats)",
    "plan": "per axis n = 1 + ceil((L - T) / (T - overlap)) tiles, origin_i = floor(i * (L - T) / (n - 1))",
    "blend": "w(y)*w(x) in float32, w(t) = sin^2(pi/2*(t+0.5)/overlap) (computed in float64, stored float32) over "
             "the first and last `overlap` pixels, the smaller where both apply, 1 inside; acc += out*w and "
             "wsum += w in float32, tile by tile in plan order; out = acc / wsum",
    "to_float": "v / 255 in float32 per 8-bit channel (R, G, B of ARGB); alpha unused",
    "to_8bit": "floor(clip(v, 0, 1) * 255 + 0.5) in float32",
    "exactness": "bit-identical: an app's 8-bit output equals the reference's in every value (same float32 "
                 "operations in the same order), not merely within one level",
    "standin": "tile i in plan order: out = x if i is even, else 0.5 * (1 - x), in float32 (a model whose "
               "neighbouring tiles disagree, so the blend decides every overlapped pixel)",
    "quantize": "q = clip(round_half_even(v / scale) + zero_point, -128, 127); v = (q - zero_point) * scale",
    "exif": "orientation 1-8 as PIL.ImageOps.exif_transpose; others are ignored",
}


def _raw(path: Path, arr: np.ndarray, dtype: str, name: str) -> dict:
    arr = np.ascontiguousarray(arr, dtype=dtype)
    path.write_bytes(arr.tobytes())
    return {"file": path.name, "shape": list(arr.shape), "dtype": name}


def _f32(path: Path, arr: np.ndarray) -> dict:
    return _raw(path, arr, "<f4", "float32-le")


def default_photo(tile: tuple[int, int]) -> tuple[str, np.ndarray]:
    """A held-out photo, noise25-degraded, cropped to 2 x 2 tiles that overlap by more than the minimum
    (so the banded restore carries rows from one band into the next, and columns blend too)."""
    from anyir_core.data import load_builtin, task_seed
    from anyir_core.degrade import degrade
    clean = np.ascontiguousarray(np.rot90(load_builtin("coffee")))  # portrait: 600 x 400
    h = min(clean.shape[0], tile[0] + tile[0] // 2 + 3)
    w = min(clean.shape[1], tile[1] + tile[1] // 2 + 3)
    return "coffee-noise25", degrade(clean[:h, :w], "noise25", seed=task_seed("coffee", "noise25"))


def padding_vectors(folder: Path) -> list[dict]:
    """Small images reflect-padded to a 16 x 16 tile: twice over (5 x 7) and from one pixel (1 x 1)."""
    from anyir_core.tiling import TilePlan, pad_to_tile
    out = []
    for h, w in ((5, 7), (1, 1), (16, 3)):
        img = (np.arange(h * w * 3, dtype=np.float32).reshape(h, w, 3) + 1) / 256
        padded = pad_to_tile(img, TilePlan(h, w, 16, 16, 0))
        out.append({"image": _f32(folder / f"pad_{h}x{w}.f32", img), "padded": _f32(folder / f"pad_{h}x{w}_16x16.f32", padded)})
    return out


def quantize_int8(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return np.clip(np.round(x / np.float32(scale)) + zero_point, -128, 127).astype(np.int8)


def exif_vectors(folder: Path) -> dict:
    """A 2x3 image whose 6 pixels differ, and what each EXIF orientation turns it into."""
    from PIL import Image, ImageOps
    src = (np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 13 + 7)
    out = {"source": _raw(folder / "exif_source.u8", src, "u1", "uint8"), "orientations": {}}
    for o in range(1, 9):
        im = Image.fromarray(src, "RGB")
        exif = im.getexif()
        exif[0x0112] = o
        im.info["exif"] = exif.tobytes()
        up = np.asarray(ImageOps.exif_transpose(im))
        out["orientations"][str(o)] = _raw(folder / f"exif_{o}.u8", up, "u1", "uint8")
    return out


def standin_vectors(folder: Path, tile: tuple[int, int], overlap: int) -> dict:
    """A seeded 301 x 451 8-bit photo restored by the stand-in model of RULES["standin"]: several bands and
    columns of disagreeing tiles, checkable without any runtime (and so on a platform that cannot run Python)."""
    from PIL import Image
    from anyir_core.tiling import Photo, restore_tiled, write_photo
    rgb8 = np.random.default_rng(7).integers(0, 256, (301, 451, 3), dtype=np.uint8)
    Image.fromarray(rgb8, "RGB").save(folder / "standin_photo.png")
    calls = [0]

    def model(x: np.ndarray) -> np.ndarray:
        i, calls[0] = calls[0], calls[0] + 1
        return x.copy() if i % 2 == 0 else (np.float32(0.5) * (np.float32(1) - x)).astype(np.float32)
    out = restore_tiled(rgb8.astype(np.float32) / np.float32(255.0), model, tile, overlap)
    write_photo(folder / "standin_restored.png", out, Photo(rgb=out))
    return {"photo": "standin_photo.png", "restored": "standin_restored.png", "size": [301, 451], "tiles": calls[0]}


def tie_vectors(folder: Path) -> dict:
    """Values that land exactly halfway between two int8 steps (the tile's k/255 pixels never do)."""
    scale, zp = 0.5, 3
    x = np.array([-0.25, 0.25, 0.75, 1.25, 1.75, -64.75, 62.25, 100.0, -100.0, 0.0], dtype=np.float32)
    return {"scale": scale, "zero_point": zp, "input": _f32(folder / "int8_ties_input.f32", x),
            "quantized": _raw(folder / "int8_ties.i8", quantize_int8(x, scale, zp), "i1", "int8")}


class _Recorder:
    """Wraps a runner: returns its outputs and keeps every tile's input and output in call order."""

    def __init__(self, runner):
        self.runner, self.inputs, self.outputs = runner, [], []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = self.runner.run_nchw(x)
        self.inputs.append(x[0].copy())
        self.outputs.append(np.asarray(y[0], dtype=np.float32).copy())
        return y


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
             "color_order": "RGB", "rules": RULES, "plans": plans}
    index["blend"] = _f32(folder / f"blend_{th}x{tw}_o{overlap}.f32", TilePlan(th, tw, th, tw, overlap).weights())
    if photo is None:
        photo_name, photo = default_photo(tile)
    photo = np.asarray(photo, dtype=np.float32)
    write_photo(folder / "photo.png", photo, Photo(rgb=photo))
    from PIL import Image
    with Image.open(folder / "photo.png") as im:  # what an app reads back from the PNG, as the app converts it
        photo8 = np.asarray(im.convert("RGB"), dtype=np.float32) / np.float32(255.0)
    plan = TilePlan(photo.shape[0], photo.shape[1], th, tw, overlap)
    padded = pad_to_tile(photo8, plan)
    tiles_in = np.stack([padded[y:y + th, x:x + tw].transpose(2, 0, 1) for y in plan.ys for x in plan.xs])
    tile_in = np.ascontiguousarray(tiles_in[:1], dtype=np.float32)
    index["photo"] = {"name": photo_name, "png": "photo.png", "plan": plan.to_dict(),
                      "input": _f32(folder / "photo_input.f32", photo8),
                      "tile_inputs": _f32(folder / "tile_inputs.f32", tiles_in)}
    index["tile_input"] = _f32(folder / "tile_input.f32", tile_in)
    q = quantize_int8(tile_in, INT8_IO["scale"], INT8_IO["zero_point"])
    index["int8_io"] = {**INT8_IO, "input": _f32(folder / "int8_io_input.f32", tile_in),
                        "quantized": _raw(folder / "int8_io.i8", q, "i1", "int8"),
                        "dequantized": _f32(folder / "int8_io_dequantized.f32",
                                            (q.astype(np.float32) - INT8_IO["zero_point"]) * np.float32(INT8_IO["scale"]))}
    index["exif"] = exif_vectors(folder)
    index["padding"] = padding_vectors(folder)
    index["int8_ties"] = tie_vectors(folder)
    index["standin"] = standin_vectors(folder, tile, overlap)
    index["outputs"] = {}
    for rid, runner in runners.items():
        rec = _Recorder(runner)
        restored = restore_tiled(photo8, rec, tile, overlap)
        if len(rec.outputs) != len(plan) or not np.array_equal(np.stack(rec.inputs), tiles_in):
            raise AssertionError("internal: restore_tiled did not visit the tiles in plan order")
        write_photo(folder / f"photo_restored_{rid}.png", restored, Photo(rgb=restored))
        index["outputs"][rid] = {"tile_output": _f32(folder / f"tile_output_{rid}.f32", rec.outputs[0][None]),
                                 "tile_outputs": _f32(folder / f"tile_outputs_{rid}.f32", np.stack(rec.outputs)),
                                 "photo_restored": f"photo_restored_{rid}.png",
                                 "min_psnr_db": (tolerances or {}).get(rid)}
    (folder / "vectors.json").write_text(json.dumps(index, indent=1) + "\n")
    return folder
