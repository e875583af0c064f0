"""The Android demo app (android_demo/app) checked without an Android SDK.

No Gradle, Android SDK or Maven repository is reachable from the project's machines, so the app has never been
compiled here. What can be checked is checked:
- every Kotlin source and Gradle script under android_demo/ parses (tree-sitter-kotlin), so a syntax slip shows
  here and not first in Android Studio;
- the version catalog pins the runtimes the project's converters record (executorch, ai-edge-litert) under the
  core's RuntimeCheck rule, and the app's BuildConfig fields are generated from those catalog entries;
- the app's plain-Kotlin part (android_demo/app/src/main/kotlin/ai/anyir/demo/bench: benchmark extras, the run
  loop, the profile-1 writer, checksums, atomic writes) has no Android import, is compiled together with the
  core by the Kotlin compiler from the kotlin-jupyter-kernel wheel, and is run on the JVM with a scripted
  clock; its result file is validated against mobile/schema/profile-1.schema.json and its numbers against
  mobile/profiling.py;
- every manifest field the Kotlin code reads is a field of manifest-1 (or of the TFLite record's details.io,
  which conversion/tflite_backend.py writes).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest

from kotlin_jvm import Compilation

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "android_demo"
APP = DEMO / "app"
PLAIN = APP / "src" / "main" / "kotlin" / "ai" / "anyir" / "demo" / "bench"
CORE_SOURCES = sorted((DEMO / "core" / "src" / "main" / "kotlin").rglob("*.kt"))
PLAIN_SOURCES = sorted(PLAIN.rglob("*.kt"))
CHECK_SOURCES = sorted((APP / "src" / "jvmCheck" / "kotlin").rglob("*.kt"))
MAIN_CLASS = "ai.anyir.demo.check.BenchmarkCheckKt"
TILE = 32


# --- sources parse -------------------------------------------------------------------------------------

def _kotlin_parser():
    import tree_sitter
    import tree_sitter_kotlin
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_kotlin.language()))


def _syntax_problems(tree, text: bytes, limit: int = 3) -> list[str]:
    out = []
    stack = [tree.root_node]
    while stack and len(out) < limit:
        n = stack.pop()
        if n.is_error or n.is_missing:
            line = text[: n.start_byte].count(b"\n") + 1
            what = "missing " + n.type if n.is_missing else "cannot parse"
            out.append(f"line {line}: {what}: {text[n.start_byte:n.end_byte][:60]!r}")
            continue
        if n.has_error:
            stack.extend(reversed(n.children))
    return out


def test_every_kotlin_source_and_gradle_script_parses():
    parser = _kotlin_parser()
    files = sorted(DEMO.rglob("*.kt")) + sorted(DEMO.rglob("*.kts"))
    files = [f for f in files if "build" not in f.relative_to(DEMO).parts[:2]]
    app_files = [f for f in files if f.is_relative_to(APP)]
    assert len(app_files) >= 12, f"the app's sources are missing: {app_files}"
    assert (DEMO / "settings.gradle.kts") in files and (DEMO / "build.gradle.kts") in files
    bad = {}
    for f in files:
        text = f.read_bytes()
        problems = _syntax_problems(parser.parse(text), text)
        if problems:
            bad[str(f.relative_to(ROOT))] = problems
    assert not bad, f"Kotlin that does not parse: {json.dumps(bad, indent=1)}"


def test_parser_catches_a_broken_file():
    """The check above must be able to fail: a dropped brace is a parse error."""
    parser = _kotlin_parser()
    good = (PLAIN / "TimedRunner.kt").read_bytes()
    assert not _syntax_problems(parser.parse(good), good)
    broken = good.replace(b"override fun run(input: TileInput): FloatArray {", b"override fun run(input: TileInput): FloatArray", 1)
    assert broken != good and _syntax_problems(parser.parse(broken), broken)


# --- versions ------------------------------------------------------------------------------------------

def _catalog() -> dict:
    return tomllib.loads((DEMO / "gradle" / "libs.versions.toml").read_text())


def _version(v: str) -> tuple[int, int, int]:
    parts = [int(re.match(r"\d+", p).group()) if re.match(r"\d+", p) else 0 for p in v.split(".")[:3]]
    return tuple(parts + [0] * (3 - len(parts)))  # type: ignore[return-value]


def _executorch_ok(made: str, app: str) -> bool:
    """RuntimeCheck's ExecuTorch rule: the same major.minor."""
    return _version(made)[:2] == _version(app)[:2]


def _litert_ok(made: str, app: str) -> bool:
    """RuntimeCheck's LiteRT rule: the same major, the app's minor not older."""
    m, a = _version(made), _version(app)
    return a[0] == m[0] and a[1] >= m[1]


def test_compatibility_rules_refuse_mismatches():
    assert _executorch_ok("1.5.1", "1.5.0") and not _executorch_ok("1.5.1", "1.4.1") and not _executorch_ok("1.5.1", "2.5.1")
    assert _litert_ok("2.3.0", "2.3.0") and _litert_ok("2.3.0", "2.4.1")
    assert not _litert_ok("2.3.0", "2.1.6") and not _litert_ok("2.3.0", "3.3.0") and not _litert_ok("2.3.0", "1.4.2")


def _lib_version(cat: dict, lib: dict) -> str:
    """A catalog library's version: `version.ref = "x"` (TOML: {"version": {"ref": "x"}}) or `version = "1.2"`."""
    v = lib["version"]
    return cat["versions"][v["ref"]] if isinstance(v, dict) else v


def test_catalog_runtimes_match_the_converters():
    """executorch-android = the executorch that wrote the .pte (same major.minor; the catalog pins the exact
    patch); LiteRT's AAR = the ai-edge-litert that verified the .tflite (same major, minor not older): the
    core's RuntimeCheck rule, applied to the versions conversion.base.tool_versions records into every bundle."""
    from conversion.base import tool_versions
    tools = tool_versions("executorch", "ai-edge-litert")
    cat = _catalog()
    libs = cat["libraries"]
    et_lib = next(v for v in libs.values() if (v.get("group"), v.get("name")) == ("org.pytorch", "executorch-android"))
    lr_lib = next(v for v in libs.values() if (v.get("group"), v.get("name")) == ("com.google.ai.edge.litert", "litert"))
    et, lr = _lib_version(cat, et_lib), _lib_version(cat, lr_lib)
    assert _executorch_ok(tools["executorch"], et), \
        f"executorch-android {et} cannot load .pte files made with executorch {tools['executorch']}"
    assert _version(et) == _version(tools["executorch"]), \
        f"pin executorch-android to the exported version {tools['executorch']} (catalog: {et})"
    assert _litert_ok(tools["ai-edge-litert"], lr), \
        f"LiteRT {lr} is older than ai-edge-litert {tools['ai-edge-litert']} that verified the .tflite files"
    gpu = next((v for v in libs.values() if (v.get("group"), v.get("name")) == ("com.google.ai.edge.litert", "litert-gpu")), None)
    if gpu is not None:
        assert _lib_version(cat, gpu) == lr, "litert-gpu must be the same release as litert"


def test_buildconfig_versions_come_from_the_catalog():
    build = (APP / "build.gradle.kts").read_text()
    for field, ref in (("EXECUTORCH_VERSION", "executorch"), ("LITERT_VERSION", "litert")):
        assert re.search(rf'buildConfigField\(\s*"String",\s*"{field}",\s*"\\""\s*\+\s*libs\.versions\.{ref}\.get\(\)', build) or \
            re.search(rf'buildConfigField\(\s*"String",\s*"{field}",\s*"\\"\$\{{libs\.versions\.{ref}\.get\(\)\}}\\""', build), \
            f"BuildConfig.{field} is not generated from libs.versions.{ref}"
        assert ref in _catalog()["versions"]
    app = (APP / "src" / "main" / "kotlin" / "ai" / "anyir" / "demo").rglob("*.kt")
    text = "\n".join(f.read_text() for f in app)
    assert "AppRuntimes(BuildConfig.EXECUTORCH_VERSION, BuildConfig.LITERT_VERSION)" in text, \
        "the app's runtime check does not take its versions from BuildConfig"


def test_min_sdk_and_abis_are_stated():
    build = (APP / "build.gradle.kts").read_text()
    m = re.search(r"minSdk\s*=\s*(\d+)", build)
    assert m and int(m.group(1)) >= 24, "LiteRT 2.3's AARs declare minSdk 24; executorch-android 23"
    abis = set(re.findall(r'"(arm64-v8a|x86_64|armeabi-v7a|x86)"', build))
    assert abis == {"arm64-v8a", "x86_64"}, f"executorch-android ships arm64-v8a and x86_64 only: {abis}"
    assert f"minSdk {m.group(1)}" in (DEMO / "README.md").read_text().replace("`", "").replace("= ", "")


# --- manifest fields --------------------------------------------------------------------------------------

_READ = re.compile(r'\.(?:string|optString|nullableString|bool|long|int|optInt|optDouble|nullableDouble|obj|optObj|'
                   r'intList|doubleList|objList|opt)\("([a-z0-9_]+)"\)')
# conversion/tflite_backend.py writes artifact.details.io = {input|output: {dtype, scale, zero_point}}
_DETAILS = {"details", "io", "input", "output", "dtype", "scale", "zero_point"}


def _schema_keys(node, out: set) -> set:
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("properties",) and isinstance(v, dict):
                out.update(v)
            if k == "required" and isinstance(v, list):
                out.update(v)
            _schema_keys(v, out)
    elif isinstance(node, list):
        for v in node:
            _schema_keys(v, out)
    return out


def test_manifest_fields_the_kotlin_code_reads_are_in_the_schema():
    schema = json.loads((ROOT / "mobile" / "schema" / "manifest-1.schema.json").read_text())
    known = _schema_keys(schema, set())
    sources = CORE_SOURCES + sorted((APP / "src" / "main" / "kotlin").rglob("*.kt"))
    read = {k for f in sources for k in _READ.findall(f.read_text())}
    assert {"tile", "overlap", "artifacts", "paths", "sha256", "tools", "bytes"} <= read, read
    unknown = read - known - _DETAILS
    assert not unknown, f"the app reads manifest fields the schema does not have: {sorted(unknown)}"
    tfl = (ROOT / "conversion" / "tflite_backend.py").read_text()
    assert '"zero_point"' in tfl and '"io": io' in tfl, "the TFLite record no longer writes details.io"


# --- the plain-Kotlin part on the JVM ---------------------------------------------------------------------

def test_plain_kotlin_part_has_no_android_import():
    assert len(PLAIN_SOURCES) >= 5, PLAIN_SOURCES
    for f in PLAIN_SOURCES:
        imports = re.findall(r"^import\s+([\w.]+)", f.read_text(), re.M)
        bad = [i for i in imports if i.split(".")[0] in ("android", "androidx") or i.startswith(("org.pytorch", "com.google"))]
        assert not bad, f"{f.name} imports {bad}: move that code out of bench/ (it must run on a plain JVM)"


@pytest.fixture(scope="module")
def jvm():
    job = Compilation(CORE_SOURCES + PLAIN_SOURCES + CHECK_SOURCES, DEMO, "anyir-android-app")
    yield job.runner(MAIN_CLASS, "BenchmarkCheck")
    job.close()


def _artifact(aid: str, backend: str, precision: str, rel: str, data: bytes, layout: str, tools: dict,
              io: dict | None = None) -> dict:
    shape = [1, 3, TILE, TILE] if layout == "NCHW" else [1, TILE, TILE, 3]
    a = {"id": aid, "backend": backend, "precision": precision, "paths": {"android": rel},
         "record": {"android": rel + ".json"}, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
         "input": {"height": TILE, "width": TILE, "layout": layout, "shape": shape, "value_range": [0.0, 1.0],
                   "color_order": "RGB"},
         "quant_scheme": None, "runtime": {}, "tools": tools,
         "numerics": {"reference": "eager", "psnr_min": 50.0, "psnr_mean": 55.0, "threshold": 40.0, "passed": True, "tiles": 4},
         "quality": {"tiles": {}, "photos": []},
         "latency": {"host_ms_median": 1.0, "eager_fp32_ms_median": 2.0, "speedup_vs_eager": 2.0, "threads": 2, "repeats": 3},
         "status": "ok"}
    if io:
        a["details"] = {"io": io}
    return a


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A bundle folder as `anyir build` lays it out (its manifest valid under manifest-1), with stand-in files:
    the runner is faked, so only names, sizes and checksums matter. Five Android artifacts, four ways to go:
    ok (fp32 NCHW .pte), ok (int8-I/O NHWC .tflite), a file that is not the one the manifest names, a .pte made
    by another ExecuTorch minor, and one whose runtime refuses to load it; plus an iOS-only artifact."""
    from PIL import Image

    from mobile.bundle import schema_errors
    d = tmp_path_factory.mktemp("android-app") / "anyir-mobile-0.1.0"
    (d / "android").mkdir(parents=True)
    (d / "testvectors").mkdir()
    ok = {"executorch": "1.5.1", "ai-edge-litert": "2.3.0", "litert-torch": "0.10.0"}
    blobs = {n: os.urandom(2048 + i) for i, n in enumerate(["a.pte", "b.tflite", "c.pte", "d.pte", "e.pte"])}
    for n, b in blobs.items():
        (d / "android" / n).write_bytes(b)
    arts = [
        _artifact("executorch-fp32", "executorch", "fp32", "android/a.pte", blobs["a.pte"], "NCHW", ok),
        _artifact("tflite-int8-nhwc", "tflite", "int8", "android/b.tflite", blobs["b.tflite"], "NHWC", ok,
                  io={"input": {"dtype": "int8", "scale": 1 / 255, "zero_point": -128},
                      "output": {"dtype": "float32", "scale": 0.0, "zero_point": 0}}),
        _artifact("executorch-tampered", "executorch", "fp32", "android/c.pte", b"not the pushed file", "NCHW", ok),
        _artifact("executorch-old", "executorch", "int8", "android/d.pte", blobs["d.pte"], "NCHW", ok | {"executorch": "1.4.0"}),
        _artifact("executorch-refused", "executorch", "fp32", "android/e.pte", blobs["e.pte"], "NCHW", ok),
        _artifact("coreml-fp16", "coreml", "fp16", "ios/x.mlpackage", b"ios", "NCHW", ok) | {"paths": {"ios": "ios/x.mlpackage"}},
    ]
    manifest = {
        "schema": "anyir-mobile/manifest/1", "name": "anyir-mobile", "version": "0.1.0", "created": "2026-01-01T00:00:00Z",
        "builder": {"tool": "anyir-mobile 0.1.0", "tools": ok, "host": {"machine": "x86_64", "cpus": 2, "threads": 2},
                    "command": "anyir build"},
        "model": {"architecture": "AnyIR", "preset": "anyir-tiny", "parameters": 1000, "macs_per_tile": 1000,
                  "checkpoint": {"name": "tiny", "sha256": "0" * 64, "bytes": 10}, "training": {}, "tasks": ["noise25"]},
        "input": {"tile": [TILE, TILE], "overlap": 8, "value_range": [0.0, 1.0], "color_order": "RGB", "dtype": "float32",
                  "padding": "reflect", "blend": "sin^2", "plan": "even"},
        "quantization": None, "default_artifact": "executorch-fp32", "artifacts": arts, "failed": [],
        "ranking": {"android": ["executorch-fp32", "tflite-int8-nhwc"], "ios": [], "host": ["executorch-fp32"]},
        "build": {"stages": [], "seconds": 1.0}, "files": {},
    }
    errors = schema_errors(manifest)
    assert not errors, errors
    (d / "manifest.json").write_text(json.dumps(manifest, indent=2))
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(d / "testvectors" / "photo.png")
    return d


@pytest.fixture(scope="module")
def session(jvm, bundle, tmp_path_factory):
    out = tmp_path_factory.mktemp("app-files")
    rows = jvm("session", out, bundle, "1.5.1", "2.3.0", "executorch-refused",
               "artifacts=executorch-fp32, tflite-int8-nhwc,executorch-tampered,executorch-old,executorch-refused",
               "runs:i=7", "warmup:i=2", "threads:i=3", f"bundle_dir={bundle}/", "out=r.json")
    outcome = next(r["outcome"] for r in rows if "outcome" in r)
    tiles = next(r["tile_ms"] for r in rows if "tile_ms" in r)
    return {"outcome": outcome, "tile_ms": tiles, "out": out, "bundle": bundle}


def test_benchmark_result_file_is_a_valid_profile(session):
    from mobile.profiling import read_result
    o = session["outcome"]
    path = session["out"] / "r.json"
    assert o["ok"] and o["log"] == f"ANYIR_BENCHMARK_DONE {path}", o
    r = read_result(path)  # schema-checked, as `anyir profile --target android` reads it
    assert r["target"]["kind"] == "android" and r["target"]["reached_by"] == "app"
    assert r["settings"] == {"runs": 7, "warmup": 2, "threads": 3}
    assert r["bundle"] == {"name": "anyir-mobile", "version": "0.1.0",
                           "manifest_sha256": hashlib.sha256((session["bundle"] / "manifest.json").read_bytes()).hexdigest()}
    assert [x["artifact"]["id"] for x in r["results"]] == ["executorch-fp32", "tflite-int8-nhwc", "executorch-tampered",
                                                         "executorch-old", "executorch-refused"]
    assert not list(session["out"].glob(".*tmp")), "the atomic write left its temp file"


def test_benchmark_records_each_failure_with_its_reason(session):
    from mobile.profiling import read_result
    res = {x["artifact"]["id"]: x for x in read_result(session["out"] / "r.json")["results"]}
    assert res["executorch-fp32"]["status"] == res["tflite-int8-nhwc"]["status"] == "ok"
    t = res["executorch-tampered"]
    assert t["status"] == "failed" and t["error"].startswith("checksum:") and "bytes" in t["error"] and t["latency"] is None
    old = res["executorch-old"]
    assert old["status"] == "failed" and old["error"].startswith("runtime check:") and "1.4.0" in old["error"]
    ref = res["executorch-refused"]
    assert ref["status"] == "failed" and ref["error"] == "load: IllegalStateException: fake runtime refused e.pte"
    for x in (t, old, ref):
        assert x["latency"] is None and x["photo"] is None


def test_benchmark_numbers_equal_pythons_statistics(session):
    """latency from the scripted tile times equals mobile.profiling.latency_stats of the same times; first
    inference, load time, the whole-photo figure (tiles of the manifest's plan) and memory follow the contract."""
    from anyir_core.tiling import TilePlan
    from mobile.profiling import latency_stats, read_result
    res = {x["artifact"]["id"]: x for x in read_result(session["out"] / "r.json")["results"]}
    plan = TilePlan(50, 70, TILE, TILE, 8)
    for aid in ("executorch-fp32", "tflite-int8-nhwc"):
        times = session["tile_ms"][aid]
        assert len(times) == 2 + 7 + len(plan), f"{aid}: warm-up, timed runs and photo tiles: {len(times)}"
        x = res[aid]
        want = latency_stats(times[2:9], 2)
        for k, v in want.items():
            assert x["latency"][k] == pytest.approx(v, abs=2e-4), f"{aid} latency.{k}: Kotlin {x['latency'][k]}, numpy {v}"
        assert x["first_inference_ms"] == pytest.approx(times[0], abs=1e-4)
        assert x["load_ms"] == pytest.approx(7.25)
        p = x["photo"]
        assert (p["width"], p["height"], p["tiles"]) == (70, 50, len(plan))
        assert p["total_ms"] == pytest.approx(sum(times[9:]), abs=1e-3)
        assert p["ms_per_tile"] == pytest.approx(p["total_ms"] / p["tiles"], abs=1e-3)
        assert x["memory"]["peak_mb"] >= 100 and x["memory"]["source"]
        assert x["runtime"]["version"] == ("1.5.1" if aid.startswith("executorch") else "2.3.0")
        assert x["runtime"]["threads"] == 3
        assert x["artifact"]["sha256"] == hashlib.sha256((session["bundle"] / "android" / x["artifact"]["file"]).read_bytes()).hexdigest()


def test_latency_percentiles_follow_numpy(jvm):
    for times in ([5.0], [3.0, 1.0], [4.0, 1.5, 9.25, 2.0, 7.0, 7.0, 0.5], list(np.linspace(10, 20, 11) ** 1.5)):
        (k,) = jvm("stats", *times)
        t = np.asarray(times)
        assert k["median"] == pytest.approx(round(float(np.median(t)), 4), abs=1e-9)
        assert k["p90"] == pytest.approx(round(float(np.percentile(t, 90)), 4), abs=1e-9)
        assert k["std"] == pytest.approx(round(float(t.std()), 4), abs=1e-4)
        assert k["mean"] == pytest.approx(round(float(t.mean()), 4), abs=1e-4)


def test_benchmark_extras_defaults_and_refusals(jvm):
    (d,) = jvm("args")
    assert d == {"artifacts": None, "runs": 20, "warmup": 3, "threads": 4, "photo": None, "out": "anyir-profile.json",
                 "bundle_dir": None, "accelerator": "cpu"}
    (s,) = jvm("args", "runs=5", "warmup:i=0", "artifacts=a,,b ", "out=x.json", "photo=none", "accelerator=GPU")
    assert (s["runs"], s["warmup"], s["artifacts"], s["out"], s["photo"], s["accelerator"]) == (5, 0, ["a", "b"], "x.json", "none", "gpu")
    for bad, word in (("runs:i=0", "runs"), ("threads=two", "threads"), ("out=../x.json", "out"), ("out=/sdcard/x", "out"),
                      ("accelerator=npu", "accelerator"), ("warmup:i=-1", "warmup")):
        (e,) = jvm("args", bad)
        assert "error" in e and e["error"].startswith(word), (bad, e)


def test_benchmark_that_cannot_start_writes_an_error_file(jvm, bundle, tmp_path):
    rows = jvm("session", tmp_path, bundle, "1.5.1", "2.3.0", "-", "artifacts=no-such-id", f"bundle_dir={bundle}")
    o = next(r["outcome"] for r in rows if "outcome" in r)
    assert not o["ok"] and o["log"].startswith("ANYIR_BENCHMARK_FAILED artifacts:") and "no-such-id" in o["log"]
    assert not (tmp_path / "anyir-profile.json").exists()
    assert "no-such-id" in (tmp_path / "anyir-profile.json.error").read_text()
    rows = jvm("session", tmp_path, tmp_path / "nowhere", "1.5.1", "2.3.0", "-")
    o = next(r["outcome"] for r in rows if "outcome" in r)
    assert not o["ok"] and "no manifest.json" in o["log"]


def test_default_photo_is_the_test_vector_photo_and_none_skips_it(jvm, bundle, tmp_path):
    from mobile.profiling import read_result
    jvm("session", tmp_path, bundle, "1.5.1", "2.3.0", "-", "artifacts=executorch-fp32", "runs:i=2", "warmup:i=0", "photo=none")
    (x,) = read_result(tmp_path / "anyir-profile.json")["results"]  # packed root = the bundle, no bundle_dir
    assert x["status"] == "ok" and x["photo"] is None and x["latency"]["count"] == 2 and x["latency"]["warmup"] == 0
    assert "warmup 0" in x["note"]
    jvm("session", tmp_path, bundle, "1.5.1", "2.3.0", "-", "artifacts=executorch-fp32", "runs:i=1", "warmup:i=1")
    (y,) = read_result(tmp_path / "anyir-profile.json")["results"]
    assert (y["photo"]["width"], y["photo"]["height"]) == (70, 50)


def test_app_menu_offers_each_android_artifact_on_the_accelerators_it_applies_to(jvm, bundle):
    """The main screen's menu (Choices): Android artifacts only, a float .tflite on CPU and GPU, an int8 one and
    .pte files on the CPU; an artifact from another ExecuTorch minor is listed but marked, with RuntimeCheck's
    sentence; the manifest's android ranking comes first (then PREFERENCE for what it does not name)."""
    rows = jvm("choices", bundle / "manifest.json", "1.5.1", "2.3.0")
    got = [(r["id"], r["accelerator"]) for r in rows]
    assert got[0] == ("executorch-fp32", "cpu")
    assert sorted(got) == sorted([("executorch-fp32", "cpu"), ("tflite-int8-nhwc", "cpu"), ("executorch-tampered", "cpu"),
                                  ("executorch-old", "cpu"), ("executorch-refused", "cpu")])
    old = next(r for r in rows if r["id"] == "executorch-old")
    assert not old["ok"] and "1.4.0" in old["why"] and "(cannot run)" in old["label"]
    assert all(r["ok"] for r in rows if r["id"] != "executorch-old")
    m = json.loads((bundle / "manifest.json").read_text())
    m["artifacts"][1]["precision"] = "fp32"
    m["artifacts"][1].pop("details")
    f = bundle.parent / "float-tflite.json"
    f.write_text(json.dumps(m))
    rows = jvm("choices", f, "1.5.1", "2.3.0")
    assert [r["accelerator"] for r in rows if r["id"] == "tflite-int8-nhwc"] == ["cpu", "gpu"]
    rows = jvm("choices", f, "1.5.1", "2.1.6")
    assert not any(r["ok"] for r in rows if r["id"].startswith("tflite")), "LiteRT 2.1 must refuse files verified with 2.3"


def test_bundle_files_path_rule_is_the_schemas():
    """BundleFiles.kt's SAFE_PATH is manifest-1's "path" pattern, character for character (it said so in a
    comment while still refusing only '../', not a last '..' segment)."""
    kt = (ROOT / "android_demo/app/src/main/kotlin/ai/anyir/demo/bench/BundleFiles.kt").read_text()
    literal = re.search(r'SAFE_PATH = Regex\("((?:[^"\\]|\\.)*)"\)', kt).group(1)
    kotlin_pattern = literal.encode().decode("unicode_escape")  # Kotlin's "\\." is the regex \.
    pattern = json.loads((ROOT / "mobile/schema/manifest-1.schema.json").read_text())["$defs"]["path"]["pattern"]
    assert kotlin_pattern == pattern
    rule = re.compile(pattern)
    for ok in ("android/a.pte", "ios/x..y.mlpackage"):
        assert rule.fullmatch(ok)
    for bad in ("..", "a/..", "../a", "a/../b", "/abs"):
        assert not rule.fullmatch(bad)
