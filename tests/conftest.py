import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch

# the tiny model's quantization run: small patches for calibration and fine-tuning alike, two tasks, one thread
TINY_QAT = dict(steps=4, calibration=2, patch=32, batch=2, calibration_patch=32, calibration_batch=2,
                tasks=["noise25", "rain"], threads=1)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))
# pytest-xdist runs one worker per core (pyproject addopts): one torch thread each; a plain run takes 2
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // _WORKERS)))
os.environ["ANYIR_CACHE_DIR"] = tempfile.mkdtemp(prefix="anyir-test-cache-")  # builds never reuse a cache across runs
os.environ["ANYIR_BUILD_JOBS"] = "1"  # builds in-process (patchable, no pool start-up); tests/test_build_parallel.py uses the pool


def randomize(model: torch.nn.Module, seed: int = 0, scale: float = 0.2) -> torch.nn.Module:
    """Perturb every parameter and BatchNorm statistic so that folds and blocks are actually exercised
    (at init, LayerNorm/BatchNorm are identities and lam/tau/temperature are round numbers)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 1.5 + 0.5)
    return model.eval()


def random_model(preset: str = "anyir-tiny", seed: int = 0, scale: float = 0.2, **overrides) -> torch.nn.Module:
    """`create_model` + `randomize`, both from `seed`: the same weights in every run and worker (the default
    initialisation draws from torch's global generator, so without this each run tested another model)."""
    from anyir_core import create_model
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return randomize(create_model(preset, **overrides), seed=seed, scale=scale)


@pytest.fixture
def tiny():
    return random_model()


@pytest.fixture(scope="session")
def tiny_qat(tmp_path_factory):
    """A tiny random checkpoint and a 4-step QAT state of it, shared by the backend tests that convert int8
    (each module exports its own artifacts from them)."""
    from anyir_core import save_checkpoint
    from conversion.quantize import QuantConfig, quantize

    d = tmp_path_factory.mktemp("tiny-qat")
    ck = d / "tiny.safetensors"
    save_checkpoint(random_model(scale=0.05), ck, "anyir-tiny")
    quantize(str(ck), d / "qat", QuantConfig(**TINY_QAT), quiet=True)
    return ck, d / "qat"
