"""The build cache (mobile/cache.py) through real `anyir build`s of the tiny preset at 32x32 tiles: a hit skips
the stage (its exporter, verifier or photo restorer is patched to raise), a changed setting reruns exactly the
stages that read it, a corrupt entry is said, dropped and rebuilt, an interrupted build leaves the cache
whole; and the per-platform ranking behind the host default.

One real export is shared by the module (tflite fp32, about a minute on 2 cores); the interrupted build and
the build after it add one Core ML fp16 export."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from anyir_core import AnyIRError
from mobile.bundle import BuildConfig, build, host_default, rankings, schema_errors
from mobile.cache import BuildCache, _check


ROOT = Path(__file__).resolve().parents[1]
UNCACHED = {"check the checkpoint", "host latency, side by side", "report and model card"}


def config(ck, out, cache_dir, **kw) -> BuildConfig:
    opts = dict(checkpoint=str(ck), backends=["tflite"], precisions=["fp32"], size=[32, 32], overlap=8,
                tasks=["noise25"], out=str(out), repeats=1, cache_dir=str(cache_dir), force=True)
    return BuildConfig(**{**opts, **kw})


def manifest(dest: Path) -> dict:
    return json.loads((dest / "manifest.json").read_text())


def stages(m: dict) -> dict:
    return {s["stage"]: s for s in m["build"]["stages"]}


def cached(m: dict) -> set:
    return {s["stage"] for s in m["build"]["stages"] if s.get("cached")}


@pytest.fixture(scope="module")
def cold(tmp_path_factory):
    """A cold build into an empty cache; tests copy the cache before they change it."""
    from anyir_core import save_checkpoint
    from conftest import random_model
    d = tmp_path_factory.mktemp("cache-cold")
    ck = d / "tiny.safetensors"
    save_checkpoint(random_model(scale=0.05), ck, "anyir-tiny")
    cfg = config(ck, d / "dist", d / "cache")
    dest = build(cfg, quiet=True)
    return ck, d / "cache", manifest(dest)


@pytest.fixture
def cache_copy(cold, tmp_path):
    ck, cache, m = cold
    shutil.copytree(cache, tmp_path / "cache")
    return ck, tmp_path / "cache", m


class Calls:
    """Patches a stage's worker: counts calls, and raises when the test says the cache must supply it."""

    def __init__(self, monkeypatch):
        import conversion.coreml_backend
        import conversion.tflite_backend
        import conversion.verify
        import mobile.measure
        import mobile.report
        self.n = {}
        self.forbid = set()
        targets = {"export tflite": (conversion.tflite_backend.TFLiteBackend, "export"),
                   "export coreml": (conversion.coreml_backend.CoreMLBackend, "export"),
                   "verify": (conversion.verify, "verify"), "photos": (mobile.measure, "photo_quality"),
                   "before_after": (mobile.report, "before_after")}
        for name, (owner, attr) in targets.items():
            monkeypatch.setattr(owner, attr, self._wrap(name, getattr(owner, attr)))

    def _wrap(self, name, fn):
        def wrapper(*args, **kwargs):
            self.n[name] = self.n.get(name, 0) + 1
            if name in self.forbid:
                raise AssertionError(f"{name} ran although the cache holds it")
            return fn(*args, **kwargs)
        return wrapper


def test_cold_build_fills_the_cache_and_a_warm_one_runs_none_of_its_stages(cold, cache_copy, tmp_path, monkeypatch):
    ck, cache, m0 = cache_copy
    assert schema_errors(m0) == [] and m0["build"]["cache"] == {"enabled": True, "hits": 0, "problems": []}
    assert not cached(m0) and {"export tflite-fp32-nhwc", "verify tflite-fp32-nhwc"} <= set(stages(m0))
    calls = Calls(monkeypatch)
    calls.forbid = {"export tflite", "verify", "photos", "before_after"}
    m1 = manifest(build(config(ck, tmp_path / "dist", cache), quiet=True))
    assert schema_errors(m1) == []
    assert cached(m1) == set(stages(m1)) - UNCACHED, m1["build"]["stages"]
    assert m1["build"]["cache"]["hits"] == len(cached(m1)) == 5
    a0, a1 = m0["artifacts"][0], m1["artifacts"][0]
    assert a1["sha256"] == a0["sha256"] and a1["numerics"] == a0["numerics"] and a1["quality"] == a0["quality"]
    assert m1["files"]["report/before_after.jpg"] == m0["files"]["report/before_after.jpg"]
    assert {k: v for k, v in m1["files"].items() if k.startswith("testvectors/")} == \
        {k: v for k, v in m0["files"].items() if k.startswith("testvectors/")}
    # the stages that are measurements of this run still ran
    assert stages(m1)["host latency, side by side"]["note"].startswith("measured in this build")
    assert m1["host_latency"]["artifacts"]["tflite-fp32-nhwc"]["host_ms_median"] > 0
    # a hit is a copy and a checksum: far below what the stage took cold
    s0, s1 = stages(m0), stages(m1)
    assert s1["verify tflite-fp32-nhwc"]["seconds"] < s0["verify tflite-fp32-nhwc"]["seconds"]
    assert s1["restore held-out photos tflite-fp32-nhwc"]["seconds"] < s0["restore held-out photos tflite-fp32-nhwc"]["seconds"]
    # --no-cache runs the export although the cache holds it (refused here, so the build stops there) and
    # leaves the cache as it was
    before = sorted(p.relative_to(cache) for p in cache.rglob("*"))
    calls.forbid = {"export tflite"}
    with pytest.raises(AnyIRError, match="no artifact was built.*ran although"):
        build(config(ck, tmp_path / "dist", cache, cache=False), quiet=True)
    assert calls.n == {"export tflite": 1}
    assert sorted(p.relative_to(cache) for p in cache.rglob("*")) == before


def test_a_changed_setting_reruns_exactly_the_stages_that_read_it(cache_copy, tmp_path, monkeypatch):
    ck, cache, m0 = cache_copy
    calls = Calls(monkeypatch)
    calls.forbid = {"export tflite", "verify"}
    # the overlap is read by the whole-photo restore, the before/after images and the test vectors only
    m = manifest(build(config(ck, tmp_path / "dist", cache, overlap=4), quiet=True))
    assert cached(m) == {"export tflite-fp32-nhwc", "verify tflite-fp32-nhwc"}
    assert calls.n == {"photos": 1, "before_after": 1}
    # the tasks: verification, photos and images; the artifact is the same file
    calls.n.clear()
    calls.forbid = {"export tflite"}
    m = manifest(build(config(ck, tmp_path / "dist", cache, tasks=["rain"]), quiet=True))
    assert cached(m) == {"export tflite-fp32-nhwc", "test vectors"}
    assert calls.n == {"verify": 1, "photos": 1, "before_after": 1}
    assert set(m["artifacts"][0]["quality"]["tiles"]) == {"rain"}
    # back to the first settings: every entry is still there
    calls.n.clear()
    calls.forbid = {"export tflite", "verify", "photos", "before_after"}
    m = manifest(build(config(ck, tmp_path / "dist", cache), quiet=True))
    assert cached(m) == set(stages(m)) - UNCACHED and calls.n == {}


def test_qat_is_keyed_by_its_recipe_and_int8_exports_by_the_state_it_made(cache_copy, tmp_path, monkeypatch):
    """QAT stands in as a state whose learned tensor depends on the step count (a real QAT here takes
    minutes); the int8 export is refused after its cache lookup, so the keys it looked up are compared."""
    import torch
    from safetensors.torch import save_file

    import conversion.quantize as q
    import conversion.tflite_backend
    from conversion.base import file_sha256
    from mobile.cache import BuildCache as Cache
    ck, cache, _ = cache_copy
    runs = []

    def fake_quantize(checkpoint, out, cfg, preset=None, quiet=False, **kw):
        runs.append(cfg.steps)
        Path(out).mkdir(parents=True)
        info = {"mode": "qat", "scheme": q.scheme_name(cfg.float_levels), "preset": preset, "checkpoint": str(checkpoint),
                "checkpoint_sha256": file_sha256(ck), "recipe": q.asdict(cfg), "steps": cfg.steps}
        (Path(out) / q.INFO_FILE).write_text(json.dumps(info))
        save_file({"w": torch.full((4,), float(cfg.steps))}, str(Path(out) / q.STATE_FILE))
        return Path(out)

    def no_int8(self, source, spec, precision, out_file):
        raise q.AnyIRError("int8 export left out of this test")

    looked_up = []
    real_get = Cache.get
    monkeypatch.setattr(Cache, "get", lambda self, kind, key: looked_up.append((kind, key)) or real_get(self, kind, key))
    monkeypatch.setattr(q, "quantize", fake_quantize)
    monkeypatch.setattr(conversion.tflite_backend.TFLiteBackend, "export", no_int8)
    calls = Calls(monkeypatch)
    calls.forbid = {"verify", "photos"}  # only fp32 gets that far, and its stages are all cached

    def run(steps):
        looked_up.clear()
        m = manifest(build(config(ck, tmp_path / "dist", cache, precisions=["fp32", "int8"],
                                  qat={**q.asdict(q.QuantConfig()), "steps": steps, "tasks": ["noise25"]}),
                           quiet=True))
        exports = [key for kind, key in looked_up if kind == "export"]
        return m, exports

    m1, (fp32_a, int8_a) = run(1)
    assert runs == [1] and not stages(m1)["quantize (QAT)"]["cached"]
    assert [f["stage"] for f in m1["failed"]] == ["export"] and m1["quantization"]["steps"] == 1
    assert stages(m1)["export tflite-fp32-nhwc"]["cached"]
    m2, (fp32_b, int8_b) = run(1)
    assert runs == [1] and stages(m2)["quantize (QAT)"]["cached"] and int8_b == int8_a
    m3, (fp32_c, int8_c) = run(2)  # --qat-steps: QAT again, every int8 artifact anew, fp32 untouched
    assert runs == [1, 2] and not stages(m3)["quantize (QAT)"]["cached"]
    assert int8_c != int8_a and fp32_a == fp32_b == fp32_c and stages(m3)["export tflite-fp32-nhwc"]["cached"]
    assert m3["quantization"]["sha256"] != m1["quantization"]["sha256"]


def test_corrupt_entries_are_said_and_rebuilt(cache_copy, tmp_path, monkeypatch, capsys):
    ck, cache, m0 = cache_copy
    jpg = next(cache.glob("before_after/*/files/before_after.jpg"))
    jpg.write_bytes(jpg.read_bytes()[: jpg.stat().st_size // 2])  # truncated
    verify_entry = next(cache.glob("verify/*/entry.json"))
    verify_entry.write_text(verify_entry.read_text()[:-40])  # a bad JSON
    photos_entry = next(cache.glob("photos/*/entry.json"))
    e = json.loads(photos_entry.read_text())
    e["data"]["rows"][0]["gain"] += 1.0  # valid JSON, changed result: its checksum no longer matches
    photos_entry.write_text(json.dumps(e))
    calls = Calls(monkeypatch)
    calls.forbid = {"export tflite"}
    m = manifest(build(config(ck, tmp_path / "dist", cache), quiet=False, tty=False))
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("cache:")]
    assert len(said) == 3 and all("corrupt" in line and "rebuilding" in line for line in said), said
    assert any("truncated" in line for line in said) and any("bad JSON" in line for line in said)
    assert any("checksum mismatch" in line for line in said)
    assert m["build"]["cache"]["problems"] == said
    assert cached(m) == {"export tflite-fp32-nhwc", "test vectors"}
    assert calls.n == {"verify": 1, "photos": 1, "before_after": 1}
    assert m["artifacts"][0]["quality"] == m0["artifacts"][0]["quality"]  # rebuilt, not the tampered copy
    assert m["files"]["report/before_after.jpg"] == m0["files"]["report/before_after.jpg"]
    calls.n.clear()
    calls.forbid = {"export tflite", "verify", "photos", "before_after"}
    m = manifest(build(config(ck, tmp_path / "dist", cache), quiet=True))  # the rebuilt entries were stored
    assert cached(m) == set(stages(m)) - UNCACHED and not m["build"]["cache"]["problems"]


def test_an_interrupted_store_leaves_no_entry(tmp_path, monkeypatch):
    cache = BuildCache(tmp_path / "c")
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"a" * 1000)
    b.write_bytes(b"b" * 1000)
    real = shutil.copy2

    def copy_then_stop(src, dst, **kw):
        if Path(src) == b:
            raise KeyboardInterrupt
        return real(src, dst, **kw)
    monkeypatch.setattr(shutil, "copy2", copy_then_stop)
    with pytest.raises(KeyboardInterrupt):
        cache.put("export", "k" * 64, {"x": 1}, {"a.bin": a, "b.bin": b})
    monkeypatch.setattr(shutil, "copy2", real)
    assert cache.get("export", "k" * 64) is None and not cache.problems
    assert not any((tmp_path / "c" / ".tmp").iterdir())
    cache.put("export", "k" * 64, {"x": 1}, {"a.bin": a, "b.bin": b})
    hit = cache.get("export", "k" * 64)
    assert hit.data == {"x": 1} and hit.file("b.bin").read_bytes() == b"b" * 1000
    # a temp folder of a build that was killed (its process is gone) is swept by the next one
    stale = tmp_path / "c" / ".tmp" / "999999999-dead"
    stale.mkdir()
    BuildCache(tmp_path / "c")
    assert not stale.exists()


def test_sigterm_during_an_export_leaves_the_cache_whole(cache_copy, tmp_path, monkeypatch):
    """tflite comes from the cache; Core ML's export is under way when SIGTERM lands. The next build
    finishes, takes tflite's stages from the cache and builds only the Core ML artifact."""
    ck, cache, _ = cache_copy
    out = tmp_path / "dist"
    precisions = {"tflite": ["fp32"], "coreml": ["fp16"]}
    (tmp_path / "build.json").write_text(json.dumps({"tasks": ["noise25"], "precisions": precisions}))
    def build_and_terminate(delay: float):
        p = subprocess.Popen([sys.executable, "-m", "mobile.cli", "build", "--config", tmp_path / "build.json",
                              "--checkpoint", ck, "--size", "32", "--overlap", "8", "--backends", "tflite,coreml",
                              "--repeats", "1", "--out", out, "--cache-dir", cache],
                             cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = []
        deadline = time.time() + 180
        for line in p.stderr:  # not a terminal: one line per finished stage
            lines.append(line)
            if "restore held-out photos tflite-fp32-nhwc" in line or time.time() > deadline:
                break
        time.sleep(delay)  # into Core ML's export (tens of seconds)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=120)
        return p.returncode, lines, "".join(lines) + err

    # (one CI run, on a loaded machine, saw the build end with 0 before the signal: then once more, signalled
    # sooner; a build that ignores SIGTERM fails both)
    for delay in (3, 0.5):
        rc, lines, err = build_and_terminate(delay)
        if not (rc == 0 and "report and model card" in err):
            break
        shutil.rmtree(out, ignore_errors=True)
    if not (rc == 130 and "interrupted" in err):
        pytest.fail(f"exit {rc} after SIGTERM at +{delay} s; its log:\n{err}")
    assert "\r" not in err and "Running MIL" not in err and "[START]" not in err  # no progress bars in a log
    assert "cpuinfo_utils" not in err and "Failed to load" not in err  # runtime chatter went to the log
    assert all("(from cache)" in line for line in lines if "tflite-fp32-nhwc:" in line)
    assert not (out.exists() and any(out.iterdir()))
    assert not any((cache / ".tmp").iterdir()) if (cache / ".tmp").exists() else True
    for entry in cache.glob("*/*"):
        if entry.parent.name != ".tmp":
            assert _check(entry) is None, entry
    assert not list(cache.glob("export/*/files/*.mlpackage"))  # the interrupted stage stored nothing
    calls = Calls(monkeypatch)
    calls.forbid = {"export tflite"}
    m = manifest(build(config(ck, out, cache, backends=["tflite", "coreml"], precisions=precisions), quiet=True))
    assert {a["id"] for a in m["artifacts"]} == {"tflite-fp32-nhwc", "coreml-fp16"}
    assert {"export tflite-fp32-nhwc", "verify tflite-fp32-nhwc", "restore held-out photos tflite-fp32-nhwc"} <= cached(m)
    assert calls.n.get("export coreml") == 1 and not stages(m)["export coreml-fp16"]["cached"]
    # Core ML is not timed on this host: never the host default, first on iOS only by the stated rule
    assert m["default_artifact"] == "tflite-fp32-nhwc" == m["ranking"]["host"][0]
    assert m["ranking"] == {"android": ["tflite-fp32-nhwc"], "ios": ["coreml-fp16"], "host": ["tflite-fp32-nhwc"]}


def _entry(id_, backend, precision, plats, ms, size, ok=True):
    return {"id": id_, "backend": backend, "precision": precision, "paths": {p: f"{p}/{id_}" for p in plats},
            "bytes": size, "status": "ok" if ok else "below-threshold", "latency": {"host_ms_median": ms}}


def test_rankings_per_platform_do_not_inherit_the_hosts_timing():
    entries = [_entry("executorch-fp32", "executorch", "fp32", ["android", "ios"], 10.0, 900),
               _entry("executorch-int8", "executorch", "int8", ["android", "ios"], 12.0, 300),
               _entry("tflite-int8-nhwc", "tflite", "int8", ["android"], 11.0, 250),
               _entry("tflite-fp32-nhwc", "tflite", "fp32", ["android"], 9.0, 950, ok=False),
               _entry("coreml-int8", "coreml", "int8", ["ios"], None, 320),
               _entry("coreml-fp16", "coreml", "fp16", ["ios"], None, 500)]
    r = rankings(entries)
    assert r["host"] == ["executorch-fp32", "tflite-int8-nhwc", "executorch-int8"]  # measured; failed and untimed out
    assert r["android"] == ["tflite-int8-nhwc", "executorch-int8", "executorch-fp32"]  # int8 first, then smaller
    assert r["ios"] == ["coreml-int8", "executorch-int8", "coreml-fp16", "executorch-fp32"]
    assert host_default(entries, r) == "executorch-fp32"
    nothing_passed = [dict(e, status="below-threshold") for e in entries]
    assert host_default(nothing_passed, rankings(nothing_passed)) == "tflite-fp32-nhwc"  # the fastest timed
    only_coreml = [e for e in entries if e["backend"] == "coreml"]
    assert host_default(only_coreml, rankings(only_coreml)) == "coreml-int8"


def test_a_stage_is_keyed_by_the_source_files_it_runs(tmp_path, monkeypatch):
    import mobile.cache as c
    files = {p.relative_to(c.ROOT).as_posix() for p in c.source_files("conversion.tflite_backend", "conversion.source")}
    assert {"conversion/tflite_backend.py", "conversion/quantize.py", "anyir_core/model.py"} <= files
    assert "conversion/executorch_backend.py" not in files and "mobile/bundle.py" not in files
    # a copy of the project: editing a file a stage imports changes its key, another file does not
    for pkg in c.PROJECT_PACKAGES:
        shutil.copytree(c.ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__", "schema"))
    monkeypatch.setattr(c, "ROOT", tmp_path)

    def key():
        c.source_files.cache_clear()
        c.source_hash.cache_clear()
        return c.stage_key("export", {"x": 1}, ("conversion.tflite_backend", "conversion.source"), ("numpy",))
    try:
        k0 = key()
        (tmp_path / "conversion/executorch_backend.py").write_text("# changed\n")
        assert key() == k0
        (tmp_path / "anyir_core/tiling.py").write_text("# changed\n")  # not imported by the export
        assert key() == k0
        with open(tmp_path / "conversion/quantize.py", "a") as f:
            f.write("\n# changed\n")
        assert key() != k0
    finally:  # the memo must not keep the copy's hashes for later builds in this process
        c.source_files.cache_clear()
        c.source_hash.cache_clear()
