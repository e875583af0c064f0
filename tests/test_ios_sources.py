"""The iOS demo (ios_demo/) checked where no Swift toolchain exists.

Nothing in ios_demo is compiled on these machines. What can be checked here is: every Swift file parses
(tree-sitter-swift, no ERROR/MISSING node); every manifest field the Swift reader asks for exists in the
manifest schema (or, in the schema's free-form `runtime`/`tools` objects, is what the bundle builder
writes there); the ExecuTorch version the package and the app link and the iOS deployment target are
those the bundle's artifacts were made for; the rules and constants of the Swift core are the test
vectors' (mobile.vectors.RULES, INT8_IO, no overlap default of its own); the XCTests read only keys and
files the bundle builder writes; the benchmark's JSON keys are profile-1 keys and its names (scheme,
attachment, settings) are what `anyir profile --target ios` looks for. Where `swift` is on PATH,
`swift test` runs the package's XCTests against freshly written vectors.
"""
from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
IOS = ROOT / "ios_demo"
KIT = IOS / "AnyIRKit"
CORE = KIT / "Sources" / "AnyIRKit"
KIT_TESTS = KIT / "Tests" / "AnyIRKitTests"
APP = IOS / "AnyIRDemo"
BENCH = APP / "AnyIRBenchmarkTests"
SWIFT_FILES = sorted(IOS.rglob("*.swift"))

# Fields' typed getters (Json.swift): every call with a string literal reads one JSON key
GETTERS = ("string", "optString", "nullableString", "bool", "long", "int", "optInt", "optDouble", "nullableDouble",
           "double", "obj", "optObj", "intList", "doubleList", "objList", "opt")
GETTER_CALL = re.compile(r"\.(?:%s)\(\"([^\"\\]+)\"\)" % "|".join(GETTERS))
SUBSCRIPT_READ = re.compile(r"\b(tools|paths)\[\"([^\"\\]+)\"\]")


def _code(path: Path) -> str:
    """Swift source without // comments (string literals kept)."""
    out = []
    for line in path.read_text().splitlines():
        in_str, cut = False, None
        for i, ch in enumerate(line):
            if ch == '"' and (i == 0 or line[i - 1] != "\\"):
                in_str = not in_str
            elif not in_str and line.startswith("//", i):
                cut = i
                break
        out.append(line if cut is None else line[:cut])
    return "\n".join(out)


def _swift_parser():
    import tree_sitter
    import tree_sitter_swift
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_swift.language()))


def syntax_errors(source: bytes) -> list[str]:
    tree = _swift_parser().parse(source)
    found, stack = [], [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            row, col = node.start_point
            found.append(f"{'MISSING ' + node.type if node.is_missing else 'ERROR'} at {row + 1}:{col + 1}")
        stack.extend(node.children)
    return found


def schema_names(schema) -> set[str]:
    """Every property name, required name and allowed property name anywhere in a JSON schema."""
    names, stack = set(), [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            names.update(node.get("properties", {}).keys())
            names.update(n for n in node.get("required", []) if isinstance(n, str))
            names.update(node.get("propertyNames", {}).get("enum", []))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return names


def json_keys(value) -> set[str]:
    keys, stack = set(), [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            keys.update(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return keys


# --- every file parses ----------------------------------------------------------------------------

def test_the_demo_has_its_parts():
    names = {p.relative_to(IOS).as_posix() for p in SWIFT_FILES}
    # the core mirrors android_demo/core file by file (Errors, Json, Manifest, RuntimeCheck, TilePlan, Pixels,
    # ExifOrientation, Runner, TiledRestore); the runners and the app sit beside it
    for stem in ("Errors", "Json", "Manifest", "RuntimeCheck", "TilePlan", "Pixels", "ExifOrientation", "Runner",
                 "TiledRestore", "Rules"):
        assert f"AnyIRKit/Sources/AnyIRKit/{stem}.swift" in names
    for rel in ("AnyIRKit/Package.swift", "AnyIRKit/Sources/AnyIRCoreML/CoreMLRunner.swift",
                "AnyIRKit/Sources/AnyIRExecuTorch/ExecuTorchRunner.swift",
                "AnyIRDemo/AnyIRBenchmarkTests/AnyIRBenchmarkTests.swift", "AnyIRDemo/AnyIRDemo/ContentView.swift"):
        assert rel in names
    assert (APP / "project.yml").is_file() and (APP / "Scripts" / "copy_bundle.sh").is_file()


@pytest.mark.parametrize("path", SWIFT_FILES, ids=lambda p: p.relative_to(IOS).as_posix())
def test_swift_file_parses(path):
    errors = syntax_errors(path.read_bytes())
    assert not errors, f"{path.relative_to(ROOT)}: {', '.join(errors[:5])}"


def test_the_parse_check_catches_broken_swift():
    assert syntax_errors(b"func f(_ x: Int) -> Int { return x + }\n")
    assert syntax_errors(b"struct S { let a: Int\n")
    assert not syntax_errors(b"struct S { let a: Int }\n")


# --- the manifest reader ---------------------------------------------------------------------------

def manifest_reads() -> tuple[set[str], set[tuple[str, str]]]:
    """JSON keys the Swift manifest reader asks for (typed getters) and (map, key) subscript reads."""
    src = _code(CORE / "Manifest.swift") + "\n" + _code(CORE / "RuntimeCheck.swift")
    return set(GETTER_CALL.findall(src)), set(SUBSCRIPT_READ.findall(src))


def builder_free_form_keys() -> dict[str, set[str]]:
    """What the bundle builder writes into the schema's free-form objects: artifacts[].runtime (the
    backends' runtime={...} literals) and artifacts[].tools (tool_versions)."""
    runtime = set()
    for path in sorted((ROOT / "conversion").glob("*_backend.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "runtime" and isinstance(node.value, ast.Dict):
                runtime.update(k.value for k in node.value.keys if isinstance(k, ast.Constant))
    from conversion.base import tool_versions
    return {"runtime": runtime, "tools": set(tool_versions("executorch", "coremltools", "torchao"))}


def unknown_manifest_keys(keys: set[str], subscripts: set[tuple[str, str]]) -> list[str]:
    from mobile.bundle import load_schema
    schema = load_schema()
    known = schema_names(schema)
    free = builder_free_form_keys()
    bad = [k for k in sorted(keys) if k not in known and k not in free["runtime"] and k not in free["tools"]]
    platforms = set(schema["$defs"]["artifact"]["properties"]["paths"]["propertyNames"]["enum"])
    bad += [f"{m}[{k}]" for m, k in sorted(subscripts) if k not in (platforms if m == "paths" else free["tools"])]
    return bad


def test_manifest_fields_the_swift_reader_reads_exist_in_the_schema():
    keys, subscripts = manifest_reads()
    # the reader reads what an app needs: not an empty extraction
    assert {"schema", "input", "tile", "overlap", "artifacts", "paths", "sha256", "files", "default_artifact",
            "layout", "shape", "status", "passed", "host_ms_median"} <= keys
    assert ("tools", "executorch") in subscripts and ("paths", "ios") in subscripts
    assert unknown_manifest_keys(keys, subscripts) == []
    # the only key read from a free-form object is one the Core ML backend writes
    assert "minimum_deployment_target" in builder_free_form_keys()["runtime"]
    # the checker itself fails on a misspelt field
    assert unknown_manifest_keys(keys | {"default_artefact"}, subscripts | {("tools", "exectorch")}) == \
        ["default_artefact", "tools[exectorch]"]


def test_the_swift_reader_refuses_by_schema_id_and_field_path():
    from mobile.bundle import SCHEMA_ID
    src = _code(CORE / "Manifest.swift")
    assert f'static let schema = "{SCHEMA_ID}"' in src
    json_src = _code(CORE / "Json.swift")
    assert "is missing the required field" in json_src and "whereIs(key)" in json_src


# --- versions ---------------------------------------------------------------------------------------

def _project() -> dict:
    return yaml.safe_load((APP / "project.yml").read_text())


def test_executorch_version_is_the_one_that_writes_the_bundles_pte():
    from conversion.base import tool_versions
    made = tool_versions("executorch")["executorch"]
    assert made, "executorch is not installed: the .pte files of a bundle record its version"
    linked = re.search(r'static let linkedVersion = "([^"]+)"', (KIT / "Sources/AnyIRExecuTorch/ExecuTorchRunner.swift").read_text())
    package = re.search(r'let executorchVersion = "([^"]+)"', (KIT / "Package.swift").read_text())
    assert linked and package
    assert linked.group(1) == package.group(1) == made
    assert 'branch: "swiftpm-\\(executorchVersion)"' in (KIT / "Package.swift").read_text()
    pkg = _project()["packages"]["executorch"]
    assert pkg["url"].rstrip("/").removesuffix(".git") == "https://github.com/pytorch/executorch"
    assert pkg["branch"] == f"swiftpm-{made}"
    app = _project()["targets"]["AnyIRDemo"]
    products = [p for d in app["dependencies"] if d.get("package") == "executorch" for p in d.get("products", [d.get("product")])]
    assert "backend_xnnpack" in products  # the .pte files are XNNPACK-delegated
    assert "-all_load" in app["settings"]["base"]["OTHER_LDFLAGS"]  # backends register only when force-loaded


def test_deployment_target_is_the_core_ml_packages():
    from conversion import coreml_backend
    major = int(re.fullmatch(r"iOS(\d+)", coreml_backend.DEPLOYMENT_TARGET).group(1))
    project = _project()
    assert int(str(project["options"]["deploymentTarget"]["iOS"]).split(".")[0]) == major
    for name, target in project["targets"].items():
        assert int(str(target["deploymentTarget"]).split(".")[0]) == major, name
    assert f".iOS(.v{major})" in (KIT / "Package.swift").read_text()
    # the record's runtime string, as the Swift RuntimeCheck.minimumIOS parses it ("iOS17 / macOS14" -> 17)
    tree = ast.parse(Path(coreml_backend.__file__).read_text())
    strings = [n for n in ast.walk(tree) if isinstance(n, ast.keyword) and n.arg == "runtime" and isinstance(n.value, ast.Dict)]
    value = next(v for d in strings for k, v in zip(d.value.keys, d.value.values)
                 if isinstance(k, ast.Constant) and k.value == "minimum_deployment_target")
    rendered = "".join(coreml_backend.DEPLOYMENT_TARGET if isinstance(p, ast.FormattedValue) else p.value for p in value.values)
    assert int(re.search(r"iOS(\d+)", rendered).group(1)) == major
    assert 't.range(of: "iOS")' in (CORE / "RuntimeCheck.swift").read_text()


# --- rules and constants ----------------------------------------------------------------------------

def swift_rules() -> dict[str, str]:
    src = (CORE / "Rules.swift").read_text()
    body = src[src.index("text: [String: String] = ["):]
    return {k: json.loads(f'"{v}"') for k, v in re.findall(r'^\s*"(\w+)": "((?:[^"\\]|\\.)*)",$', body, re.M)}


def test_the_swift_core_implements_the_vectors_rules():
    from anyir_core.tiling import DEFAULT_OVERLAP
    from mobile.vectors import FORMAT, INT8_IO, RULES
    assert swift_rules() == RULES
    assert f'vectorsFormat = "{FORMAT}"' in (CORE / "Rules.swift").read_text()
    pixels = _code(CORE / "Pixels.swift")
    scale = re.search(r"static let int8Scale: Float = ([0-9.]+) / ([0-9.]+)", pixels)
    assert np.float32(float(scale.group(1)) / float(scale.group(2))) == np.float32(INT8_IO["scale"])
    assert int(re.search(r"static let int8ZeroPoint = (-?\d+)", pixels).group(1)) == INT8_IO["zero_point"]
    # rounding and ranges as the rules name them
    assert "round_half_even" in RULES["quantize"] and ".rounded(.toNearestOrEven)" in pixels
    assert "q < -128 ? -128 : (q > 127 ? 127 : q)" in pixels
    assert "v / 255" in RULES["to_float"] and "Float(channel8) / 255" in pixels
    assert "* 255 + 0.5" in RULES["to_8bit"] and "UInt8(c * 255 + 0.5)" in pixels and "v < 0 ? 0 : (v > 1 ? 1 : v)" in pixels
    assert "reflect" in RULES["padding"] and "let period = 2 * (length - 1)" in pixels and "if length == 1 { return 0 }" in pixels
    plan = _code(CORE / "TilePlan.swift")
    assert "sin^2(pi/2*(t+0.5)/overlap)" in RULES["blend"] and "computed in float64, stored float32" in RULES["blend"]
    for expr in ("(Double(i) + 0.5) / Double(overlap)", "sin(0.5 * Double.pi * t)", "return s * s",
                 "Float(min(Double(w[j]), edge[overlap - 1 - i]))", "ry[k / tileW] * rx[k % tileW]",
                 "let n = 1 + (length - tile + step - 1) / step", "i * (length - tile) / (n - 1)"):
        assert expr in plan, expr
    restore = _code(CORE / "TiledRestore.swift")
    assert "acc[a + x] += out[o + x] * w[wRow + x]" in restore and "wsum[s + x] += w[wRow + x]" in restore
    assert "Pixels.to8bit(acc[s + x] / ws)" in restore
    # no overlap default of its own: the overlap always comes from the manifest (the build's, default
    # anyir_core.tiling.DEFAULT_OVERLAP) or the vectors
    for path in sorted((KIT / "Sources").rglob("*.swift")) + sorted(APP.rglob("*.swift")):
        code = _code(path)
        assert not re.search(r"overlap\s*:\s*Int\s*=", code), path
        assert not re.search(rf"overlap:\s*{DEFAULT_OVERLAP}\b", code), path
    assert "manifest.input.overlap" in _code(APP / "AnyIRDemo" / "RestoreModel.swift")
    assert "manifest.input.overlap" in _code(BENCH / "AnyIRBenchmarkTests.swift")


# --- the XCTests read what the bundle builder writes --------------------------------------------------

class _FakeRunner:
    """A stand-in artifact: a fixed per-pixel map (no runtime needed to write the vectors)."""

    def run_nchw(self, x: np.ndarray) -> np.ndarray:
        return np.clip(x * np.float32(0.9) + np.float32(0.05) - np.float32(0.1) * x[:, ::-1], 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def vectors(tmp_path_factory) -> Path:
    from mobile.vectors import write_vectors
    return write_vectors(tmp_path_factory.mktemp("ios-vectors") / "testvectors", {"x": _FakeRunner()}, (64, 64), 16)


def swift_test_keys() -> set[str]:
    """Keys the XCTests read from vectors.json (ManifestTests reads manifests, checked above)."""
    keys = set()
    for path in sorted(KIT_TESTS.glob("*.swift")):
        if path.name != "ManifestTests.swift":
            keys |= set(GETTER_CALL.findall(_code(path)))
    return keys


def test_xctests_read_only_keys_and_files_the_builder_writes(vectors):
    index = json.loads((vectors / "vectors.json").read_text())
    keys = swift_test_keys()
    # every kind of vector is read by some test
    assert {"format", "plans", "blend", "photo", "tile_inputs", "tile_input", "padding", "int8_io", "exif",
            "orientations", "outputs", "tile_outputs", "tile_output", "photo_restored", "rules", "dtype", "file",
            "shape", "standin", "restored", "int8_ties"} <= keys
    missing = sorted(keys - json_keys(index))
    assert missing == [], f"the XCTests read keys the vectors do not have: {missing}"
    dtypes = {v["dtype"] for v in _specs(index)}
    for dtype in re.findall(r'dtype: "([^"]+)"', (KIT_TESTS / "Vectors.swift").read_text()):
        assert dtype in dtypes, dtype
    for spec in _specs(index):  # every array file the index names exists with the size its shape says
        size = {"float32-le": 4, "uint8": 1, "int8": 1}[spec["dtype"]]
        assert (vectors / spec["file"]).stat().st_size == int(np.prod(spec["shape"])) * size, spec["file"]
    for out in index["outputs"].values():
        assert (vectors / out["photo_restored"]).is_file()
    assert (vectors / index["photo"]["png"]).is_file()
    assert [str(o) for o in range(1, 9)] == sorted(index["exif"]["orientations"])  # the test reads String(o) for o in 1...8
    assert re.search(r"for o in 1\.\.\.8", _code(KIT_TESTS / "ExifOrientationTests.swift"))


def _specs(index) -> list[dict]:
    out, stack = [], [index]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if {"file", "shape", "dtype"} <= node.keys():
                out.append(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return out


# --- the benchmark writes profile-1 -----------------------------------------------------------------

def _body(src: str, signature: str) -> str:
    """The text of one Swift function, from its signature to the next function at the same indent."""
    start = src.index(signature)
    indent = src.rfind("\n", 0, start)
    nxt = re.compile(r"\n" + re.escape(src[indent + 1:start]) + r"(?:static |private |public )*func ")
    m = nxt.search(src, start + len(signature))
    return src[start:m.start() if m else len(src)]


def test_the_benchmark_writes_profile_1_keys():
    from mobile import profile_ios
    schema = json.loads((ROOT / "mobile" / "schema" / "profile-1.schema.json").read_text())
    known = schema_names(schema)
    result_src = _code(BENCH / "ProfileResult.swift")
    bench_src = _code(BENCH / "AnyIRBenchmarkTests.swift")
    written = set(re.findall(r'"([a-z][a-z0-9_]*)":\s', result_src + bench_src))
    written |= set(re.findall(r'result\["([a-z_0-9]+)"\]\s*=', bench_src))
    assert {"schema", "target", "results", "latency", "p90", "peak_mb", "manifest_sha256", "compute_units"} <= written
    assert sorted(written - known) == [], "keys the profile-1 schema does not have"
    defs = schema["$defs"]
    parts = {"static func document(": schema["required"], "static func target(": defs["target"]["required"],
             "static func latency(": defs["latency"]["required"], "static func artifact(": defs["result"]["properties"]["artifact"]["required"],
             "static func memory(": defs["result"]["properties"]["memory"]["required"],
             "static func bundleInfo(": schema["properties"]["bundle"]["required"]}
    for signature, required in parts.items():
        body = _body(result_src, signature)
        for key in required:
            assert f'"{key}":' in body, f"{signature} does not write required {key}"
    for test in ("func bench(", "func test3_photo("):
        body = _body(bench_src, test)
        for key in defs["result"]["required"]:
            assert f'"{key}":' in body or f'result["{key}"]' in body, f"{test} does not write required {key}"
    photo = _body(bench_src, "func test3_photo(")
    for key in defs["result"]["properties"]["photo"]["required"]:
        assert f'"{key}":' in photo
    assert f'static let schema = "{schema["properties"]["schema"]["const"]}"' in result_src
    assert '"kind": "ios"' in result_src and '"reached_by": "xcodebuild"' in result_src
    # what the harness looks for
    name = re.search(r'static let attachmentName = "([^"]+)"', result_src).group(1)
    assert name == "anyir-profile.json" and name.startswith(profile_ios.ATTACHMENT)
    assert "attachment.lifetime = .keepAlways" in bench_src and 'uniformTypeIdentifier: "public.json"' in bench_src
    env = profile_ios.test_environment(SimpleNamespace(runs=5, warmup=1), [SimpleNamespace(id="x")])
    for var in env:
        assert f'env["{var.removeprefix("TEST_RUNNER_")}"]' in bench_src, var


def test_the_benchmark_scheme_and_test_names_are_the_harnesss():
    from mobile import profile_ios
    from mobile.bundle import PLATFORMS, BuildConfig, plan_variants
    project = _project()
    scheme = project["schemes"][profile_ios.SCHEME]
    assert scheme["test"]["targets"] == ["AnyIRBenchmarkTests"]
    assert project["targets"]["AnyIRBenchmarkTests"]["type"] == "bundle.unit-test"
    assert APP / f"{project['name']}.xcodeproj" == profile_ios.DEFAULT_PROJECT
    assert "com.apple.developer.kernel.increased-memory-limit" in project["targets"]["AnyIRDemo"]["entitlements"]["properties"]
    script = project["targets"]["AnyIRDemo"]["postBuildScripts"][0]["script"]
    assert "Scripts/copy_bundle.sh" in script and "ANYIR_BUNDLE" in (APP / "Scripts" / "copy_bundle.sh").read_text()
    # a default build's iOS artifacts each have a metric test named by the id ('-' as '_'), which is how
    # profile_ios.check_against_log pairs the log's XCTClockMetric lines with the attachment's results
    ids = {f"{b}-{p}" for b, p, lay in plan_variants(BuildConfig()) if "ios" in PLATFORMS.get(b, ()) and lay == "NCHW"}
    assert ids >= {"executorch-fp32", "executorch-int8", "coreml-fp16", "coreml-int8"}
    methods = re.findall(r"func (test\w+)\(\)", _code(BENCH / "AnyIRBenchmarkTests.swift"))
    for i in ids:
        assert any(i.replace("-", "_") in m for m in methods), i
    assert sorted(methods)[-1] == "test9_write_profile"  # XCTest runs methods by name: the attachment comes last


# --- the package's own tests, where Swift exists -------------------------------------------------------

def _raw_rgb_beside_pngs(folder: Path) -> None:
    """Linux has no ImageIO: the XCTests read `<png>.rgb` (H x W x 3 bytes) where it exists."""
    from PIL import Image
    for png in folder.glob("*.png"):
        with Image.open(png) as im:
            png.with_suffix(".rgb").write_bytes(np.asarray(im.convert("RGB"), dtype=np.uint8).tobytes())


@pytest.mark.skipif(shutil.which("swift") is None, reason="no Swift toolchain on this machine")
def test_swift_test_passes(vectors, tmp_path):
    folder = tmp_path / "testvectors"
    shutil.copytree(vectors, folder)
    _raw_rgb_beside_pngs(folder)
    r = subprocess.run(["swift", "test", "--package-path", str(KIT), "--scratch-path", str(tmp_path / "build")],
                       env={**os.environ, "ANYIR_TESTVECTORS": str(folder)}, capture_output=True, text=True, timeout=1800)
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-4000:]
    assert "Executed" in log
