"""The shipped default checkpoint restores held-out photos (the numbers in its model card)."""
import pytest

from anyir_core import AnyIR, load_checkpoint
from anyir_core.evaluate import evaluate

TASKS = ["noise15", "noise25", "noise50", "rain", "haze"]


@pytest.fixture(scope="module")
def model():
    m = load_checkpoint("default")
    assert isinstance(m, AnyIR) and not m.training and m.preset == "anyir-mobile"
    return m


@pytest.fixture(scope="module")
def report(model):
    return evaluate(model, TASKS, data="builtin:heldout", baselines=False, quiet=True)


@pytest.fixture(scope="module")
def sigma25(model):
    """The classical baselines only where a target names them (they take minutes on whole photos)."""
    return evaluate(model, ["noise25"], data="builtin:heldout", baselines=True, quiet=True)


@pytest.mark.parametrize("task", TASKS)
def test_beats_the_degraded_input(report, task):
    t = report["per_task"][task]
    assert t["n"] == 3
    assert t["anyir"]["psnr"] > t["input"]["psnr"] + 0.5
    assert t["anyir"]["ssim"] > t["input"]["ssim"]


@pytest.mark.xfail(strict=True, reason="open target of issue 3: the default is 0.81 dB above scikit-image's "
                   "non-local means at sigma 25 on the held-out photos, not 1 dB (the dark green 'flower' photo "
                   "stays 0.57 dB below it); see anyir_core/weights/MODEL_CARD.md. Strict: remove this mark once "
                   "a better default passes.")
def test_beats_best_classical_denoiser_by_1db_at_sigma25(sigma25):
    t = sigma25["per_task"]["noise25"]
    best = max(t[m]["psnr"] for m in ("nl_means", "wavelet", "tv"))
    assert t["anyir"]["psnr"] >= best + 1.0, (t["anyir"]["psnr"], best)
