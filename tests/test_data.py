"""Image loading conversions, data sources and the patch sampler."""
import numpy as np
import pytest
from PIL import Image

from anyir_core import ImageError
from anyir_core.data import (HELDOUT, TRAIN, PatchSampler, Sample, benchmark_samples, builtin_samples,
                             folder_samples, load_image, paired_samples)


def _save(path, arr, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path) if mode else Image.fromarray(arr).save(path)
    return path


def test_builtin_split_is_fixed_and_disjoint():
    assert set(TRAIN).isdisjoint(HELDOUT) and len(HELDOUT) == 3 and len(TRAIN) >= 12
    held = builtin_samples("heldout")
    assert [s.name for s in held] == ["chelsea", "coffee", "flower"]
    assert all(s.clean.ndim == 3 and s.clean.shape[2] == 3 and s.clean.dtype == np.float32 for s in held)


def test_conversions(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    gray = rgb[..., 0].copy()
    img = load_image(_save(tmp_path / "g.png", gray))
    assert img.shape == (20, 30, 3) and np.allclose(img[..., 0], img[..., 2])
    rgba = np.dstack([rgb, np.full((20, 30), 7, np.uint8)])
    assert np.allclose(load_image(_save(tmp_path / "a.png", rgba)), rgb / 255.0)
    sixteen = (np.arange(600, dtype=np.uint16).reshape(20, 30) * 100)
    Image.fromarray(sixteen).save(tmp_path / "16.png")
    loaded = load_image(tmp_path / "16.png")
    assert abs(loaded[..., 0].max() - sixteen.max() / 65535) < 1e-4
    pal = Image.fromarray(rgb).convert("P")
    pal.save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").shape == (20, 30, 3)


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((10, 20, 3), np.uint8)
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    im.save(tmp_path / "o.jpg", exif=exif)
    assert load_image(tmp_path / "o.jpg").shape == (20, 10, 3)


def test_bad_images_get_clear_errors(tmp_path):
    good = _save(tmp_path / "ok.png", np.zeros((64, 64, 3), np.uint8))
    data = good.read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.png").write_text("hello")
    for name in ("trunc.png", "text.png", "missing.png"):
        with pytest.raises(ImageError, match=name):
            load_image(tmp_path / name)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="no images"):
        folder_samples(tmp_path / "empty")


def test_sampler_skips_tiny_images_and_is_deterministic(tmp_path):
    rng = np.random.default_rng(0)
    big = Sample("big", rng.random((80, 90, 3), dtype=np.float32))
    tiny = Sample("tiny", rng.random((10, 10, 3), dtype=np.float32))
    with pytest.warns(UserWarning, match="smaller than the 32px patch"):
        s = PatchSampler([big, tiny], ["noise25", "rain"], patch=32, batch=4, seed=3)
    a, b, tasks = s.draw(7)
    a2, b2, _ = s.draw(7)
    assert a.shape == (4, 3, 32, 32) and torch_equal(a, a2) and torch_equal(b, b2)
    assert not torch_equal(a, s.draw(8)[0])
    assert set(tasks) <= {"noise25", "rain"}
    with pytest.raises(ImageError, match="at least 32x32"):
        PatchSampler([tiny], ["noise25"], patch=32, batch=1)


def torch_equal(x, y):
    return bool((x == y).all())


def test_paired_and_benchmark_layouts(tmp_path):
    rng = np.random.default_rng(1)
    img = lambda: rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)  # noqa: E731
    root = tmp_path / "Derain"
    _save(root / "rainy" / "rain-12.png", img())
    _save(root / "gt" / "norain-12.png", img())
    (s,) = benchmark_samples("rain", root, split="train")
    assert s.degraded is not None and s.task == "rain"
    haze = tmp_path / "Dehaze"
    _save(haze / "synthetic" / "part1" / "0025_0.8_0.1.jpg", img())
    _save(haze / "original" / "0025.jpg", img())
    assert len(benchmark_samples("haze", haze, split="train")) == 1
    test = tmp_path / "Rain100L"
    _save(test / "input" / "1.png", img())
    _save(test / "target" / "1.png", img())
    assert len(benchmark_samples("rain", test)) == 1
    _save(test / "input" / "2.png", img())
    with pytest.raises(ImageError, match="no clean image named '2.png'"):
        paired_samples(test / "input", test / "target")
