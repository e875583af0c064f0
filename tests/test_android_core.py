"""The Android demo's plain-Kotlin core (android_demo/core) against the Python reference.

The core is compiled once per module with the Kotlin compiler inside the kotlin-jupyter-kernel wheel
(a declared test dependency: without it this module fails, it does not skip), together with its check
program (src/jvmCheck/.../VectorCheck.kt), which prints what Kotlin computed as JSON lines. A small
bundle is built with the project's own builder, and every assertion here compares Kotlin's numbers
with the bundle's test vectors (mobile/vectors.py) or with anyir_core.tiling directly, so a change to
the tiling, blend or pre-processing on either side fails a test.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from kotlin_jvm import Compilation

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "android_demo" / "core"
SOURCES = sorted((CORE / "src" / "main" / "kotlin").rglob("*.kt")) + sorted((CORE / "src" / "jvmCheck" / "kotlin").rglob("*.kt"))
MAIN_CLASS = "ai.anyir.core.check.VectorCheckKt"
# 12 MP banded restore: the photo's own 48 MB pixel array (restored in place) plus one band of tile rows.
# A whole-photo float approach cannot fit: its accumulator alone is 4000 x 3000 x 3 x 4 B = 144 MB, with the
# weight sum 192 MB (Python's restore_tiled also keeps the padded float photo: about 340 MB).
HEAP_BOUND_MB = 96
TIMINGS: dict = {}


@pytest.fixture(scope="module")
def compile_started():
    """Starts compiling the core + check program in the background, so that it overlaps the bundle build."""
    job = Compilation(SOURCES, CORE, "anyir-android-core")
    yield job
    job.close()


@pytest.fixture(scope="module")
def jvm(compile_started):
    """Runs the check program: jvm(mode, *args) -> its JSON lines (a non-zero exit fails the test)."""
    run = compile_started.runner(MAIN_CLASS, "VectorCheck")
    TIMINGS["compile_s"] = compile_started.seconds
    return run


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, compile_started):
    """A one-artifact bundle of a tiny random model, built by the project's builder (about a minute:
    the ExecuTorch export is most of it) while the Kotlin compiler runs."""
    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import random_model

    from anyir_core import save_checkpoint
    from mobile.bundle import BuildConfig, build
    d = tmp_path_factory.mktemp("android-core")
    ck = d / "tiny.safetensors"
    save_checkpoint(random_model(scale=0.05), ck, "anyir-tiny")
    t = time.perf_counter()
    dest = build(BuildConfig(checkpoint=str(ck), backends=["executorch"], precisions=["fp32"], size=[64, 64],
                             overlap=16, tasks=["noise25"], repeats=1, out=str(d / "dist")), quiet=True)
    TIMINGS["bundle_build_s"] = round(time.perf_counter() - t, 1)
    return dest


@pytest.fixture(scope="module")
def checks(bundle, jvm):
    """Every vector check of one VectorCheck run, grouped by name."""
    t = time.perf_counter()
    out: dict[str, list[dict]] = {}
    for row in jvm("vectors", bundle):
        out.setdefault(row["check"], []).append(row)
    TIMINGS["vector_run_s"] = round(time.perf_counter() - t, 2)
    print(f"\nandroid core timings: {TIMINGS}")
    return out


@pytest.fixture(scope="module")
def vectors(bundle):
    return json.loads((bundle / "testvectors" / "vectors.json").read_text())


def test_tile_plans_equal_python_for_every_planned_size(checks, vectors):
    from anyir_core.tiling import TilePlan
    got = checks["plan"]
    assert len(got) == len(vectors["plans"]) >= 6
    for k, want in zip(got, vectors["plans"]):
        ref = TilePlan(*want["image"], *want["tile"], want["overlap"])
        assert (k["image"], k["tile"], k["overlap"]) == (want["image"], want["tile"], want["overlap"])
        assert k["padded"] == want["padded"] == list(ref.padded), k["image"]
        assert k["ys"] == want["ys"] == ref.ys, k["image"]
        assert k["xs"] == want["xs"] == ref.xs, k["image"]
        assert k["tiles"] == want["tiles"] == len(ref), k["image"]


def test_blend_weights_equal_python(checks, vectors):
    (b,) = checks["blend"]
    th, tw = vectors["tile"]
    assert b["n"] == th * tw
    assert b["max_abs"] <= 1e-6, f"Kotlin's blend weights differ from Python's by up to {b['max_abs']} ({b['unequal']} values)"


def test_preprocessed_inputs_equal_python(checks, vectors):
    """photo_input (8-bit PNG -> float), every tile of the photo in plan order in both layouts, and the
    reflect padding of small images (twice over, and from one pixel)."""
    (p,) = checks["photo_input"]
    assert p["size"] == list(np.asarray(vectors["photo"]["input"]["shape"][:2]))
    assert p["max_abs"] is not None and p["max_abs"] <= 1e-6, p
    (n,) = checks["tile_count"]
    assert n["kotlin"] == n["vectors"] == vectors["photo"]["plan"]["tiles"] == 4
    tiles = checks["tile_input"]
    assert len(tiles) == 2 * n["kotlin"]
    for t in tiles:
        assert t["max_abs"] is not None and t["max_abs"] <= 1e-6, f"tile {t['index']} at {t['origin']} ({t['layout']}): {t}"
    (first,) = checks["tile_input_first"]
    assert first["max_abs"] is not None and first["max_abs"] <= 1e-6, first
    pads = checks["padding"]
    assert [p["image"][:2] for p in pads] == [v["image"]["shape"][:2] for v in vectors["padding"]]
    for p in pads:
        assert p["max_abs"] is not None and p["max_abs"] <= 1e-6, f"reflect padding of {p['image']}: {p}"


def test_replayed_tiled_restore_equals_python_photo(checks, vectors):
    """Recorded tile outputs through Kotlin's banded blend land on Python's restored PNG (at most one
    8-bit level off), in both tile layouts and in place, with every tile asked for once, progress per tile."""
    rows = checks["replay"]
    assert {r["artifact"] for r in rows} == set(vectors["outputs"]) and len(rows) == 3 * len(vectors["outputs"])
    assert {r["layout"] for r in rows} == {"NCHW", "NHWC", "NCHW in place"}
    tiles = vectors["photo"]["plan"]["tiles"]
    for r in rows:
        print(f"replay {r['artifact']} {r['layout']}: max 8-bit difference {r['max_diff']}, {r['differing']} pixels differ")
        assert r["size"] == r["expected_size"]
        assert r["max_diff"] <= 1, f"{r['artifact']} ({r['layout']}): up to {r['max_diff']} levels off in {r['differing']} pixels"
        assert r["runner_calls"] == r["recorded"] == tiles
        assert r["progress_calls"] == tiles and r["progress_last"] == [tiles, tiles]
        assert r["alpha_kept"], "the restore changed the source alpha"


def test_replayed_tiled_restore_is_bit_identical(checks):
    """The stronger claim: the same Float operations in the same order per pixel, so not one byte differs."""
    for r in checks["replay"]:
        assert r["differing"] == 0, f"{r['artifact']} ({r['layout']}): {r['differing']} pixels differ (max {r['max_diff']})"


@pytest.mark.parametrize("size", [(301, 451), (65, 128), (29, 21), (1, 1)])
def test_banded_restore_equals_restore_tiled_directly(jvm, tmp_path, size):
    """Beyond the vectors' 2 x 2 tiles: many bands (rows carried from band to band), one row of tiles,
    and photos smaller than a tile (reflect padding inside the tiles), against anyir_core.tiling itself,
    with a stand-in model whose tiles disagree (even calls: the tile; odd calls: 0.5 * (1 - tile))."""
    from PIL import Image

    from anyir_core.tiling import restore_tiled
    h, w = size
    rgb = np.random.default_rng(h * 1000 + w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "in.png")
    calls = []

    def alternating(x):
        calls.append(1)
        return x if len(calls) % 2 == 1 else np.float32(0.5) * (1 - x)
    restored = restore_tiled(rgb.astype(np.float32) / np.float32(255.0), alternating, (64, 64), 16)
    want = (np.clip(restored, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    (r,) = jvm("restore-png", tmp_path / "in.png", tmp_path / "out.rgb", 64, 64, 16)
    got = np.frombuffer((tmp_path / "out.rgb").read_bytes(), dtype=np.uint8).reshape(h, w, 3)
    assert r["tiles"] == len(calls)
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() == 0, f"{size}: {int((diff > 0).any(axis=2).sum())} pixels differ, by up to {diff.max()} levels"


def test_cancel_between_tiles(checks, vectors):
    (c,) = checks["cancel"]
    tiles = vectors["photo"]["plan"]["tiles"]
    assert c["cancelled"] and (c["tiles_done"], c["tiles"]) == (2, tiles), c
    assert c["runner_calls"] == c["progress_last"] == 2, "a tile ran after the cancel was asked"


def test_int8_io_quantization_equals_python(checks):
    (q,) = checks["int8_quantize"]
    assert q["n"] == q["expected_n"] > 0
    assert q["unequal"] == 0, f"{q['unequal']} int8 values differ (max {q['max_abs']})"
    (d,) = checks["int8_dequantize"]
    assert d["max_abs"] is not None and d["max_abs"] <= 1e-6, d
    (t,) = checks["int8_tiled_first"]
    assert t["equal"], "the tiled restore fed an int8 runner other bytes than int8_io.i8"


@pytest.mark.parametrize("scale, zero_point", [(0.5, 0), (0.5, 3), (1 / 255, -128), (0.0123, -7)])
def test_int8_quantization_rounds_half_to_even_and_clips(jvm, tmp_path, scale, zero_point):
    """The vectors' int8 tile never hits a tie (k/255 over a scale of 1/255 is an integer), so ties and
    clipping are checked here against mobile.vectors.quantize_int8: with scale 0.5, v / scale is exact
    and x.5 for v = 0.25, 0.75, -0.25, ... (np.round: half to even)."""
    from mobile.vectors import quantize_int8
    ties = (np.arange(-300, 301, dtype=np.float32) + np.float32(0.5)) * np.float32(scale)
    rng = np.random.default_rng(7)
    values = np.concatenate([ties, rng.uniform(-2.0, 2.0, 2000).astype(np.float32), np.float32([0, -0.0, 1, 1e6, -1e6])])
    (tmp_path / "in.f32").write_bytes(values.astype("<f4").tobytes())
    jvm("quantize", tmp_path / "in.f32", repr(float(np.float32(scale))), zero_point, tmp_path / "out")
    got = np.frombuffer((tmp_path / "out.i8").read_bytes(), dtype=np.int8)
    want = quantize_int8(values, scale, zero_point)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, f"{bad.size} values differ, e.g. {values[bad[:3]]} -> Kotlin {got[bad[:3]]}, numpy {want[bad[:3]]}"
    back = np.frombuffer((tmp_path / "out.f32").read_bytes(), dtype="<f4")
    np.testing.assert_array_equal(back, (want.astype(np.float32) - zero_point) * np.float32(scale))


def test_exif_orientations_equal_pil(checks):
    rows = {r["orientation"]: r for r in checks["exif"]}
    assert sorted(rows) == list(range(1, 9))
    for o, r in rows.items():
        assert r["size"] == r["expected_size"], f"orientation {o}: {r}"
        assert r["equal"], f"orientation {o} differs from PIL's exif_transpose"


def test_manifest_read_as_python_reads_it(checks, bundle):
    (k,) = checks["manifest"]
    m = json.loads((bundle / "manifest.json").read_text())
    assert (k["name"], k["version"], k["tile"], k["overlap"]) == (m["name"], m["version"], m["input"]["tile"], m["input"]["overlap"])
    assert (k["value_range"], k["color_order"], k["default"]) == (m["input"]["value_range"], "RGB", m["default_artifact"])
    assert k["android"] == [a["id"] for a in m["artifacts"] if "android" in a["paths"]] == ["executorch-fp32"]
    for ka, a in zip(k["artifacts"], m["artifacts"], strict=True):
        assert (ka["id"], ka["backend"], ka["precision"], ka["paths"]) == (a["id"], a["backend"], a["precision"], a["paths"])
        assert (ka["bytes"], ka["sha256"], ka["tools"]) == (a["bytes"], a["sha256"], a["tools"])
        assert (ka["layout"], ka["shape"], ka["dtype"]) == (a["input"]["layout"], a["input"]["shape"], a["input"]["dtype"])
        assert (ka["status"], ka["passed"], ka["host_ms_median"]) == (a["status"], a["numerics"]["passed"], a["latency"]["host_ms_median"])
        assert ka["input_type"] == "float32"


JSON_VALID = [
    '{"a": [1, -2, 3.5, 1e3, -0.25E-2, 0, -0, true, false, null], "big": 12345678901234, "huge": 123456789012345678901234,'
    ' "nested": {"x": {}, "y": [[]]}, "empty": [], "": ""}',
    '"q\\"\\\\\\/\\b\\f\\n\\r\\t \\u00e9\\u20AC \\ud83d\\ude00 \u00e9 \u6f22"',
    ' \n\t[ 1 ,\r\n 2 ] ',
    "3.0e-7",
]
JSON_INVALID = {  # text -> what the error must say
    '{"a": 1,}': "string key", "[1 2]": "',' or ']'", '{"a" 1}': "':'", '"\\x"': "escape", '"\\ud800"': "surrogate",
    "01": "after the JSON value", "tru": "'true'", '{"a": 1} x': "after the JSON value", '"abc': "unterminated",
    "[": "end of input", "": "end of input", '{"a": 1, "a": 2}': "duplicate", "1.": "digit", "-": "number",
    '"\t"': "control character", "{\n  \"k\": nul\n}": "line 2, column 8",
}


def test_json_reader_is_strict_and_names_the_position(jvm, tmp_path):
    """Valid texts read as Python's json reads them (ints stay ints, escapes and surrogate pairs decode);
    every invalid one is refused with its line and column."""
    files = []
    for i, text in enumerate([*JSON_VALID, *JSON_INVALID]):
        (tmp_path / f"{i}.json").write_text(text, encoding="utf-8")
        files.append(tmp_path / f"{i}.json")
    rows = jvm("json", *files)
    assert len(rows) == len(files)

    def typed(v):  # json.loads equality, plus int vs float kept apart (1 == 1.0 in Python)
        if isinstance(v, dict):
            return {k: typed(x) for k, x in v.items()}
        if isinstance(v, list):
            return [typed(x) for x in v]
        return (type(v).__name__, v)
    for text, r in zip(JSON_VALID, rows):
        assert r["ok"], f"{text!r}: {r.get('error')}"
        want = json.loads(text)
        if isinstance(want, dict) and "huge" in want:  # past Long: read as a Double, as the reader documents
            want["huge"] = float(want["huge"])
        assert typed(r["value"]) == typed(want), text
    for (text, must), r in zip(JSON_INVALID.items(), rows[len(JSON_VALID):]):
        assert not r["ok"], f"{text!r} was accepted as {r.get('value')!r}"
        assert must in r["error"] and "line" in r["error"] and "column" in r["error"], f"{text!r}: {r['error']}"


def _variant(m: dict, id_: str, backend: str, precision: str, tools: dict, status="ok", io=None, paths=("android",)) -> dict:
    a = json.loads(json.dumps(m["artifacts"][0]))
    a.update(id=id_, backend=backend, precision=precision, tools=tools, status=status,
             paths={p: f"{p}/{id_}.bin" for p in paths})
    a["details"] = {"io": io} if io else {}
    return a


@pytest.fixture(scope="module")
def edited_manifests(bundle, tmp_path_factory):
    """Copies of the bundle's manifest, each broken (or extended) in one way."""
    d = tmp_path_factory.mktemp("manifests")
    m = json.loads((bundle / "manifest.json").read_text())
    text = (bundle / "manifest.json").read_text()

    def put(name: str, data) -> Path:
        p = d / name
        p.write_text(data if isinstance(data, str) else json.dumps(data, indent=1))
        return p

    newer = {**m, "schema": "anyir-mobile/manifest/2"}
    no_input = {k: v for k, v in m.items() if k != "input"}
    no_sha = json.loads(text)
    del no_sha["artifacts"][0]["sha256"]
    bad_tile = json.loads(text)
    bad_tile["input"]["tile"] = "64x64"
    bad_range = json.loads(text)
    bad_range["input"]["value_range"] = [-1.0, 1.0]
    int8io = {"input": {"dtype": "int8", "scale": 1 / 255, "zero_point": -128},
              "output": {"dtype": "int8", "scale": 0.00392156862745098, "zero_point": -128}}
    more = json.loads(text)
    more["artifacts"] += [_variant(m, "tflite-int8-nhwc", "tflite", "int8", {"ai-edge-litert": "2.3.0"}, io=int8io),
                          _variant(m, "tflite-fp32-nhwc", "tflite", "fp32", {"ai-edge-litert": "2.3.0"}),
                          _variant(m, "executorch-int8", "executorch", "int8", {"executorch": "1.5.1"}, status="below-threshold"),
                          _variant(m, "coreml-fp16", "coreml", "fp16", {"coremltools": "9.0"}, paths=("ios",))]
    ranked = json.loads(json.dumps(more))  # the build's android ranking, not the host's default, orders the list
    ranked["ranking"] = {"android": ["tflite-fp32-nhwc", "tflite-int8-nhwc", "executorch-fp32"], "ios": ["coreml-fp16"]}
    return {"corrupt": put("corrupt.json", text[: len(text) // 2]), "ranked": put("ranked.json", ranked), "newer": put("newer.json", newer),
            "no_input": put("no_input.json", no_input), "no_sha": put("no_sha.json", no_sha),
            "bad_tile": put("bad_tile.json", bad_tile), "bad_range": put("bad_range.json", bad_range), "more": put("more.json", more), "good": bundle / "manifest.json"}


@pytest.fixture(scope="module")
def manifest_results(jvm, edited_manifests):
    rows = jvm("manifest", *edited_manifests.values())
    return dict(zip(edited_manifests, rows, strict=True))


def test_manifests_it_does_not_understand_are_refused_by_name(manifest_results):
    r = manifest_results
    assert r["good"]["ok"] and r["more"]["ok"]
    for case in ("corrupt", "newer", "no_input", "no_sha", "bad_tile", "bad_range"):
        assert not r[case]["ok"], f"{case} was accepted"
    assert "corrupt" in r["corrupt"]["error"] and "line" in r["corrupt"]["error"], r["corrupt"]["error"]
    # both the found and the understood schema are named
    assert '"anyir-mobile/manifest/2"' in r["newer"]["error"] and '"anyir-mobile/manifest/1"' in r["newer"]["error"], r["newer"]["error"]
    assert 'required field "input"' in r["no_input"]["error"], r["no_input"]["error"]
    assert 'required field "artifacts[0].sha256"' in r["no_sha"]["error"], r["no_sha"]["error"]
    assert '"input.tile"' in r["bad_tile"]["error"] and "list" in r["bad_tile"]["error"], r["bad_tile"]["error"]
    assert '"input.value_range"' in r["bad_range"]["error"] and "[-1.0, 1.0]" in r["bad_range"]["error"], r["bad_range"]["error"]


def test_artifact_order_and_int8_io_from_the_manifest(jvm, edited_manifests):
    """The android list: passed before failed, then the manifest's ranking for the platform, then PREFERENCE
    for what it does not name (never the host's default_artifact); the int8 I/O quantization is read from
    details.io; Core ML is not offered to Android."""
    (k,) = jvm("manifest-view", edited_manifests["more"])
    assert k["android"] == ["executorch-fp32", "tflite-int8-nhwc", "tflite-fp32-nhwc", "executorch-int8"]
    assert k["ios"] == ["executorch-fp32", "coreml-fp16"]
    (r,) = jvm("manifest-view", edited_manifests["ranked"])
    assert r["default"] == "executorch-fp32"  # the host's pick, which the phone list does not follow
    assert r["android"] == ["tflite-fp32-nhwc", "tflite-int8-nhwc", "executorch-fp32", "executorch-int8"]
    assert r["ios"] == ["coreml-fp16", "executorch-fp32"]
    types = {a["id"]: a["input_type"] for a in k["artifacts"]}
    assert types["tflite-int8-nhwc"] == f"int8 (scale {str(np.float32(1 / 255))}, zero point -128)"
    quant = {a["id"]: a["input_quantization"] for a in k["artifacts"]}
    assert quant["tflite-int8-nhwc"] == ["int8", 1 / 255, -128] and quant["executorch-fp32"] is None
    assert types["tflite-fp32-nhwc"] == "float32"


@pytest.mark.parametrize("app, expect", [
    (("1.5.0", "2.3.0"), {"executorch-fp32": True, "tflite-int8-nhwc": True, "coreml-fp16": False}),
    (("1.5.9", "2.4.1"), {"executorch-fp32": True, "tflite-int8-nhwc": True}),
    (("1.4.2", "2.2.0"), {"executorch-fp32": False, "tflite-int8-nhwc": False}),
    (("2.5.1", "3.3.0"), {"executorch-fp32": False, "tflite-int8-nhwc": False}),
])
def test_runtime_version_check(jvm, edited_manifests, app, expect):
    rows = {r["artifact"]: r for r in jvm("runtime", edited_manifests["more"], *app)}
    for id_, ok in expect.items():
        assert rows[id_]["ok"] is ok, rows[id_]["message"]
    et, lite = rows["executorch-fp32"], rows["tflite-int8-nhwc"]
    if not et["ok"]:  # the message names both versions and the rule
        assert "1.5.1" in et["message"] and app[0] in et["message"] and "major.minor" in et["message"], et["message"]
    if not lite["ok"]:
        assert "2.3.0" in lite["message"] and app[1] in lite["message"], lite["message"]
    assert "iOS" in rows["coreml-fp16"]["message"]


def test_runtime_check_refuses_an_artifact_without_versions(jvm, edited_manifests, tmp_path):
    m = json.loads(edited_manifests["good"].read_text())
    m["artifacts"][0]["tools"] = {}
    p = tmp_path / "m.json"
    p.write_text(json.dumps(m))
    (r,) = jvm("runtime", p, "1.5.1", "2.3.0")
    assert not r["ok"] and "tools.executorch" in r["message"]
    (r,) = jvm("runtime", edited_manifests["good"], "", "2.3.0")
    assert not r["ok"] and "without ExecuTorch" in r["message"]


def test_12mp_banded_restore_fits_a_bounded_heap(jvm):
    """4000 x 3000 through Kotlin's banded restore with a model stand-in that inverts each tile, under
    -Xmx{HEAP_BOUND_MB}m: it completes, every pixel is the inverse of its source (alpha kept), and the
    heap pools' summed peaks (an upper bound of the true peak) stay under the bound."""
    from anyir_core.tiling import TilePlan
    (r,) = jvm("restore", 4000, 3000, 256, 32, heap=f"{HEAP_BOUND_MB}m")
    peak_mb = r["peak_heap_bytes"] / 2**20
    print(f"\n12 MP banded restore: {r['tiles']} tiles in {r['seconds']:.2f} s, peak heap {peak_mb:.1f} MiB "
          f"(pools {r['peak_by_pool']}) under -Xmx{HEAP_BOUND_MB}m")
    assert r["tiles"] == len(TilePlan(3000, 4000, 256, 256, 32))
    assert r["wrong_pixels"] == 0
    assert peak_mb < HEAP_BOUND_MB
    # the control: the same heap does not hold the pixels plus a whole-photo float accumulator and weight sum
    (c,) = jvm("whole-float", 4000, 3000, heap=f"{HEAP_BOUND_MB}m")
    assert c["fits"] is False, f"-Xmx{HEAP_BOUND_MB}m is no bound: a whole-photo float blend fits in it"
