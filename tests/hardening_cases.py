"""Bad input, faults and tampering for every `anyir` command: the cases (how they run and are judged:
tests/hardening_run.py). Shared by tests/test_hardening.py (a fixed, small draw) and benchmarks/fuzz_matrix.py
(the longer seeded run that writes benchmarks/results/fuzz_matrix.md).

Each case makes its inputs in its own folder (`setup`), names the command line, and says what must come of
it (hardening_run.Case). Inputs are made from a few assets (tests/hardening_assets.py): a tiny checkpoint, a
bundle from `anyir build`, small valid .pte / .tflite / .mlpackage files, a short training run and a stopped
QAT run. Interrupts and concurrent builds: tests/hardening_interrupts.py.
"""
from __future__ import annotations

import copy
import json
import os
import pickle
import random
import shutil
import struct
from pathlib import Path

from hardening_assets import (TINY_QAT_FLAGS, TRAIN_RUN_FLAGS, Assets, asset, copy_bundle, read_manifest,
                              rewrite_record, write_manifest)
from hardening_run import IS_ROOT, Case, Result

# --- cases ------------------------------------------------------------------------------------------------

def flip_bits(data: bytes, rng: random.Random, n: int | None = None, lo: int = 0) -> bytes:
    b = bytearray(data)
    for _ in range(n or rng.randint(1, 4)):
        i = rng.randrange(lo, len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[:rng.randrange(0, max(1, len(data) - 1))]


class Evil:
    """A pickle whose loading would run code: it creates the file it names."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


MARKER = "RAN_CODE_FROM_A_LOADED_FILE"


def evil_pickle_bytes(marker_path: Path) -> bytes:
    return pickle.dumps({"state_dict": Evil(str(marker_path))})


def evil_torch_file(path: Path, marker_path: Path, extra: dict | None = None) -> None:
    import torch
    torch.save({**(extra or {}), "state_dict": Evil(str(marker_path)), "optimizer": Evil(str(marker_path))}, path)


# images ------------------------------------------------------------------------------------------------------

def _png_bomb(w: int, h: int) -> bytes:
    """A grey 8-bit PNG of w x h zero pixels, a few hundred KB on disk."""
    import zlib

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    co = zlib.compressobj(9)
    row = b"\x00" * (w + 1)
    idat = b"".join(co.compress(row) for _ in range(h)) + co.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


def make_image(kind: str, path: Path, rng: random.Random) -> None:
    """The image inputs, each a file at `path`."""
    import numpy as np
    from PIL import Image
    g = np.random.default_rng(rng.randrange(1 << 30))
    rgb = lambda h, w: Image.fromarray(g.integers(0, 256, (h, w, 3), dtype=np.uint8))  # noqa: E731
    if kind == "rgb":
        rgb(40, 50).save(path)
    elif kind == "zero-length":
        path.write_bytes(b"")
    elif kind in ("truncated", "bit-flipped", "flipped-jpeg"):
        tmp = path.with_name("src" + path.suffix)
        rgb(40, 50).save(tmp)
        data = tmp.read_bytes()
        tmp.unlink()
        path.write_bytes(truncate(data, rng) if kind == "truncated" else flip_bits(data, rng, lo=min(100, len(data) // 4)))
    elif kind == "garbage":
        path.write_bytes(bytes(rng.randrange(256) for _ in range(2000)))
    elif kind == "bomb":
        path.write_bytes(_png_bomb(20000, 20000))  # 400 megapixels in about 400 KB
    elif kind == "bomb-warning":
        path.write_bytes(_png_bomb(9500, 9500))  # 90 MP: above Pillow's warning limit, under its error limit
    elif kind == "wide":
        Image.fromarray(np.full((1, 100_000, 3), 128, np.uint8)).save(path)
    elif kind == "wide-10k":
        Image.fromarray(np.full((1, 10_000, 3), 128, np.uint8)).save(path)
    elif kind == "tall":
        Image.fromarray(np.full((20_000, 1, 3), 128, np.uint8)).save(path)
    elif kind == "one-pixel":
        Image.fromarray(np.full((1, 1, 3), 200, np.uint8)).save(path)
    elif kind == "gray16":
        Image.fromarray(g.integers(0, 65536, (30, 40), dtype=np.uint16)).save(path)
    elif kind == "cmyk":
        rgb(30, 40).convert("CMYK").save(path)
    elif kind == "animated":
        frames = [rgb(30, 40) for _ in range(3)]
        frames[0].save(path, save_all=True, append_images=frames[1:])
    elif kind.startswith("exif-"):
        im = rgb(30, 40)
        ex = im.getexif()
        ex[0x0112] = int(kind.split("-")[1])
        im.save(path, exif=ex)
    elif kind == "palette-alpha":
        im = rgb(30, 40).convert("P")
        im.info["transparency"] = 0
        im.save(path, transparency=0)
    elif kind == "float-tiff":
        Image.fromarray(g.random((30, 40)).astype(np.float32)).save(path)
    elif kind == "bilevel":
        rgb(30, 40).convert("1").save(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "missing":
        pass
    else:
        raise ValueError(kind)


def image_size(path: Path) -> tuple[int, int, str]:
    from PIL import Image
    with Image.open(path) as im:
        return im.size[0], im.size[1], im.mode


def expect_image(name: str, w: int, h: int, modes: tuple | None = None):
    def check(d: Path, res: Result):
        got = image_size(d / name)
        if got[:2] != (w, h) or (modes and got[2] not in modes):
            return f"{name} is {got}, expected {w}x{h}" + (f" in {modes}" if modes else "")
        return None
    return check


# (kind, suffix, expect, want, documented conversion, size and modes of the restored output)
IMAGE_KINDS = [
    ("zero-length", ".png", "error", "unreadable", "", None),
    ("truncated", ".png", "error", "", "", None),
    ("bit-flipped", ".png", "any", "", "a flip the PNG CRCs miss decodes", None),
    ("flipped-jpeg", ".jpg", "any", "", "JPEG has no checksum: a flip in its data decodes to other pixels", None),
    ("garbage", ".jpg", "error", "unreadable", "", None),
    ("bomb", ".png", "error", "pixels", "", None),
    ("folder", ".png", "error", "", "", None),
    ("missing", ".png", "error", "no such", "", None),
    ("one-pixel", ".png", "ok", "", "reflect padding up to the tile", (1, 1, ("RGB",))),
    ("wide-10k", ".png", "ok", "", "a 1-px axis is padded by repeating it", (10_000, 1, ("RGB",))),
    ("gray16", ".png", "ok", "", "16-bit grey in, 16-bit grey out", (40, 30, ("I;16", "I", "I;16B"))),
    ("cmyk", ".jpg", "ok", "", "CMYK converted to RGB", (40, 30, ("RGB",))),
    ("animated", ".gif", "ok", "", "the first frame of an animation", (40, 30, ("RGB",))),
    ("exif-6", ".jpg", "ok", "", "EXIF orientation applied (6: rotated)", (30, 40, ("RGB",))),
    ("exif-99", ".jpg", "ok", "", "an invalid EXIF orientation is ignored", (40, 30, ("RGB",))),
    ("exif-0", ".jpg", "ok", "", "an invalid EXIF orientation is ignored", (40, 30, ("RGB",))),
    ("palette-alpha", ".png", "ok", "", "palette with transparency: RGB + alpha kept", (40, 30, ("RGBA",))),
    ("float-tiff", ".tif", "ok", "", "32-bit float grey, clipped to [0, 1]", (40, 30, ("L",))),
    ("bilevel", ".png", "ok", "", "1-bit, read as grey", (40, 30, ("L",))),
]
LONG_IMAGE_KINDS = [("wide", ".png", "ok", "", "100,000 x 1 px: a 1-px axis is padded", (100_000, 1, ("RGB",))),
                    ("tall", ".png", "ok", "", "1 x 20,000 px", (1, 20_000, ("RGB",))),
                    ("bomb-warning", ".png", "error", "pixels", "", None)]


DATA_FIX = ("train: a failure while loading its data (an unreadable image in --data, a --patch larger than every "
            "photo) came after the run folder was made (config.json left behind)")
BOMB_FIX = "a decompression bomb (a 400 MP PNG in 400 KB): PIL's DecompressionBombError traceback"


def image_cases(long: bool = False) -> list[Case]:
    cases = []
    for kind, suffix, expect, want, doc, out in IMAGE_KINDS + (LONG_IMAGE_KINDS if long else []):
        rand = kind in ("truncated", "bit-flipped", "flipped-jpeg", "garbage")

        def restore_setup(a, d, rng, kind=kind, suffix=suffix):
            make_image(kind, d / f"in{suffix}", rng)
            return ["restore", f"in{suffix}", "--bundle", a.bundle, "--out", "out.png", "--quiet"]

        def degrade_setup(a, d, rng, kind=kind, suffix=suffix):
            make_image(kind, d / f"in{suffix}", rng)
            return ["degrade", f"in{suffix}", "--kind", "noise25", "--out", "out.png"]
        chk = expect_image("out.png", out[0], out[1], out[2]) if out else None
        fixed = BOMB_FIX if kind.startswith("bomb") else None
        cases.append(Case("restore", f"image-{kind}", restore_setup, expect, want, ("out.png",), chk, doc,
                          random_variant=rand, timeout=300, fixed=fixed))
        dchk = expect_image("out.png", out[0], out[1]) if out else None
        if kind not in ("wide", "tall"):  # degrade on a 100k-wide image: the torch filters, not the loader
            cases.append(Case("degrade", f"image-{kind}", degrade_setup, expect, want, ("out.png",), dchk, doc,
                              random_variant=rand, fixed=fixed))
    for kind in ("zero-length", "bomb", "rgb"):
        def train_setup(a, d, rng, kind=kind):
            (d / "photos").mkdir()
            make_image(kind, d / "photos" / "a.png", rng)
            return ["train", "--out", "run", "--preset", "anyir-tiny", "--data", "folder:photos", "--tasks", "noise25",
                    "--patch", "16", "--batch", "1", "--steps", "1", "--quiet", "--threads", "1"]
        cases.append(Case("train", f"data-folder-{kind}", train_setup, "ok" if kind == "rgb" else "error",
                          "pixels" if kind == "bomb" else "", ("run",),
                          doc="a folder of clean photos, degraded on the fly" if kind == "rgb" else "",
                          fixed={"bomb": BOMB_FIX, "zero-length": DATA_FIX}.get(kind)))

        def eval_setup(a, d, rng, kind=kind):
            (d / "photos").mkdir()
            make_image(kind, d / "photos" / "a.png", rng)
            return ["eval", "--checkpoint", a.ck, "--data", "folder:photos", "--tasks", "noise25", "--no-baselines",
                    "--quiet", "--json", "r.json"]
        cases.append(Case("eval", f"data-folder-{kind}", eval_setup, "ok" if kind == "rgb" else "error",
                          "pixels" if kind == "bomb" else "", ("r.json",),
                          doc="PSNR/SSIM of a user folder" if kind == "rgb" else "",
                          fixed=BOMB_FIX if kind == "bomb" else None))
    return cases


# checkpoints -----------------------------------------------------------------------------------------------

def _safetensors_with_meta(src: Path, dst: Path, **meta) -> None:
    data = src.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    hdr = json.loads(data[8:8 + n])
    hdr["__metadata__"] = {**hdr.get("__metadata__", {}), **meta}
    h = json.dumps(hdr).encode()
    dst.write_bytes(struct.pack("<Q", len(h)) + h + data[8 + n:])


def _nonfinite_safetensors(src: Path, dst: Path) -> None:
    """One weight's exponent bits set: a bit flip that makes it infinite."""
    data = bytearray(src.read_bytes())
    n = struct.unpack("<Q", data[:8])[0]
    hdr = json.loads(data[8:8 + n])
    name, info = next((k, v) for k, v in hdr.items() if k != "__metadata__" and v["dtype"] == "F32")
    off = 8 + n + info["data_offsets"][0]
    data[off + 3] |= 0x7F
    data[off + 2] |= 0x80
    dst.write_bytes(bytes(data))


def make_checkpoint(kind: str, a: Assets, d: Path, rng: random.Random) -> str:
    """A checkpoint file in `d` of the given kind; returns its name."""
    import torch
    good = a.ck
    data = good.read_bytes()
    if kind == "zero-length":
        (d / "ck.safetensors").write_bytes(b"")
    elif kind == "truncated":
        (d / "ck.safetensors").write_bytes(truncate(data, rng))
    elif kind == "bit-flipped-header":
        n = struct.unpack("<Q", data[:8])[0]
        b = bytearray(data)
        i = rng.randrange(0, 8 + n)
        b[i] ^= 1 << rng.randrange(8)
        (d / "ck.safetensors").write_bytes(bytes(b))
    elif kind == "non-finite-weight":
        _nonfinite_safetensors(good, d / "ck.safetensors")
    elif kind == "config-not-json":
        _safetensors_with_meta(good, d / "ck.safetensors", config="{not json")
    elif kind == "config-a-list":
        _safetensors_with_meta(good, d / "ck.safetensors", config="[1, 2]")
    elif kind == "config-wrong-types":
        _safetensors_with_meta(good, d / "ck.safetensors", config=json.dumps({"dim": "eight", "num_blocks": 4}))
    elif kind == "config-absurd":  # would allocate 30 GB if believed
        _safetensors_with_meta(good, d / "ck.safetensors",
                               config=json.dumps({"dim": 100000, "num_blocks": [100, 100, 100, 100]}))
    elif kind == "preset-escapes":
        _safetensors_with_meta(good, d / "ck.safetensors", preset="../../escaped")
    elif kind == "pickle-with-code":
        evil_torch_file(d / "ck.pth", d / MARKER)
        return "ck.pth"
    elif kind == "raw-pickle-with-code":
        (d / "ck.pt").write_bytes(evil_pickle_bytes(d / MARKER))
        return "ck.pt"
    elif kind == "lightning-ckpt-with-code":
        evil_torch_file(d / "ck.ckpt", d / MARKER, {"epoch": 3})
        return "ck.ckpt"
    elif kind == "tensor-not-dict":
        torch.save(torch.zeros(3), d / "ck.pth")
        return "ck.pth"
    elif kind == "garbage-ckpt":
        (d / "ck.ckpt").write_bytes(bytes(rng.randrange(256) for _ in range(5000)))
        return "ck.ckpt"
    elif kind == "folder":
        (d / "ck.safetensors").mkdir()
    elif kind == "missing":
        pass
    elif kind == "other-preset":
        from anyir_core import save_checkpoint
        from anyir_core.model import AnyIR
        from anyir_core.presets import resolve_config
        save_checkpoint(AnyIR(resolve_config("anyir-tiny")), d / "ck.safetensors", "anyir-tiny")
        _safetensors_with_meta(d / "ck.safetensors", d / "ck.safetensors", preset="anyir-mobile",
                               config=json.dumps({**json.loads(json.dumps(resolve_config("anyir-mobile").to_dict()))}))
    elif kind == "sidecar-garbage":
        shutil.copy(good, d / "ck.safetensors")
        (d / "ck.json").write_text("{not json")
    elif kind == "sidecar-list":
        shutil.copy(good, d / "ck.safetensors")
        (d / "ck.json").write_text("[1, 2]")
    else:
        raise ValueError(kind)
    return "ck.safetensors"


# kind -> (error word, fixed defect, known open defect)
CHECKPOINT_KINDS = {
    "zero-length": ("", None, None),
    "truncated": ("", None, None),
    "bit-flipped-header": ("", None, None),
    "non-finite-weight": ("non-finite", "a bit flip that makes a weight inf/NaN loaded silently (black output)", None),
    "config-not-json": ("config", "safetensors metadata `config` not JSON: traceback", None),
    "config-a-list": ("config", "metadata `config` of the wrong shape: traceback", None),
    "config-wrong-types": ("config", "metadata `config` with wrong types: traceback", None),
    "config-absurd": ("", "metadata `config` of an absurd model: tried to allocate 30 GB (traceback, or OOM-kill)", None),
    "preset-escapes": ("preset", "metadata `preset` '../../x' named files outside the output folder", None),
    "pickle-with-code": ("", None, None),
    "raw-pickle-with-code": ("", None, None),
    "lightning-ckpt-with-code": ("", None, None),
    "tensor-not-dict": ("state dict", None, None),
    "garbage-ckpt": ("", None, None),
    "folder": ("", None, None),
    "missing": ("no such", None, None),
    "other-preset": ("does not fit", None, None),
}


def checkpoint_cases() -> list[Case]:
    cases = []
    for kind, (want, fixed, known) in CHECKPOINT_KINDS.items():
        rand = kind in ("truncated", "bit-flipped-header", "garbage-ckpt")

        def info_setup(a, d, rng, kind=kind):
            return ["info", "--checkpoint", make_checkpoint(kind, a, d, rng), "--no-ops", "--size", "32", "32"]
        cases.append(Case("loader: checkpoint", kind, info_setup, "error", want, marker=MARKER, fixed=fixed,
                          known=known, random_variant=rand, timeout=120))
    # every command that takes a checkpoint, on the kinds that reach furthest
    for kind in ("truncated", "pickle-with-code", "preset-escapes", "config-absurd", "non-finite-weight"):
        want, fixed, known = CHECKPOINT_KINDS[kind]

        def export_setup(a, d, rng, kind=kind):
            (d / "a" / "b").mkdir(parents=True)
            name = make_checkpoint(kind, a, d / "a" / "b", rng)
            return ["export", "--backend", "coreml", "--precision", "fp32", "--checkpoint", f"a/b/{name}", "--size", "16",
                    "--out", "a/b/out"]

        def eval_setup(a, d, rng, kind=kind):
            name = make_checkpoint(kind, a, d, rng)
            return ["eval", "--checkpoint", name, "--tasks", "noise25", "--crop", "32", "--no-baselines", "--quiet",
                    "--json", "r.json"]

        def train_setup(a, d, rng, kind=kind):
            name = make_checkpoint(kind, a, d, rng)
            return ["train", "--init", name, "--out", "run", "--preset", "anyir-tiny", "--tasks", "noise25", "--patch", "16",
                    "--batch", "1", "--steps", "1", "--quiet", "--threads", "1"]

        def qat_setup(a, d, rng, kind=kind):
            name = make_checkpoint(kind, a, d, rng)
            return ["qat", "--checkpoint", name, "--out", "q", *TINY_QAT_FLAGS]

        def build_setup(a, d, rng, kind=kind):
            (d / "a" / "b").mkdir(parents=True)
            name = make_checkpoint(kind, a, d / "a" / "b", rng)
            shutil.copytree(a.cache, d / "cache")
            return ["build", "--checkpoint", f"a/b/{name}", *a.build_args, "--out", "a/b/dist", "--cache-dir", "cache"]
        for cmd, setup in (("export", export_setup), ("eval", eval_setup), ("train", train_setup), ("qat", qat_setup),
                           ("build", build_setup)):
            if kind == "preset-escapes" and cmd in ("eval", "train", "qat"):
                continue  # they name no file after the preset
            if kind == "config-absurd" and cmd != "export":
                continue
            if kind == "non-finite-weight" and cmd not in ("eval", "build"):
                continue
            handled = cmd == "build" and kind == "preset-escapes"  # (build refused that preset name before)
            cases.append(Case(cmd, f"checkpoint-{kind}", setup, "error", want, marker=MARKER,
                              fixed=None if handled else fixed, known=known, timeout=300))
    for kind in ("sidecar-garbage", "sidecar-list"):
        def qat_sidecar(a, d, rng, kind=kind):  # without --tasks, qat reads the tasks from the sidecar
            flags = [f for f in TINY_QAT_FLAGS if f not in ("--tasks", "noise25")]
            return ["qat", "--checkpoint", make_checkpoint(kind, a, d, rng), "--out", "q", *flags]

        def build_sidecar(a, d, rng, kind=kind):
            shutil.copytree(a.cache, d / "cache")
            return ["build", "--checkpoint", make_checkpoint(kind, a, d, rng), *a.build_args, "--out", "dist",
                    "--cache-dir", "cache"]
        for cmd, setup in (("qat", qat_sidecar), ("build", build_sidecar)):
            cases.append(Case(cmd, f"checkpoint-{kind}", setup, "error", "sidecar", timeout=180,
                              fixed="a damaged checkpoint sidecar (not JSON, or not an object): traceback, and "
                                    "`anyir build` reached it only after all its work"))
    return cases


TRAIN_CONFIGS = {
    "patch-a-string": ({"patch": "abc"}, "patch"),
    "steps-a-float": ({"steps": 1.5}, "steps"),
    "tasks-a-number": ({"tasks": 5}, "tasks"),
    "tasks-of-numbers": ({"tasks": [1, 2]}, "tasks"),
    "lr-a-string": ({"lr": "x"}, "lr"),
    "darken-a-string": ({"darken": "0.5"}, "darken"),
    "threads-a-string": ({"threads": "2"}, "threads"),
    "patch-a-bool": ({"patch": True}, "patch"),
    "data-a-string": ({"data": "builtin:train"}, "data"),
    "seed-negative": ({"seed": -1}, "seed"),
    "unknown-option": ({"pach": 16}, "unknown"),
    "a-list": ([1, 2], "mapping"),
}
WARM_BUILD = {"backends": ["executorch"], "precisions": ["fp32"], "size": [32, 32], "overlap": 8, "repeats": 1,
              "tasks": ["noise25"], "jobs": 1}
BUILD_CONFIGS = {
    "size-a-string": ({"size": "abc"}, "size"),
    "size-of-strings": ({"size": ["a", "b"]}, "size"),
    "backends-a-number": ({"backends": 5}, "backends"),
    "precisions-a-number": ({"precisions": {"coreml": 5}}, "precisions"),
    "repeats-a-string": ({"repeats": "x"}, "repeats"),
    "qat-a-string": ({"qat": "x"}, "qat"),
    "layouts-a-list": ({"layouts": ["NCHW"]}, "layouts"),
    "name-a-number": ({"name": 7}, "name"),
    "name-escapes": ({"name": "../../escaped"}, "name"),
    "tasks-a-string": ({"tasks": "noise25"}, "tasks"),
    "size-absurd": ({"size": [100000, 100000]}, "size"),
}


def config_cases() -> list[Case]:
    cases = []
    for name, (cfg, want) in TRAIN_CONFIGS.items():
        def setup(a, d, rng, cfg=cfg):
            (d / "c.json").write_text(json.dumps(cfg))
            return ["train", "--config", "c.json", "--out", "run", "--quiet"]
        fixed = {"unknown-option": None, "a-list": None, "patch-a-bool": None,
                 "data-a-string": "config `data` as a string was read letter by letter",
                 "seed-negative": "a negative --seed: numpy traceback after the run folder was made"}.get(
            name, "a config value of the wrong type: traceback")
        cases.append(Case("train", f"config-{name}", setup, "error", want, fixed=fixed))
    for suffix, text, want in ((".yaml", "patch: [1, 2]\n", "patch"),
                               (".yaml", "!!python/object/apply:builtins.exec ['open(\"" + MARKER + "\", \"w\").close()']\n", "YAML"),
                               (".yaml", "- a\n- b\n", "mapping"), (".json", "{", "JSON"), (".json", "", "JSON")):
        def setup(a, d, rng, suffix=suffix, text=text):
            (d / f"c{suffix}").write_text(text)
            return ["train", "--config", f"c{suffix}", "--out", "run", "--quiet"]
        label = {"patch: [1, 2]\n": "yaml-wrong-type", "- a\n- b\n": "yaml-a-list", "{": "json-truncated", "": "json-empty"}
        cases.append(Case("train", "config-" + label.get(text, "yaml-carrying-code"), setup, "error", want, marker=MARKER,
                          fixed="a config value of the wrong type: traceback" if text.startswith("patch") else None))
    for name, (cfg, want) in BUILD_CONFIGS.items():
        def setup(a, d, rng, cfg=cfg):
            # the warm build's settings and a copy of its cache: a config accepted by mistake costs seconds
            shutil.copytree(a.cache, d / "cache")
            (d / "c.json").write_text(json.dumps({**WARM_BUILD, "checkpoint": str(a.ck), "out": "dist", **cfg}))
            return ["build", "--config", "c.json", "--quiet", "--cache-dir", "cache"]
        fixed = {"size-a-string": None,
                 "name-escapes": "--name/--version with '/' or '..' put the bundle outside --out",
                 "size-absurd": "an absurd tile size went on to trace the model at that size (traceback or OOM)",
                 "tasks-a-string": "config `tasks` as a string was read letter by letter"}.get(
            name, "a config value of the wrong type: traceback")
        cases.append(Case("build", f"config-{name}", setup, "error", want, fixed=fixed, timeout=180))
    return cases


# absurd sizes and flags ----------------------------------------------------------------------------------------

def size_cases() -> list[Case]:
    cases = [
        Case("info", "size-16384-square", lambda a, d, r: ["info", "--preset", "anyir-tiny", "--size", "16384", "16384",
                                                           "--no-ops"], "ok", timeout=60,
             doc="MACs counted on shapes alone", fixed="`anyir info --size 16384 16384` ran the model at that size (hang, OOM)",
             check=lambda d, res: None if "MACs" in res.stdout else "no MACs line"),
        Case("info", "size-100000x1", lambda a, d, r: ["info", "--size", "100000", "1", "--no-ops"], "error", "16384"),
        Case("info", "size-zero", lambda a, d, r: ["info", "--size", "0", "5", "--no-ops"], "error", "positive"),
        Case("info", "preset-unknown", lambda a, d, r: ["info", "--preset", "nope", "--no-ops"], "error", "preset"),
        Case("export", "size-absurd", lambda a, d, r: ["export", "--backend", "coreml", "--checkpoint", a.ck, "--size",
                                                       "100000", "--out", "o"], "error", "size", timeout=120,
             fixed="an absurd tile size went on to trace the model at that size (traceback or OOM)"),
        Case("export", "size-not-multiple", lambda a, d, r: ["export", "--backend", "coreml", "--checkpoint", a.ck,
                                                             "--size", "30", "--out", "o"], "error", "multiples"),
        Case("export", "backend-unknown", lambda a, d, r: ["export", "--backend", "onnx", "--checkpoint", a.ck,
                                                           "--out", "o"], "error", "backend"),
        Case("export", "int8-without-state", lambda a, d, r: ["export", "--backend", "coreml", "--precision", "int8",
                                                              "--checkpoint", a.ck, "--size", "16", "--out", "o"],
             "error", "quantization state"),
        Case("restore", "overlap-absurd", lambda a, d, r: (make_image("rgb", d / "in.png", r),
                                                           ["restore", "in.png", "--bundle", a.bundle, "--overlap", "100000",
                                                            "--out", "out.png"])[1], "error", "overlap"),
        Case("restore", "overlap-negative", lambda a, d, r: (make_image("rgb", d / "in.png", r),
                                                             ["restore", "in.png", "--bundle", a.bundle, "--overlap", "-3",
                                                              "--out", "out.png"])[1], "error", "overlap"),
        Case("degrade", "kind-unknown", lambda a, d, r: (make_image("rgb", d / "in.png", r),
                                                         ["degrade", "in.png", "--kind", "snow", "--out", "o.png"])[1],
             "error", "snow"),
        Case("train", "patch-absurd", lambda a, d, r: ["train", "--out", "run", "--preset", "anyir-tiny", "--patch",
                                                       "100000000", "--steps", "1", "--quiet"], "error", "patch",
             fixed=DATA_FIX),
        Case("qat", "patch-not-multiple", lambda a, d, r: ["qat", "--checkpoint", a.ck, "--out", "q", "--patch", "20",
                                                           "--steps", "1", "--quiet"], "error", "patch"),
        Case("profile", "runs-zero", lambda a, d, r: ["profile", a.bundle, "--runs", "0"], "error", "runs"),
        Case("build", "size-absurd-flag", lambda a, d, r: ["build", "--checkpoint", a.ck, *a.build_args, "--size", "100000",
                                                           "--out", "dist", "--cache-dir", "cache"], "error", "size",
             fixed="an absurd tile size went on to trace the model at that size (traceback or OOM)", timeout=120),
    ]
    return cases


# artifacts -------------------------------------------------------------------------------------------------

def _artifact_copy(a: Assets, which: str, d: Path) -> Path:
    src = a.pte if which == "pte" else asset(a, which)
    dst = d / src.name
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy(src, dst)
    shutil.copy(src.with_name(src.name + ".json"), d / (src.name + ".json"))
    return dst


def _main_file(art: Path) -> Path:
    return art / "Data/com.apple.CoreML/model.mlmodel" if art.is_dir() else art


def tamper_artifact(kind: str, art: Path, rng: random.Random) -> None:
    f = _main_file(art)
    rec = art.with_name(art.name + ".json")
    if kind == "zero-length":
        f.write_bytes(b"")
    elif kind == "truncated":
        f.write_bytes(truncate(f.read_bytes(), rng))
    elif kind == "bit-flipped":
        f.write_bytes(flip_bits(f.read_bytes(), rng))
    elif kind in ("zero-length+record", "truncated+record", "bit-flipped+record"):
        tamper_artifact(kind.split("+")[0], art, rng)
        rewrite_record(art)
    elif kind == "weights-truncated+record":
        w = art / "Data/com.apple.CoreML/weights/weight.bin"
        w.write_bytes(truncate(w.read_bytes(), rng))
        rewrite_record(art)
    elif kind == "weights-flipped+record":
        w = art / "Data/com.apple.CoreML/weights/weight.bin"
        w.write_bytes(flip_bits(w.read_bytes(), rng, n=8))
        rewrite_record(art)
    elif kind == "package-manifest-garbage+record":
        (art / "Manifest.json").write_text("{not json")
        rewrite_record(art)
    elif kind == "spec-missing+record":
        f.unlink()
        rewrite_record(art)
    elif kind == "record-missing":
        rec.unlink()
    elif kind == "record-garbage":
        rec.write_text("{not json")
    elif kind == "record-input-a-number":
        d = json.loads(rec.read_text())
        d["input"] = 5
        rec.write_text(json.dumps(d))
    elif kind == "record-a-list":
        rec.write_text("[]")
    elif kind == "record-backend-unknown":
        d = json.loads(rec.read_text())
        d["backend"] = "onnx"
        rec.write_text(json.dumps(d))
    elif kind == "record-height-a-string":
        d = json.loads(rec.read_text())
        d["input"]["height"] = "big"
        rec.write_text(json.dumps(d))
    elif kind == "record-names-another-file":
        # the record describes this file (its checksum) but names another one to load
        other = art.with_name("other" + art.suffix)
        if art.is_dir():
            shutil.copytree(art, other)
        else:
            shutil.copy(art, other)
        tamper_artifact("bit-flipped", other, rng)
        d = json.loads(rec.read_text())
        d["file"] = other.name
        rec.write_text(json.dumps(d))
    elif kind == "record-names-a-path-outside":
        d = json.loads(rec.read_text())
        d["file"] = "../" + art.name
        rec.write_text(json.dumps(d))
    elif kind == "xnnpack-key-not-utf8+record":
        # the one-byte change a bit-flip search found: a named-data key that is no longer UTF-8 makes the XNNPACK
        # delegate log it, and ExecuTorch's Python log bridge aborts the process on the undecodable text
        import re
        data = bytearray(f.read_bytes())
        m = list(re.finditer(rb"[0-9a-f]{64}", bytes(data)))[-1]  # the copy inside the XNNPACK delegate's blob
        data[m.start() + 8] = 0xA2
        f.write_bytes(bytes(data))
        rewrite_record(art)
    else:
        raise ValueError(kind)


ARTIFACT_KINDS = {  # kind -> (formats, expect, error word, fixed, known)
    "zero-length": (("pte", "tflite", "mlpackage"), "error", "checksum", None, None),
    "truncated": (("pte", "tflite", "mlpackage"), "error", "checksum", None, None),
    "bit-flipped": (("pte", "tflite", "mlpackage"), "error", "checksum", None, None),
    "zero-length+record": (("pte", "tflite", "mlpackage"), "error", "", None, None),
    "truncated+record": (("pte", "tflite", "mlpackage"), "error", "", None, None),
    "bit-flipped+record": (("pte", "tflite", "mlpackage"), "any", "", None, None),
    "weights-truncated+record": (("mlpackage",), "error", "", None, None),
    "weights-flipped+record": (("mlpackage",), "any", "", None, None),
    "package-manifest-garbage+record": (("mlpackage",), "any", "", None, None),
    "spec-missing+record": (("mlpackage",), "error", "", None, None),
    "record-missing": (("pte", "tflite", "mlpackage"), "error", "record", None, None),
    "record-garbage": (("pte", "tflite", "mlpackage"), "error", "record", None, None),
    "record-input-a-number": (("pte",), "error", "record", "an artifact record whose `input` is not an object: traceback", None),
    "record-a-list": (("pte",), "error", "record", None, None),
    "record-backend-unknown": (("pte",), "error", "backend", None, None),
    "record-height-a-string": (("pte",), "error", "record", "an artifact record with a non-integer size: traceback", None),
    "record-names-another-file": (("pte", "tflite", "mlpackage"), "error", "names",
                                  "a record that names another file: the checksummed file was not the one loaded", None),
    "record-names-a-path-outside": (("pte",), "error", "names",
                                    "a record whose `file` is ../x loaded a file outside the artifact's folder", None),
    "xnnpack-key-not-utf8+record": (("pte",), "error", "loadable",
                                    "a .pte whose XNNPACK named-data key is not UTF-8 aborted the process on load (SIGABRT "
                                    "in ExecuTorch's Python log bridge)", None),
}


def artifact_cases(long: bool = False) -> list[Case]:
    cases = []
    for kind, (formats, expect, want, fixed, known) in ARTIFACT_KINDS.items():
        rand = any(k in kind for k in ("truncated", "flipped"))
        for fmt in formats:
            def profile_setup(a, d, rng, kind=kind, fmt=fmt):
                art = _artifact_copy(a, fmt, d)
                tamper_artifact(kind, art, rng)
                return ["profile", art.name, "--no-reference", "--no-ops", "--no-memory", "--runs", "1", "--warmup", "0",
                        "--quiet"]
            # what runs a tampered artifact: one clean error, or (a flip the runtime cannot notice) a result
            cases.append(Case(f"loader: .{fmt}", kind, profile_setup, expect, want if expect == "error" else "",
                              fixed=fixed, known=known, random_variant=rand, timeout=180,
                              doc="the runtime runs what the flipped bytes still describe" if expect == "any" else ""))
            if kind in ("bit-flipped", "record-garbage", "record-names-another-file", "truncated+record") and fmt != "tflite":
                def verify_setup(a, d, rng, kind=kind, fmt=fmt):
                    art = _artifact_copy(a, fmt, d)
                    tamper_artifact(kind, art, rng)
                    return ["verify", art.name, "--checkpoint", a.ck, "--tasks", "noise25", "--quiet"]
                cases.append(Case("verify", f"{fmt}-{kind}", verify_setup, "error", want if expect == "error" else "",
                                  fixed=fixed, known=known, random_variant=rand, timeout=180))
    return cases


# bundles and manifests ---------------------------------------------------------------------------------------

def tamper_bundle(kind: str, b: Path, rng: random.Random, outside: Path) -> None:
    m = read_manifest(b)
    pte_entry = next(x for x in m["artifacts"] if x["backend"] == "executorch")
    rel = pte_entry["paths"]["android"]
    if kind == "manifest-zero-length":
        (b / "manifest.json").write_text("")
    elif kind == "manifest-truncated":
        text = (b / "manifest.json").read_bytes()
        (b / "manifest.json").write_bytes(truncate(text, rng))
    elif kind == "manifest-bit-flipped":
        text = (b / "manifest.json").read_bytes()
        (b / "manifest.json").write_bytes(flip_bits(text, rng))
    elif kind == "manifest-a-list":
        (b / "manifest.json").write_text("[]")
    elif kind == "manifest-number-changed":  # a flip that keeps it valid JSON, valid against the schema
        m["host_latency"]["eager_ms_median"] += 1.0
        write_manifest(b, m, seal=False)
    elif kind == "schema-unknown-version":
        m["schema"] = "anyir-mobile/manifest/2"
        write_manifest(b, m)
    elif kind == "schema-missing":
        del m["schema"]
        write_manifest(b, m)
    elif kind in ("path-dotdot", "path-absolute", "path-dotdot-only"):
        shutil.copy(b / rel, outside / Path(rel).name)
        shutil.copy(b / (rel + ".json"), outside / (Path(rel).name + ".json"))
        target = {"path-dotdot": os.path.relpath(outside / Path(rel).name, b),
                  "path-absolute": str(outside / Path(rel).name), "path-dotdot-only": ".."}[kind]
        pte_entry["paths"] = {"android": target}
        write_manifest(b, m)
    elif kind == "file-table-dotdot":
        (outside / "x.bin").write_bytes(b"outside")
        m["files"][os.path.relpath(outside / "x.bin", b)] = {"bytes": 7, "sha256": _sha(b"outside")}
        write_manifest(b, m)
    elif kind == "symlink-artifact-outside":
        shutil.copy(b / rel, outside / Path(rel).name)
        (b / rel).unlink()
        (b / rel).symlink_to(outside / Path(rel).name)
    elif kind == "symlink-folder-outside":
        shutil.copytree(b / "android", outside / "android")
        shutil.rmtree(b / "android")
        (b / "android").symlink_to(outside / "android", target_is_directory=True)
    elif kind == "symlink-report-outside":
        (outside / "secret.txt").write_text("not the bundle's")
        (b / "report.md").unlink()
        (b / "report.md").symlink_to(outside / "secret.txt")
        write_manifest(b, m, refresh_files=True)
    elif kind == "artifact-sha-wrong":
        pte_entry["sha256"] = "0" * 64
        write_manifest(b, m)
    elif kind == "file-table-sha-wrong":
        m["files"][rel]["sha256"] = "1" * 64
        write_manifest(b, m)
    elif kind == "artifact-bytes-flipped":
        (b / rel).write_bytes(flip_bits((b / rel).read_bytes(), rng))
    elif kind == "duplicated-ids":
        m["artifacts"].append(copy.deepcopy(pte_entry))
        write_manifest(b, m)
    elif kind == "input-missing":
        del m["input"]
        write_manifest(b, m)
    elif kind == "tile-a-string":
        m["input"]["tile"] = "abc"
        write_manifest(b, m)
    elif kind == "tile-zero":
        m["input"]["tile"] = [0, 0]
        write_manifest(b, m)
    elif kind == "default-unknown":
        m["default_artifact"] = "nope"
        write_manifest(b, m)
    elif kind == "artifacts-not-a-list":
        m["artifacts"] = {}
        write_manifest(b, m)
    elif kind == "record-names-another-file":
        rec = b / (rel + ".json")
        d = json.loads(rec.read_text())
        d["file"] = "anyir-tiny-other.pte"
        (b / Path(rel).parent / "anyir-tiny-other.pte").write_bytes(flip_bits((b / rel).read_bytes(), rng))
        rec.write_text(json.dumps(d))
        write_manifest(b, m, refresh_files=True)
    elif kind == "manifest-missing":
        (b / "manifest.json").unlink()
    elif kind == "not-a-folder":
        shutil.rmtree(b)
        b.write_text("a file")
    else:
        raise ValueError(kind)


def _sha(data: bytes) -> str:
    import hashlib
    return hashlib.sha256(data).hexdigest()


SCHEMA_FIX = "restore: a manifest that fails its own schema was used (here a file-table path '../x')"
# per command: a manifest changed but still valid JSON and schema-valid (no checksum covered manifest.json)
MANIFEST_FIXED = {c: f"{c}: a changed manifest, still valid JSON and schema-valid, {how} (no checksum covered it)"
                  for c, how in (("restore", "was used"), ("bundle verify", "passed"), ("profile", "was used"))}
# bundle verify's own fixes (restore's are in BUNDLE_KINDS)
VERIFY_FIXED = {
    "manifest-a-list": "bundle verify: a manifest that is not an object: traceback",
    "manifest-number-changed": MANIFEST_FIXED["bundle verify"],
    "path-dotdot-only": "bundle verify: an artifact path '..' passed the schema and hashed the bundle's parent folder",
    "symlink-artifact-outside": "bundle verify: a symlinked artifact (pointing outside the bundle) passed",
    "symlink-folder-outside": "bundle verify: a symlinked folder (pointing outside the bundle) passed",
    "symlink-report-outside": "bundle verify: a symlinked report (pointing outside the bundle) passed",
    "duplicated-ids": "bundle verify: duplicated artifact ids passed",
    "default-unknown": "bundle verify: a default_artifact naming no artifact passed",
    "record-names-another-file": "bundle verify: a record naming another (unchecked) file passed",
}
# kinds whose outcome may be either (none now: a random flip in the manifest breaks its JSON, or its sha256 beside
# it, manifest.json.sha256, no longer matches: one clean line either way)
ANY_OUTCOME: dict = {}
BUNDLE_KINDS = {  # kind -> (error word, fixed in this change, open defect per command {command: note})
    "manifest-zero-length": ("JSON", "restore: a manifest that is not JSON: traceback", {}),
    "manifest-truncated": ("", "restore: a manifest that is not JSON: traceback", {}),
    "manifest-bit-flipped": ("", None, {}),
    "manifest-a-list": ("", "restore: a manifest that is not an object: traceback", {}),
    "manifest-number-changed": ("", MANIFEST_FIXED["restore"], {}),
    "schema-unknown-version": ("schema", "restore: an unknown manifest schema version was used as if it were 1", {}),
    "schema-missing": ("schema", "restore: a manifest without a schema id was used", {}),
    "path-dotdot": ("leaves", "restore: an artifact path '../..' loaded a program outside the bundle", {}),
    "path-absolute": ("leaves", "restore: an absolute artifact path loaded a program outside the bundle", {}),
    "path-dotdot-only": ("", None, {}),
    "file-table-dotdot": ("", SCHEMA_FIX, {}),
    "symlink-artifact-outside": ("symbolic link", "restore: a symlinked artifact loaded a file from outside the bundle", {}),
    "symlink-folder-outside": ("symbolic link", "restore: a symlinked folder loaded a file from outside the bundle", {}),
    "symlink-report-outside": ("symbolic link", "restore: a bundle holding a symlink to a file outside it (report.md) "
                                                "was used", {}),
    "artifact-sha-wrong": ("sha256", None, {}),
    "file-table-sha-wrong": ("sha256", "restore / profile: a manifest whose file table disagrees with the artifact's "
                                       "sha256 was used", {}),
    "artifact-bytes-flipped": ("", None, {}),
    "duplicated-ids": ("more than once", "restore: two artifacts with one id: the first silently won", {}),
    "input-missing": ("input", "restore: a manifest without `input`: traceback", {}),
    "tile-a-string": ("tile", "restore: a manifest tile of the wrong type: traceback", {}),
    "tile-zero": ("tile", "restore: tile [0, 0] gave a misleading 'overlap' error", {}),
    "default-unknown": ("", None, {}),
    "artifacts-not-a-list": ("artifacts", "restore: a manifest whose `artifacts` is not a list: a misleading 'has no "
                                          "artifact' error", {}),
    "record-names-another-file": ("names", "restore: a record naming another file loaded that file unchecked", {}),
    "manifest-missing": ("manifest", None, {}),
    "not-a-folder": ("", None, {}),
}


def bundle_cases() -> list[Case]:
    cases = []
    for kind, (want, fixed, known) in BUNDLE_KINDS.items():
        rand = kind in ("manifest-truncated", "manifest-bit-flipped", "artifact-bytes-flipped")

        def restore_setup(a, d, rng, kind=kind):
            (d / "outside").mkdir()
            b = copy_bundle(a, d / "b")
            tamper_bundle(kind, b, rng, d / "outside")
            make_image("rgb", d / "in.png", rng)
            return ["restore", "in.png", "--bundle", f"b/{b.name}", "--out", "out.png", "--quiet"]

        def verify_setup(a, d, rng, kind=kind):
            (d / "outside").mkdir()
            b = copy_bundle(a, d / "b")
            tamper_bundle(kind, b, rng, d / "outside")
            return ["bundle", "verify", f"b/{b.name}"]

        def profile_setup(a, d, rng, kind=kind):
            (d / "outside").mkdir()
            b = copy_bundle(a, d / "b")
            tamper_bundle(kind, b, rng, d / "outside")
            return ["profile", f"b/{b.name}", "--no-reference", "--no-ops", "--no-memory", "--runs", "1", "--warmup", "0",
                    "--quiet", "--artifact", "executorch-fp32"]
        expect = "any" if kind in ANY_OUTCOME else "error"
        doc = ANY_OUTCOME.get(kind, "")
        cases.append(Case("restore", f"bundle-{kind}", restore_setup, expect, want, ("out.png",), fixed=fixed,
                          known=known.get("restore"), random_variant=rand, timeout=120, doc=doc))
        cases.append(Case("bundle verify", kind, verify_setup, expect, doc=doc,
                          want={"manifest-zero-length": "JSON", "manifest-missing": "manifest"}.get(kind, ""),
                          fixed=VERIFY_FIXED.get(kind), known=known.get("bundle verify"), random_variant=rand))
        if kind not in ("default-unknown",):
            cases.append(Case("profile", f"bundle-{kind}", profile_setup, expect, "", doc=doc,
                              fixed=MANIFEST_FIXED["profile"] if kind == "manifest-number-changed" else
                              None if kind not in ("path-dotdot", "path-absolute", "symlink-artifact-outside",
                                                         "symlink-folder-outside", "duplicated-ids", "manifest-a-list",
                                                         "input-missing", "tile-a-string", "file-table-dotdot",
                                                         "symlink-report-outside", "file-table-sha-wrong", "tile-zero")
                              else "profile: the same manifest checks as restore (paths, symlinks, schema, ids)",
                              known=known.get("profile"), random_variant=rand, timeout=120))
    # profile compare: results and --into
    for kind, want in (("zero-length", "JSON"), ("truncated", "JSON"), ("a-list", "schema"), ("wrong-schema", "schema"),
                       ("missing", "no such")):
        def compare_setup(a, d, rng, kind=kind):
            good = asset(a, "profile_result").read_text()
            text = {"zero-length": "", "truncated": good[:len(good) // 2], "a-list": "[]",
                    "wrong-schema": json.dumps({**json.loads(good), "schema": "anyir-mobile/profile/9"})}.get(kind)
            if text is not None:
                (d / "r.json").write_text(text)
            return ["profile", "compare", "r.json", "--plot", "p.png"]
        cases.append(Case("profile compare", kind, compare_setup, "error", want, ("p.png",)))

    def into_tampered(a, d, rng):
        b = copy_bundle(a, d / "b")
        tamper_bundle("symlink-report-outside", b, rng, d)
        shutil.copy(asset(a, "profile_result"), d / "r.json")
        return ["profile", "compare", "r.json", "--into", f"b/{b.name}"]
    cases.append(Case("profile compare", "into-a-symlinked-bundle", into_tampered, "error", "",
                      fixed="profile compare --into: a bundle holding a symlink out of it was changed (verify followed links)"))
    return cases


# training / QAT runs, quantization states ------------------------------------------------------------------

QAT_TRAINER_FIX = ("qat --resume: a damaged newest trainer.pt, or one carrying code (refused by weights_only), "
                   "ended in a traceback instead of falling back")


def run_cases() -> list[Case]:
    def tampered_run(kind):
        def setup(a, d, rng):
            run = d / "run"
            shutil.copytree(asset(a, "run"), run)
            cks = sorted((run / "checkpoints").glob("step_*"))
            newest = cks[-1]
            if kind == "config-garbage":
                (run / "config.json").write_text("{not json")
            elif kind == "config-wrong-types":
                c = json.loads((run / "config.json").read_text())
                c["patch"] = "big"
                (run / "config.json").write_text(json.dumps(c))
            elif kind == "newest-trainer-truncated":
                t = newest / "trainer.pt"
                t.write_bytes(truncate(t.read_bytes(), rng))
            elif kind == "newest-trainer-pickle-with-code":
                evil_torch_file(newest / "trainer.pt", d / MARKER, {"step": 4, "log_lines": 4})
            elif kind == "newest-model-truncated":
                t = newest / "model.safetensors"
                t.write_bytes(truncate(t.read_bytes(), rng))
            elif kind == "newest-trainer-wrong-optimizer":
                import torch
                torch.save({"optimizer": {"state": {}, "param_groups": []}, "step": 4, "log_lines": 4}, newest / "trainer.pt")
            elif kind == "newest-model-other-preset":
                from anyir_core import create_model, save_checkpoint
                save_checkpoint(create_model("anyir-mobile"), newest / "model.safetensors", "anyir-mobile")
            elif kind == "every-checkpoint-truncated":
                for ck in cks:
                    t = ck / "trainer.pt"
                    t.write_bytes(t.read_bytes()[:10])
            elif kind == "log-garbage-line":
                log = run / "log.jsonl"
                lines = log.read_text().splitlines()
                lines[0] = "{garbage"
                log.write_text("\n".join(lines) + "\n")
            return ["train", "--out", "run", "--resume", *TRAIN_RUN_FLAGS, "--steps", "6"]
        return setup
    cases = []
    for kind, expect, want, fixed, doc in (
            ("config-garbage", "error", "config.json", "train --resume: a damaged config.json: traceback", ""),
            ("config-wrong-types", "error", "patch", "a config value of the wrong type: traceback", ""),
            ("newest-trainer-truncated", "ok", "", None, "the damaged newest checkpoint is skipped (warning), the one before resumes"),
            ("newest-trainer-pickle-with-code", "ok", "", None, "refused by weights_only, skipped like a damaged one"),
            ("newest-model-truncated", "ok", "", None, "skipped, the one before resumes"),
            ("newest-trainer-wrong-optimizer", "ok", "",
             "train --resume: a checkpoint whose optimizer state does not fit: traceback instead of falling back",
             "skipped, the one before resumes"),
            ("newest-model-other-preset", "ok", "",
             "train --resume: a checkpoint of another model: traceback instead of falling back", "skipped, the one before resumes"),
            ("every-checkpoint-truncated", "error", "no loadable checkpoint", None, ""),
            ("log-garbage-line", "ok", "", "train: a damaged log.jsonl line crashed the run at its very end (summary)",
             "unreadable log lines are left out of the summary")):
        cases.append(Case("train", f"resume-{kind}", tampered_run(kind), expect, want, ("run",), marker=MARKER, fixed=fixed,
                          doc=doc, timeout=180))

    def qat_resume(kind):
        def setup(a, d, rng):
            q = d / "q"
            shutil.copytree(asset(a, "qat_partial"), q)
            newest = sorted((q / "checkpoints").glob("step_*"))[-1]
            if kind == "config-garbage":
                (q / "config.json").write_text("{not json")
            elif kind == "trainer-truncated":
                (newest / "trainer.pt").write_bytes((newest / "trainer.pt").read_bytes()[:20])
            elif kind == "trainer-pickle-with-code":
                evil_torch_file(newest / "trainer.pt", d / MARKER, {"step": 1, "log_lines": 0})
            return ["qat", "--checkpoint", a.ck, "--out", "q", "--resume", "--save-every", "1", *TINY_QAT_FLAGS]
        return setup
    for kind, fixed in (("config-garbage", "qat --resume: a damaged config.json: traceback"),
                        ("trainer-truncated", QAT_TRAINER_FIX), ("trainer-pickle-with-code", QAT_TRAINER_FIX)):
        cases.append(Case("qat", f"resume-{kind}", qat_resume(kind), "error", "", ("q",), marker=MARKER, fixed=fixed,
                          timeout=180))

    def quant_state(kind):
        def setup(a, d, rng):
            q = d / "q"
            q.mkdir()
            if kind != "missing-files":
                (q / "quant.safetensors").write_bytes(a.ck.read_bytes()[:100] if kind == "state-truncated" else a.ck.read_bytes())
                (q / "quant.json").write_text({"info-garbage": "{not json", "info-a-list": "[]",
                                               "info-missing-keys": "{}", "state-truncated": json.dumps(
                                                   {"checkpoint": str(a.ck), "checkpoint_sha256": _sha(a.ck.read_bytes()),
                                                    "preset": "anyir-tiny", "scheme": "w8a8-xnnpack-float1", "mode": "qat",
                                                    "recipe": {"float_levels": 1}})}[kind])
            return ["export", "--backend", "coreml", "--precision", "int8", "--checkpoint", a.ck, "--quant-state", "q",
                    "--size", "16", "--out", "o"]
        return setup
    for kind, fixed in (("missing-files", None), ("info-garbage", None),
                        ("info-a-list", "a quant.json that is not an object: traceback"),
                        ("info-missing-keys", "a quant.json without checkpoint_sha256: KeyError traceback"),
                        ("state-truncated", None)):
        cases.append(Case("export", f"quant-state-{kind}", quant_state(kind), "error", "", ("o",), fixed=fixed, timeout=240))
    return cases


# full disk, read-only output ------------------------------------------------------------------------------------

def disk_cases() -> list[Case]:
    cases = []
    limit = 2000  # bytes: enough for the runtime log's first lines, not for any output

    def restore(a, d, rng):
        make_image("rgb", d / "in.png", rng)
        return ["restore", "in.png", "--bundle", a.bundle, "--out", "out/restored.png", "--quiet"]

    def degrade(a, d, rng):
        make_image("rgb", d / "in.png", rng)
        (d / "out").mkdir()
        make_image("rgb", d / "out" / "d.png", rng)  # an earlier result, which a failed write must leave whole
        return ["degrade", "in.png", "--kind", "noise25", "--out", "out/d.png"]

    def degrade_sheet(a, d, rng):
        make_image("rgb", d / "in.png", rng)
        return ["degrade", "in.png", "--sheet", "--out", "out/sheet.png"]

    def export(a, d, rng):
        return ["export", "--backend", "coreml", "--checkpoint", a.ck, "--size", "16", "--out", "out"]

    def train(a, d, rng):
        return ["train", "--out", "out/run", "--preset", "anyir-tiny", "--tasks", "noise25", "--patch", "16", "--batch", "1",
                "--steps", "2", "--quiet", "--threads", "1"]

    def evaluate(a, d, rng):
        (d / "photos").mkdir()
        make_image("rgb", d / "photos" / "a.png", rng)
        return ["eval", "--checkpoint", a.ck, "--data", "folder:photos", "--tasks", "noise25", "--no-baselines", "--quiet",
                "--json", "out/r.json", "--grid", "out/g.png"]

    def profile(a, d, rng):
        return ["profile", a.bundle, "--artifact", "executorch-fp32", "--no-reference", "--no-ops", "--no-memory", "--runs",
                "1", "--warmup", "0", "--quiet", "--out", "out/r.json"]

    def build(a, d, rng):
        shutil.copytree(a.cache, d / "cache")
        return ["build", "--checkpoint", a.ck, *a.build_args, "--out", "out", "--cache-dir", "cache"]

    def vectors(a, d, rng):
        make_image("rgb", d / "in.png", rng)
        return ["restore", "in.png", "--bundle", a.bundle, "--out", "o.png", "--vectors", "out/vec", "--quiet"]
    fixes = {"degrade": "degrade: a full disk (OSError) ended in a traceback, and the earlier image at --out was "
                        "left truncated (written in place, no temp file + rename)",
             "profile": "profile: a full disk under $TMPDIR aborted the process (SIGABRT: the runtime log's write "
                        "raised inside ExecuTorch's C++ log bridge)",
             "train": "train: a full disk (safetensors' SafetensorError, not an OSError) ended in a traceback",
             "restore-vectors": "restore --vectors: a full disk (OSError) ended in a traceback, the vectors folder "
                                "half-written"}
    def qat(a, d, rng):
        return ["qat", "--checkpoint", a.ck, "--out", "out/q", "--save-every", "1", *TINY_QAT_FLAGS]
    table = (("restore", restore), ("degrade", degrade), ("degrade-sheet", degrade_sheet), ("export", export),
             ("train", train), ("eval", evaluate), ("profile", profile), ("build", build), ("restore-vectors", vectors),
             ("qat", qat))
    fixes["export"] = ("export --backend coreml: a full disk made coremltools' blob writer raise RuntimeError "
                       "('[MIL FileWriter]: Unknown error') inside ct.convert: traceback")
    fixes["qat"] = ("qat: a full disk (safetensors' SafetensorError, not an OSError) ended in a traceback and left "
                    "config.json and log.jsonl")
    for name, setup in table:
        cmd, _, variant = name.partition("-")
        suffix = f"-{variant}" if variant else ""
        # (a profile result is a few hundred bytes)
        cases.append(Case(cmd, "full-disk" + suffix, setup, "error", "", fsize=300 if cmd == "profile" else limit,
                          timeout=300, fixed=fixes.get(name, "a full disk (OSError ENOSPC/EFBIG) ended in a traceback")))

        def readonly(a, d, rng, setup=setup):
            argv = setup(a, d, rng)
            if (d / "out").is_dir():
                shutil.rmtree(d / "out")
            if IS_ROOT:  # root writes through mode 0555: make the output's parent a regular file instead (ENOTDIR)
                (d / "out").write_text("a file where the output folder should be")
            else:
                (d / "out").mkdir(exist_ok=True)
                os.chmod(d / "out", 0o555)
            return argv
        cases.append(Case(cmd, ("read-only-output" if not IS_ROOT else "output-under-a-file") + suffix, readonly, "error", "",
                          timeout=300, fixed="an unwritable output folder (OSError) ended in a traceback"))
    return cases


def all_cases(long: bool = False) -> list[Case]:
    return (image_cases(long) + checkpoint_cases() + config_cases() + size_cases() + artifact_cases(long)
            + bundle_cases() + run_cases() + disk_cases())


# --- assets ------------------------------------------------------------------------------------------------
