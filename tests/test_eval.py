"""Metrics match the published definitions; `anyir eval` reports tables, JSON and a grid."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from anyir_core import save_checkpoint
from anyir_core.evaluate import evaluate, format_table
from anyir_core.metrics import psnr, psnr_float, ssim


def test_psnr_on_rounded_8bit():
    a = np.full((8, 8, 3), 100 / 255, np.float32)
    b = np.full((8, 8, 3), 110 / 255, np.float32)
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 100))
    assert psnr(a, a + 0.1 / 255) == math.inf  # rounds to the same 8-bit levels
    assert psnr_float(a, a + 0.1 / 255) < 100


def test_ssim_matches_gaussian_reference():
    from skimage.metrics import structural_similarity
    rng = np.random.default_rng(0)
    a = rng.random((48, 40, 3)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1).astype(np.float32)
    ref = structural_similarity(np.round(a * 255), np.round(b * 255), data_range=255, channel_axis=-1,
                                gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ssim(a, b) == pytest.approx(ref, abs=0.02)
    assert ssim(a, a) == pytest.approx(1.0)


def test_evaluate_reports_every_method(tiny, tmp_path):
    report = evaluate(tiny, ["noise25", "haze"], crop=48, grid=tmp_path / "grid.png", quiet=True)
    per = report["per_task"]
    assert per["noise25"]["n"] == 3 and set(per["noise25"]) >= {"input", "anyir", "nl_means", "wavelet", "tv"}
    assert "nl_means" not in per["haze"]
    for m in ("nl_means", "wavelet", "tv"):  # classical denoisers do help at sigma 25
        assert per["noise25"][m]["psnr"] > per["noise25"]["input"]["psnr"] + 1
    assert Image.open(tmp_path / "grid.png").size[0] > 4 * 256
    assert "noise25" in format_table(report)


def test_cli_eval_writes_json(tiny, tmp_path):
    ck = save_checkpoint(tiny, tmp_path / "t.safetensors", "anyir-tiny")
    r = subprocess.run([sys.executable, "-m", "mobile.cli", "eval", "--checkpoint", str(ck), "--tasks", "rain",
                        "--crop", "32", "--json", str(tmp_path / "r.json"), "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "rain" in r.stdout and json.loads((tmp_path / "r.json").read_text())["per_task"]["rain"]["n"] == 3
    r = subprocess.run([sys.executable, "-m", "mobile.cli", "eval", "--checkpoint", str(ck), "--data",
                        f"folder:{tmp_path / 'nothing'}", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 2 and "not a folder" in r.stderr
