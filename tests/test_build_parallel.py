"""`anyir build` with its artifacts in worker processes (mobile/variants.py): the same bundle as a build in one
process, and Ctrl-C leaves neither a bundle nor a worker behind. Tiny preset at 32x32 tiles, one task."""
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from mobile.bundle import BuildConfig, build, verify_bundle

ROOT = Path(__file__).resolve().parents[1]
PRECISIONS = {"tflite": ["fp32"], "executorch": ["fp32", "int8"]}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from anyir_core import save_checkpoint
    from conftest import random_model
    d = tmp_path_factory.mktemp("parallel")
    ck = d / "tiny.safetensors"
    save_checkpoint(random_model(scale=0.05), ck, "anyir-tiny")
    (d / "build.json").write_text(json.dumps({"tasks": ["noise25"], "precisions": PRECISIONS,
                                              "qat": {"steps": 2, "calibration": 1}}))
    return d, ck


def cli(d: Path, ck: Path, out: Path, *extra, mark: str = "") -> list:
    return [sys.executable, "-m", "mobile.cli", "build", "--config", str(d / "build.json"), "--checkpoint", str(ck),
            "--size", "32", "--overlap", "8", "--backends", "tflite,executorch", "--repeats", "1", "--out", str(out),
            "--no-cache", *extra]


def env(mark: str = "") -> dict:
    e = {**os.environ, "PYTHONPATH": str(ROOT), "ANYIR_TEST_MARK": mark}
    e.pop("ANYIR_BUILD_JOBS", None)
    return e


def marked(mark: str) -> list[int]:
    """Live processes whose environment carries the mark (the build and its workers)."""
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if f"ANYIR_TEST_MARK={mark}".encode() in (p / "environ").read_bytes().split(b"\0"):
                    pids.append(int(p.name))
            except OSError:
                pass
    return pids


def test_workers_build_the_bundle_one_process_builds(tiny, tmp_path):
    d, ck = tiny
    r = subprocess.run(cli(d, ck, tmp_path / "pool", "--jobs", "2"), cwd=ROOT, env=env(), capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    pool = json.loads(next((tmp_path / "pool").glob("*/manifest.json")).read_text())
    assert pool["build"]["workers"]["workers"] == 2, pool["build"]
    verify_bundle(next((tmp_path / "pool").iterdir()))
    # every stage of every artifact ran (in a worker) and is in the record; its line reached the log
    names = {s["stage"] for s in pool["build"]["stages"]}
    for a in ("tflite-fp32-nhwc", "executorch-fp32", "executorch-int8"):
        assert {f"export {a}", f"verify {a}", f"restore held-out photos {a}"} <= names, names
        assert f"] export {a}:" in r.stderr
    opts = json.loads((d / "build.json").read_text())
    one = json.loads((build(BuildConfig(checkpoint=str(ck), backends=["tflite", "executorch"], size=[32, 32], overlap=8,
                                        repeats=1, out=str(tmp_path / "one"), cache=False, jobs=1, **opts),
                            quiet=True) / "manifest.json").read_text())
    assert one["build"]["workers"] is None
    by_id = {a["id"]: a for a in one["artifacts"]}
    assert set(by_id) == {a["id"] for a in pool["artifacts"]} == {"tflite-fp32-nhwc", "executorch-fp32", "executorch-int8"}
    for a in pool["artifacts"]:
        b = by_id[a["id"]]
        if a["precision"] != "int8":  # float exports are deterministic: the same bytes from a worker
            assert a["sha256"] == b["sha256"], a["id"]
        assert a["numerics"]["passed"] == b["numerics"]["passed"], a["id"]
        assert a["quality"]["photos"] and b["quality"]["photos"]
    assert [x["id"] for x in pool["artifacts"]] == [x["id"] for x in one["artifacts"]]  # the planned order


def test_ctrl_c_stops_the_workers_and_leaves_no_bundle(tiny, tmp_path):
    d, ck = tiny
    mark = uuid.uuid4().hex
    out = tmp_path / "dist"
    p = subprocess.Popen(cli(d, ck, out, "--jobs", "2"), cwd=ROOT, env=env(mark), stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and len(marked(mark)) < 3:  # the build and its two workers
        time.sleep(0.5)
    assert len(marked(mark)) >= 3, "the workers never started"
    time.sleep(5)  # into the workers' exports
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "interrupted" in err, (p.returncode, err[-2000:])
    assert "Traceback" not in err
    for _ in range(20):  # the pool is terminated before the build exits; give the kernel a moment to reap
        if not marked(mark):
            break
        time.sleep(0.5)
    assert not marked(mark), "worker processes outlived the build"
    assert not (out.exists() and any(out.iterdir())), list(out.iterdir())
