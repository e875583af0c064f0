"""Degradations are deterministic, do what their names say, and compose."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from anyir_core import AnyIRError
from anyir_core.data import load_builtin
from anyir_core.degrade import TASKS, degrade, line_kernel, parse_tasks


@pytest.fixture(scope="module")
def photo():
    return load_builtin("chelsea")[:128, :160]


@pytest.mark.parametrize("task", [t for t in TASKS if t != "clean"])
def test_deterministic_and_seed_dependent(photo, task):
    a, b, c = degrade(photo, task, seed=1), degrade(photo, task, seed=1), degrade(photo, task, seed=2)
    assert a.shape == photo.shape and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert 0 <= a.min() and a.max() <= 1
    assert np.allclose(a * 255, np.round(a * 255), atol=1e-4)  # stored as 8-bit levels
    assert np.abs(a - photo).mean() > 0.005  # it changed the image


def test_clean_task_is_the_identity_on_8bit_images(photo):
    assert np.array_equal(degrade(photo, "clean", seed=1), photo)


@pytest.mark.parametrize("sigma", [15, 25, 50])
def test_noise_level_on_the_255_scale(sigma):
    flat = np.full((256, 256, 3), 0.5, np.float32)
    noisy = degrade(flat, f"noise{sigma}", seed=0)
    assert abs((noisy - 0.5).std() * 255 - sigma) < 0.05 * sigma


def test_haze_follows_scattering_model(photo):
    hazy = degrade(photo, "haze", seed=0)
    assert hazy.mean() > photo.mean()  # airlight brightens
    assert hazy.std() < photo.std()    # transmission < 1 flattens contrast
    # t is smaller (more haze) at the top, where the synthetic depth is larger
    top, bottom = slice(0, 20), slice(-20, None)
    assert np.abs(hazy[top] - photo[top]).mean() > np.abs(hazy[bottom] - photo[bottom]).mean()


def test_blur_smooths_and_lowlight_darkens(photo):
    grad = lambda im: np.abs(np.diff(im, axis=1)).mean()  # noqa: E731
    assert grad(degrade(photo, "blur", seed=0)) < 0.7 * grad(photo)
    assert degrade(photo, "lowlight", seed=0).mean() < 0.5 * photo.mean()


def test_rain_adds_bright_streaks(photo):
    rainy = degrade(photo, "rain", seed=0)
    assert (rainy - photo).mean() > 0 and ((rainy - photo) > 0.1).mean() > 0.01


def test_composite_applies_left_to_right(photo):
    both = degrade(photo, "haze+noise15", seed=4)
    assert not np.array_equal(both, degrade(photo, "haze", seed=4))
    assert parse_tasks("3task") == ["noise15", "noise25", "noise50", "rain", "haze"]
    with pytest.raises(AnyIRError, match="unknown degradation 'snow'"):
        parse_tasks("noise15,snow")


def test_line_kernel_is_normalised_and_oriented():
    k = line_kernel(9, 0)
    assert abs(k.sum() - 1) < 1e-6 and k.shape == (9, 9)
    assert k[4].sum() > 0.99  # horizontal line through the centre row


def test_cli_degrade_and_contact_sheet(tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray((load_builtin("coffee")[:96, :128] * 255).astype(np.uint8)).save(src)
    run = lambda *a: subprocess.run([sys.executable, "-m", "mobile.cli", "degrade", *a],  # noqa: E731
                                    capture_output=True, text=True)
    r = run(str(src), "--kind", "rain", "--out", str(tmp_path / "rain.png"))
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "rain.png").size == (128, 96)
    r = run(str(src), "--sheet", "--out", str(tmp_path / "sheet.png"))
    assert r.returncode == 0, r.stderr
    w, h = Image.open(tmp_path / "sheet.png").size
    assert w > 4 * 256 and h > 2 * 150  # 8 labelled panels, 4 per row
    r = run(str(src), "--kind", "snow", "--out", str(tmp_path / "x.png"))
    assert r.returncode == 2 and "unknown degradation" in r.stderr and "Traceback" not in r.stderr
