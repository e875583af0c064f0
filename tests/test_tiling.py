"""The tiled restoration reference the apps mirror: plan rules, blend, padding, the photo round trip."""
import numpy as np
import pytest
import torch
from PIL import Image

from anyir_core.errors import ImageError
from anyir_core.tiling import (TilePlan, axis_origins, pad_to_tile, ramp, read_photo, restore_tiled,
                               write_photo)


@pytest.mark.parametrize("length,tile,overlap", [(256, 256, 32), (257, 256, 32), (600, 256, 64), (4000, 256, 64),
                                                 (451, 64, 16), (97, 64, 0)])
def test_plan_covers_the_axis_with_at_least_the_overlap(length, tile, overlap):
    ys = axis_origins(length, tile, overlap)
    assert ys[0] == 0 and ys[-1] == length - tile
    assert all(b - a <= tile - overlap for a, b in zip(ys, ys[1:]))  # neighbours overlap >= overlap
    assert all(b > a for a, b in zip(ys, ys[1:]))
    # no more tiles than needed: one fewer could not cover with that overlap
    n = len(ys)
    assert n == 1 or (n - 2) * (tile - overlap) + tile < length


def test_ramp_is_positive_symmetric_and_partitions_unity_across_an_exact_overlap():
    w = ramp(64, 16)
    assert (w > 0).all() and np.allclose(w, w[::-1]) and w[16:48].min() == 1.0
    # sin^2 + cos^2: two neighbours overlapping by exactly `overlap` sum to one there
    assert np.allclose(w[48:] + w[:16], 1.0, atol=1e-6)


def test_identity_model_restores_the_image_exactly_at_any_size():
    rng = np.random.default_rng(0)
    for h, w in [(37, 29), (64, 64), (65, 200), (300, 451), (1, 5)]:
        img = rng.random((h, w, 3), dtype=np.float32)
        out = restore_tiled(img, lambda x: x.copy(), (64, 64), overlap=16)
        assert out.shape == img.shape
        assert np.abs(out - img).max() < 1e-6


def test_blend_hides_seams_of_a_per_tile_offset():
    # a model that adds a different constant per tile: the blend must make the transitions gradual
    img = np.full((64, 200, 3), 0.5, np.float32)
    calls = []

    def run(x):
        calls.append(1)
        return x + 0.05 * len(calls)
    out = restore_tiled(img, run, (64, 64), overlap=16)
    step = np.abs(np.diff(out[32, :, 0])).max()
    assert step < 0.02 and len(calls) == len(TilePlan(64, 200, 64, 64, 16))


def test_padding_is_reflect_at_bottom_right():
    img = np.arange(3 * 2 * 3, dtype=np.float32).reshape(3, 2, 3)
    plan = TilePlan(3, 2, 16, 16, 4)
    p = pad_to_tile(img, plan)
    assert p.shape == (16, 16, 3)
    assert np.array_equal(p[:3, :2], img) and np.array_equal(p[3, :2], img[1])  # mirror without the edge row


def test_bad_tiling_arguments():
    with pytest.raises(ImageError, match="overlap"):
        TilePlan(100, 100, 64, 64, 32)
    with pytest.raises(ImageError, match="HxWx3"):
        restore_tiled(np.zeros((10, 10), np.float32), lambda x: x, (64, 64), 8)
    with pytest.raises(ImageError, match="returned"):
        restore_tiled(np.zeros((10, 10, 3), np.float32), lambda x: x[:, :, :8], (64, 64), 8)


def test_tiled_default_model_stays_within_40db_of_the_whole_image_on_noise():
    # per-image statistics make tiled and whole-image output differ; on noise the default plan keeps
    # them >= 40 dB apart (benchmarks/bench_tiling.py measures every task; haze is the exception)
    from anyir_core import load_checkpoint
    from anyir_core.data import load_builtin, task_seed
    from anyir_core.degrade import degrade
    from anyir_core.metrics import psnr, psnr_float
    from anyir_core.tiling import DEFAULT_OVERLAP
    model = load_checkpoint("default")
    clean = load_builtin("chelsea")
    img = degrade(clean, "noise25", seed=task_seed("chelsea", "noise25"))

    @torch.no_grad()
    def run(x):
        return model(torch.from_numpy(x)).numpy()
    whole = np.clip(run(np.ascontiguousarray(img.transpose(2, 0, 1)[None]))[0].transpose(1, 2, 0), 0, 1)
    tiled = restore_tiled(img, run, (256, 256), overlap=DEFAULT_OVERLAP)
    assert psnr_float(tiled, whole) >= 40.0
    assert abs(psnr(tiled, clean) - psnr(whole, clean)) < 0.2


def _roundtrip(tmp_path, im: Image.Image, name: str):
    p = tmp_path / name
    im.save(p)
    photo = read_photo(p)
    out = tmp_path / f"out-{name.rsplit('.', 1)[0]}.png"
    write_photo(out, photo.rgb, photo)
    return photo, Image.open(out)


def test_photo_round_trip_keeps_mode_alpha_and_bit_depth(tmp_path):
    rng = np.random.default_rng(1)
    rgba = rng.integers(0, 256, (20, 30, 4), dtype=np.uint8)
    photo, back = _roundtrip(tmp_path, Image.fromarray(rgba, "RGBA"), "a.png")
    assert photo.alpha is not None and back.mode == "RGBA"
    assert np.array_equal(np.asarray(back)[..., 3], rgba[..., 3])  # alpha untouched
    assert np.array_equal(np.asarray(back)[..., :3], rgba[..., :3])  # identity restore is lossless

    gray = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    photo, back = _roundtrip(tmp_path, Image.fromarray(gray, "L"), "g.png")
    assert photo.gray and back.mode == "L" and np.array_equal(np.asarray(back), gray)

    g16 = rng.integers(0, 65536, (20, 30), dtype=np.uint16)
    photo, back = _roundtrip(tmp_path, Image.fromarray(g16), "g16.png")
    assert photo.bits == 16 and photo.rgb.shape == (20, 30, 3)
    assert np.abs(np.asarray(back).astype(np.int64) - g16).max() <= 1  # 16 bits survive, not 8


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((10, 20, 3), np.uint8)
    arr[:, :5] = 255  # white band on the left
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    p = tmp_path / "rot.jpg"
    im.save(p, exif=exif, quality=100)
    photo = read_photo(p)
    assert photo.rgb.shape[:2] == (20, 10)  # displayed upright: portrait
    assert photo.rgb[:5].mean() > 0.9 and photo.rgb[-5:].mean() < 0.1  # band now on top


def test_unreadable_photo_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(ImageError, match="unreadable"):
        read_photo(bad)
    with pytest.raises(ImageError, match="no such"):
        read_photo(tmp_path / "missing.png")


# --- properties over every size and overlap (Hypothesis) ------------------------------------------------

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402


def _axis_weight_sum(length: int, tile: int, overlap: int) -> np.ndarray:
    """Summed blend weight along one axis of a padded length (the 2-D sum is the outer product of these)."""
    total = np.zeros(length, dtype=np.float64)
    for o in axis_origins(length, tile, overlap):
        total[o:o + tile] += ramp(tile, overlap)
    return total


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=st.integers(1, 3000), w=st.integers(1, 4000), tile=st.sampled_from([16, 64, 256, 512]), data=st.data())
def test_any_size_and_overlap_is_covered_and_normalised(h, w, tile, data):
    """From 1x1 to 12 MP, with any allowed overlap: tiles stay inside the padded photo and cover every pixel,
    every pixel's weights are positive (so normalised weights sum to one), and the output is the input's size."""
    overlap = data.draw(st.integers(0, tile // 2 - 1))
    plan = TilePlan(h, w, tile, tile, overlap)
    ph, pw = plan.padded
    assert (ph, pw) == (max(h, tile), max(w, tile))
    for length, origins in ((ph, plan.ys), (pw, plan.xs)):
        assert origins[0] == 0 and origins[-1] + tile == length and origins == sorted(set(origins))
        s = _axis_weight_sum(length, tile, overlap)
        assert s.min() > 0  # covered, and the weighted sum can be normalised everywhere
    assert len(plan) == len(plan.ys) * len(plan.xs)


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 150), w=st.integers(1, 150), overlap=st.integers(0, 15), seed=st.integers(0, 2**16))
def test_tiled_identity_restores_the_photo_exactly(h, w, overlap, seed):
    """An identity model through the whole tiled path gives the photo back at its own size: the normalised
    blend weights sum to one at every pixel (to float32 rounding)."""
    img = np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)
    out = restore_tiled(img, lambda x: x.copy(), (32, 32), overlap)
    assert out.shape == img.shape and np.abs(out - img).max() < 2e-6
