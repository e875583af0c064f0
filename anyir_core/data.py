"""Images in, training pairs out.

Sources: the real photos that installed packages carry (scikit-image, scikit-learn, matplotlib) with a
fixed train/held-out split; any folder of clean images (degraded on the fly); paired folders
(degraded/clean, matched by file name); and the directory layouts of the paper's benchmark sets.

Conversions, documented once: EXIF orientation is applied; grayscale becomes RGB by repeating the
channel; alpha is dropped (the colour channels are kept as stored, not composited); 16-bit
images are scaled by 1/65535; palette/CMYK images are converted to RGB.
"""
from __future__ import annotations

import importlib.util
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .degrade import _quantize8, degrade
from .errors import ImageError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}

# name -> (package, path inside the package, greyscale?)
BUILTIN_PHOTOS = {
    "astronaut": ("skimage", "data/astronaut.png"),
    "rocket": ("skimage", "data/rocket.jpg"),
    "motorcycle": ("skimage", "data/motorcycle_left.png"),
    "ihc": ("skimage", "data/ihc.png"),
    "camera": ("skimage", "data/camera.png"),
    "brick": ("skimage", "data/brick.png"),
    "grass": ("skimage", "data/grass.png"),
    "gravel": ("skimage", "data/gravel.png"),
    "moon": ("skimage", "data/moon.png"),
    "coins": ("skimage", "data/coins.png"),
    "page": ("skimage", "data/page.png"),
    "china": ("sklearn", "datasets/images/china.jpg"),
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    # held out: never seen in training, used by `anyir eval` and the numeric checks
    "chelsea": ("skimage", "data/chelsea.png"),
    "coffee": ("skimage", "data/coffee.png"),
    "flower": ("sklearn", "datasets/images/flower.jpg"),
}
HELDOUT = ("chelsea", "coffee", "flower")
TRAIN = tuple(n for n in BUILTIN_PHOTOS if n not in HELDOUT)


def builtin_photo_path(name: str) -> Path:
    if name not in BUILTIN_PHOTOS:
        raise ImageError(f"unknown built-in photo {name!r}; choose from {', '.join(BUILTIN_PHOTOS)}")
    package, rel = BUILTIN_PHOTOS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImageError(f"built-in photo {name!r} comes with the {package} package; pip install {package}")
    path = Path(list(spec.submodule_search_locations)[0]) / rel
    if not path.is_file():
        raise ImageError(f"built-in photo {name!r} not found at {path} (is {package} installed whole?)")
    return path


def to_float_rgb(im: Image.Image) -> np.ndarray:
    """A Pillow image as float32 HxWx3 RGB in [0, 1] (conversions as in the module docstring)."""
    im = ImageOps.exif_transpose(im)
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float32)
        scale = 65535.0 if arr.max() > 255 or im.mode.startswith("I;16") else 255.0
        arr = np.clip(arr / scale, 0, 1)
        return np.repeat(arr[..., None], 3, axis=2)
    if im.mode == "F":
        arr = np.clip(np.asarray(im, dtype=np.float32), 0, 1)
        return np.repeat(arr[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA").convert("RGB")
    elif im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.float32) / 255.0


@contextmanager
def opened_image(path: str | Path):
    """Image.open with one clear ImageError for a missing, unreadable or oversized file. Pillow only warns
    between MAX_IMAGE_PIXELS (89.5 MP) and twice that, and a photo that size costs gigabytes as float32: both
    are refused as the decompression bombs they usually are (a 400 MP PNG fits in 400 KB)."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                yield im
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{path}: over {Image.MAX_IMAGE_PIXELS:,} pixels (a decompression bomb?); "
                         "split it or scale it down first") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{path}: unreadable or truncated image ({str(e)[:100]})") from None


def read_with(path: str | Path, convert):
    """Open an image file and return `convert(pillow_image)`; one clear ImageError for anything unreadable."""
    with opened_image(path) as im:
        im.load()
        return convert(im)


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as float32 HxWx3 RGB in [0, 1]; one clear ImageError for anything unreadable."""
    arr = read_with(path, to_float_rgb)
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageError(f"{path}: empty image")
    return arr


def load_builtin(name: str) -> np.ndarray:
    return load_image(builtin_photo_path(name))


def save_image(path: str | Path, img: np.ndarray) -> None:
    """Write an 8-bit image through a temp file and a rename: a full disk leaves no half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        Image.fromarray((np.clip(img, 0, 1) * 255.0 + 0.5).astype(np.uint8)).save(
            tmp, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder}: not a folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ImageError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")
    return files


# --- sources ---------------------------------------------------------------------------------------

@dataclass
class Sample:
    """One training/eval image. `degraded` is None for clean-only sources (degraded on the fly)."""
    name: str
    clean: np.ndarray
    degraded: np.ndarray | None = None
    task: str | None = None


def builtin_samples(split: str = "train") -> list[Sample]:
    names = {"train": TRAIN, "heldout": HELDOUT, "all": tuple(BUILTIN_PHOTOS)}.get(split)
    if names is None:
        raise ImageError(f"unknown split {split!r}; use train, heldout or all")
    return [Sample(n, load_builtin(n)) for n in names]


def folder_samples(folder: str | Path) -> list[Sample]:
    return [Sample(p.stem, load_image(p)) for p in list_images(folder)]


def paired_samples(degraded_dir: str | Path, clean_dir: str | Path, task: str | None = None,
                   rename=None) -> list[Sample]:
    """Degraded/clean pairs matched by file name (after `rename`, a function of the degraded name)."""
    clean_by_name = {p.name: p for p in list_images(clean_dir)}
    clean_by_stem = {p.stem: p for p in clean_by_name.values()}
    out = []
    for p in list_images(degraded_dir):
        key = rename(p.name) if rename else p.name
        match = clean_by_name.get(key) or clean_by_stem.get(Path(key).stem)
        if match is None:
            raise ImageError(f"{p}: no clean image named {key!r} in {clean_dir}")
        deg, clean = load_image(p), load_image(match)
        if deg.shape != clean.shape:
            raise ImageError(f"{p}: size {deg.shape[:2]} differs from its clean image {clean.shape[:2]}")
        out.append(Sample(p.stem, clean, deg, task))
    return out


def _hazy_to_clean(name: str) -> str:  # RESIDE: 0025_0.8_0.1.jpg -> 0025.jpg
    return name.split("_")[0] + Path(name).suffix


def benchmark_samples(task: str, root: str | Path, split: str = "test") -> list[Sample]:
    """The paper's benchmark layouts (as the released training/testing scripts read them).

    train: Denoise/ (clean BSD400+WED; noise added on the fly), Derain/rainy/rain-*.png +
    Derain/gt/norain-*.png, Dehaze/synthetic/**/NNNN_*.jpg + Dehaze/original/NNNN.jpg,
    Deblur/blur + Deblur/sharp, Enhance/low + Enhance/gt.
    test: <set>/input + <set>/target (Rain100L, SOTS outdoor, GoPro, LOL); BSD68 is a clean folder.
    """
    root = Path(root)
    if task.startswith("noise"):
        return [Sample(s.name, s.clean, None, task) for s in folder_samples(root)]
    if split == "test":
        return paired_samples(root / "input", root / "target", task)
    layouts = {
        "rain": (root / "rainy", root / "gt", lambda n: "norain-" + n.split("rain-")[-1]),
        "haze": (root / "synthetic", root / "original", _hazy_to_clean),
        "blur": (root / "blur", root / "sharp", None),
        "lowlight": (root / "low", root / "gt", None),
    }
    if task not in layouts:
        raise ImageError(f"no benchmark layout for task {task!r}")
    deg, clean, rename = layouts[task]
    return paired_samples(deg, clean, task, rename)


# --- patch sampling --------------------------------------------------------------------------------

def _augment(arrays, k: int, flip: bool):
    out = []
    for a in arrays:
        a = np.rot90(a, k)
        out.append(np.ascontiguousarray(a[:, ::-1] if flip else a))
    return out


def _recolor(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Colour augmentation of a clean patch (before it is degraded): the channels in a random order and a
    random white balance (each channel scaled by 0.6-1, the strongest kept), so a scene's colour cast is
    never a cue for the degradation; 13 training photos, 7 of them grey, teach few colours otherwise."""
    gains = rng.uniform(0.6, 1.0, size=3).astype(np.float32)
    return _quantize8(clean[..., rng.permutation(3)] * (gains / gains.max()))


class PatchSampler:
    """Deterministic random patches: batch `step` is a pure function of (seed, step), so a resumed run
    sees exactly the batches an uninterrupted one would.

    Clean-only samples are degraded on the fly with a task drawn uniformly from `tasks`; paired
    samples keep their own degradation. Patches get a random 90-degree rotation and flip; with
    probability `darken` a darker exposure and with probability `color` a new colour balance.
    """

    def __init__(self, samples: list[Sample], tasks: list[str], patch: int, batch: int, seed: int = 0,
                 darken: float = 0.0, color: float = 0.0):
        usable = [s for s in samples if min(s.clean.shape[:2]) >= patch]
        skipped = [s.name for s in samples if min(s.clean.shape[:2]) < patch]
        if skipped:
            warnings.warn(f"skipping {len(skipped)} image(s) smaller than the {patch}px patch: {', '.join(skipped[:5])}")
        if not usable:
            raise ImageError(f"no training image is at least {patch}x{patch}; use a smaller --patch")
        if not tasks and any(s.degraded is None for s in usable):
            raise ImageError("clean-only images need at least one task to degrade them with")
        self.samples, self.tasks, self.patch, self.batch, self.seed = usable, list(tasks), patch, batch, seed
        self.darken, self.color = darken, color
        # weight by sqrt(area): big photos give more patches, small ones are not drowned out
        areas = np.sqrt([s.clean.shape[0] * s.clean.shape[1] for s in usable])
        self.weights = areas / areas.sum()

    def draw(self, step: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        rng = np.random.default_rng([self.seed, step])
        inputs, targets, tasks = [], [], []
        for _ in range(self.batch):
            s = self.samples[rng.choice(len(self.samples), p=self.weights)]
            h, w = s.clean.shape[:2]
            y, x = rng.integers(0, h - self.patch + 1), rng.integers(0, w - self.patch + 1)
            crop = (slice(y, y + self.patch), slice(x, x + self.patch))
            clean = s.clean[crop]
            if self.darken and s.degraded is None and rng.random() < self.darken:
                # exposure augmentation: the same scene shot darker (the target is the darker clean patch)
                clean = _quantize8(clean * rng.uniform(0.25, 0.9))
            if self.color and s.degraded is None and rng.random() < self.color:
                clean = _recolor(clean, rng)
            if s.degraded is not None:
                deg, task = s.degraded[crop], s.task or "paired"
            else:
                task = self.tasks[rng.integers(len(self.tasks))]
                deg = degrade(clean, task, seed=int(rng.integers(2**31)))
            deg, clean = _augment((deg, clean), int(rng.integers(4)), bool(rng.integers(2)))
            inputs.append(deg)
            targets.append(clean)
            tasks.append(task)
        to_t = lambda arrs: torch.from_numpy(np.stack(arrs).transpose(0, 3, 1, 2).copy())  # noqa: E731
        return to_t(inputs), to_t(targets), tasks


def task_seed(name: str, task: str, base: int = 0) -> int:
    """The fixed seed that degrades held-out image `name` for `task` (the same in every tool)."""
    return (zlib.crc32(f"{name}/{task}".encode()) + base) % (2**31)
