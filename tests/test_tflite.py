"""The TFLite backend through the same protocol: fp32 in NCHW and NHWC, checked as a real .tflite run."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from anyir_core import create_model, save_checkpoint
from conversion.base import ArtifactError, InputSpec, get_backend, read_record, write_record
from conversion.source import ModelSource
from conversion.verify import verify

from conftest import randomize

TILE = 64


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("tfl")
    ck = d / "tiny.safetensors"
    save_checkpoint(randomize(create_model("anyir-tiny"), scale=0.05), ck, "anyir-tiny")
    be = get_backend("tflite")
    for layout in ("NCHW", "NHWC"):
        write_record(be.export(ModelSource(str(ck)), InputSpec(TILE, TILE, layout=layout), "fp32",
                               d / f"tiny-{layout}.tflite"), d)
    return d, ck


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_fp32_tflite_matches_eager(work, layout):
    d, _ = work
    rec = read_record(d / f"tiny-{layout}.tflite")
    assert rec.input.layout == layout and rec.tools["litert-torch"] == "0.10.0"
    assert rec.details["ops"]["CONV_2D"] > 50
    v = verify(d / f"tiny-{layout}.tflite", tasks=("noise25", "haze"))
    assert v["passed"] and v["numeric_psnr_min"] >= 60


def test_nhwc_artifact_takes_interleaved_pixels(work):
    d, _ = work
    art = read_record(d / "tiny-NHWC.tflite")
    runner = get_backend("tflite").load(art, d)
    x = np.random.default_rng(0).random((1, TILE, TILE, 3), dtype=np.float32)
    assert runner.run(x).shape == (1, TILE, TILE, 3)
    with pytest.raises(ArtifactError, match="exported for"):
        runner.run(np.zeros((1, 3, TILE, TILE), np.float32))


def test_open_precisions_and_corrupt_files_are_one_line_errors(work, tmp_path):
    d, ck = work
    r = subprocess.run([sys.executable, "-m", "mobile.cli", "export", "--backend", "tflite", "--precision", "int8",
                        "--checkpoint", str(ck), "--out", str(tmp_path)], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 2 and "not built yet" in r.stderr and "Traceback" not in r.stderr
    art = read_record(d / "tiny-NCHW.tflite")
    (tmp_path / "bad.tflite").write_bytes(b"TFL3" + b"\0" * 100)
    bad = type(art).from_dict({**art.to_dict(), "file": "bad.tflite", "sha256": ""})
    with pytest.raises(ArtifactError, match="not a loadable TFLite model"):
        get_backend("tflite").load(bad, tmp_path)
