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
PRECISIONS = {"tflite": ["fp32"], "executorch": ["int8"]}  # a float artifact beside QAT, an int8 one after it


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
    for a in ("tflite-fp32-nhwc", "executorch-int8"):
        assert {f"export {a}", f"verify {a}", f"restore held-out photos {a}"} <= names, names
        assert f"] export {a}:" in r.stderr
    opts = json.loads((d / "build.json").read_text())
    one = json.loads((build(BuildConfig(checkpoint=str(ck), backends=["tflite", "executorch"], size=[32, 32], overlap=8,
                                        repeats=1, out=str(tmp_path / "one"), cache=False, jobs=1, **opts),
                            quiet=True) / "manifest.json").read_text())
    assert one["build"]["workers"] is None
    by_id = {a["id"]: a for a in one["artifacts"]}
    assert set(by_id) == {a["id"] for a in pool["artifacts"]} == {"tflite-fp32-nhwc", "executorch-int8"}
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


class _Job:  # what Pool needs of a job: an id (the jobs of this test sleep and say when they ran)
    def __init__(self, id: str, seconds: float):
        self.id, self.seconds = id, seconds


def _sleep_job(job: _Job) -> dict:
    t0 = time.time()
    time.sleep(job.seconds)
    return {"id": job.id, "start": t0, "end": time.time(), "pid": os.getpid()}


def _drain(pool) -> dict:
    """Every job's result by id, then the pool closed (also when waiting fails)."""
    from mobile.variants import wait_all
    got = {}
    try:
        wait_all(pool, lambda r: got.setdefault(r["id"], r), poll=0.05)
    finally:
        pool.close()
    return got


def test_pool_queue_keeps_its_limit_puts_first_jobs_first_and_refills_on_its_own():
    """The build's schedule: one worker fewer while QAT trains here (set_limit), the int8 jobs ahead of the
    floats still queued (first=True), and a finished job's worker takes the next one while the build's
    process is busy (it does not call done() during QAT)."""
    from mobile.variants import Pool
    pool = Pool(2, 1, fn=_sleep_job)
    try:
        pool.set_limit(1)
        for name in ("f1", "f2", "f3"):
            pool.submit(_Job(name, 0.6))
        # "QAT": no done() calls; the workers start (spawn + import torch) and f1, f2, f3 run one by one
        t_end = time.time() + 180
        while (pool.queue or pool.active) and time.time() < t_end:
            time.sleep(0.1)
        assert not pool.queue and not pool.active, "the queue did not drain without done() calls"
        pool.submit(_Job("q1", 1.0), first=True)
        pool.set_limit(2)
    except BaseException:
        pool.close()
        raise
    got = _drain(pool)
    assert set(got) == {"f1", "f2", "f3", "q1"}
    runs = sorted(got.values(), key=lambda r: r["start"])
    early = [r for r in runs if r["id"] != "q1"]
    # limit 1: the float jobs ran one after another, never two at once, and without a done() call in between
    assert all(a["end"] <= b["start"] + 0.05 for a, b in zip(early, early[1:])), runs
    assert early[-1]["end"] < got["q1"]["start"], runs
    # queued first and with the limit at 2 again: q1 overlaps nothing only because nothing else is left
    pool2 = Pool(2, 1, fn=_sleep_job)
    pool2.set_limit(1)
    for name, seconds in (("a", 4.0), ("b", 0.5), ("c", 0.5)):
        pool2.submit(_Job(name, seconds))
    pool2.submit(_Job("z", 0.5), first=True)
    pool2.set_limit(2)
    got2 = _drain(pool2)
    order = [r["id"] for r in sorted(got2.values(), key=lambda r: r["start"])]
    assert order[:2] == ["z", "a"] or order[:2] == ["a", "z"], order  # z jumped the queue ahead of b and c
    assert got2["z"]["start"] < got2["b"]["start"] and got2["z"]["start"] < got2["c"]["start"], got2
    assert got2["a"]["start"] < got2["b"]["end"] and got2["b"]["start"] < got2["a"]["end"], "two at once after set_limit(2)"
