"""`anyir profile BUNDLE --target ios`: the iOS demo's benchmark XCTest on a named device or simulator.

`xcodebuild test -scheme AnyIRBenchmark` builds the demo with the bundle copied in (ANYIR_BUNDLE build
setting), runs the benchmark test (XCTClockMetric / XCTMemoryMetric per artifact and compute-units choice, then
one whole photo through the tiled path), and the test attaches its profile-1 result as `anyir-profile.json`.
The attachment is exported from the result bundle with `xcrun xcresulttool export attachments` (Xcode 16+),
checked against the schema and against the bundle's checksums. The `measured [...]` lines of the xcodebuild
log are parsed too, and a result whose numbers disagree with them is refused.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .profiling import ProfileError, check_same_files, read_result, select

SCHEME = "AnyIRBenchmark"
ATTACHMENT = "anyir-profile"  # the attachment's name; xcresulttool may add a suffix to the exported file
DEFAULT_PROJECT = Path(__file__).resolve().parents[1] / "ios_demo" / "AnyIRDemo" / "AnyIRDemo.xcodeproj"
METRIC = re.compile(r"Test Case '-\[(?P<cls>[\w.]+) (?P<test>\w+)\]' measured \[(?P<metric>[^\]]+)\] "
                    r"average: (?P<avg>[0-9.]+), relative standard deviation: (?P<rsd>[0-9.]+)%, "
                    r"values: \[(?P<values>[^\]]*)\]")


def parse_metrics(log: str) -> list[dict]:
    """xcodebuild's `measured [Clock Monotonic Time, s] average: ...` lines -> one dict per test and metric."""
    out = []
    for m in METRIC.finditer(log):
        values = [float(v) for v in m.group("values").split(",") if v.strip()]
        out.append({"test": f"{m.group('cls')}.{m.group('test')}", "metric": m.group("metric"),
                    "average": float(m.group("avg")), "rsd_percent": float(m.group("rsd")), "values": values})
    return out


def test_outcome(log: str) -> str | None:
    """The failing test's message, or None when xcodebuild reported success."""
    if "** TEST SUCCEEDED **" in log:
        return None
    fails = re.findall(r"error: -\[([\w.]+ \w+)\] : (.*)", log)
    if fails:
        return f"{fails[0][0]}: {fails[0][1][:200]}"
    tail = [ln for ln in log.splitlines() if ln.strip()][-3:]
    return " / ".join(tail)[-300:] or "xcodebuild printed nothing"


def find_attachment(export_dir: Path) -> Path:
    """The exported profile attachment, located through the manifest.json xcresulttool writes beside them."""
    mpath = export_dir / "manifest.json"
    if not mpath.is_file():
        raise ProfileError(f"{export_dir}: xcresulttool wrote no manifest.json (Xcode 16 or newer is needed)")
    try:
        tests = json.loads(mpath.read_text())
    except json.JSONDecodeError as e:
        raise ProfileError(f"{mpath}: not JSON ({e.msg})") from None
    found = []
    for test in tests if isinstance(tests, list) else []:
        for a in test.get("attachments", []):
            name = a.get("suggestedHumanReadableName", "")
            if name.startswith(ATTACHMENT):
                found.append((test.get("testIdentifier", "?"), export_dir / a["exportedFileName"]))
    if not found:
        raise ProfileError(f"the test run attached no {ATTACHMENT}.json (did the AnyIRBenchmark test run? "
                           "see the xcodebuild log)")
    if len(found) > 1:
        raise ProfileError(f"{len(found)} {ATTACHMENT} attachments in one result bundle "
                           f"({', '.join(t for t, _ in found)}); profile one destination at a time")
    return found[0][1]


def xcodebuild_command(project: Path, destination: str, result_bundle: Path, bundle_dir: Path,
                       team: str | None = None) -> list[str]:
    """The run; `team` (ANYIR_DEVELOPMENT_TEAM) signs for a device, where a simulator needs none."""
    return ["xcodebuild", "test", "-project", str(project), "-scheme", SCHEME, "-destination", destination,
            "-resultBundlePath", str(result_bundle), f"ANYIR_BUNDLE={bundle_dir.resolve()}",
            *([f"DEVELOPMENT_TEAM={team}"] if team else [])]


def test_environment(args, targets) -> dict:
    """Settings reach the test process through xcodebuild's TEST_RUNNER_ prefix (the prefix is removed)."""
    return {"TEST_RUNNER_ANYIR_RUNS": str(args.runs), "TEST_RUNNER_ANYIR_WARMUP": str(args.warmup),
            "TEST_RUNNER_ANYIR_ARTIFACTS": ",".join(t.id for t in targets)}


def export_attachments(xcresult: Path, out: Path) -> Path:
    cmd = ["xcrun", "xcresulttool", "export", "attachments", "--path", str(xcresult), "--output-path", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise ProfileError(f"xcresulttool could not export attachments: {(r.stderr or r.stdout).strip()[:200]}")
    return find_attachment(out)


def check_against_log(result: dict, metrics: list[dict]) -> None:
    """The attachment's clock medians must sit within the spread of the log's XCTClockMetric values."""
    clocks = [m for m in metrics if m["metric"].startswith("Clock Monotonic Time")]
    for r in result["results"]:
        lat = r.get("latency") or {}
        units = r["runtime"].get("compute_units")  # the test is named test<N>_<id with _>[_<compute units>]
        tag = r["artifact"]["id"].replace("-", "_") + (f"_{units}" if units else "")
        tagged = [m for m in clocks if m["test"].endswith(tag)]
        if len(tagged) == 1 and lat.get("median") and tagged[0]["values"]:
            lo, hi = min(tagged[0]["values"]) * 1e3, max(tagged[0]["values"]) * 1e3
            if not (0.5 * lo <= lat["median"] <= 2.0 * hi):
                raise ProfileError(f"{r['artifact']['id']}: the attachment's median {lat['median']:.1f} ms is outside "
                                   f"the log's XCTClockMetric values ({lo:.1f}-{hi:.1f} ms)")


def profile_ios(args) -> dict:
    bundle, targets, _ = select(args.source, args.artifact, platform_name="ios")
    if args.xcresult:
        xcresult, log = Path(args.xcresult), ""
        if not xcresult.exists():
            raise ProfileError(f"{xcresult}: no such result bundle")
    else:
        if not shutil.which("xcodebuild") or not shutil.which("xcrun"):
            raise ProfileError("xcodebuild/xcrun not found: iOS profiling runs on a Mac with Xcode 16 or newer "
                               "(or pass --xcresult R.xcresult from one)")
        if not (args.device or args.destination):
            raise ProfileError("name the iPhone or simulator: --device 'iPhone 15 Pro' (`xcrun xctrace list devices`) "
                               "or --destination 'platform=iOS Simulator,name=iPhone 16'")
        project = Path(args.project) if args.project else DEFAULT_PROJECT
        if not project.exists():
            spec = project.parent / "project.yml"
            hint = f"generate it with `xcodegen generate` in {spec.parent}" if spec.is_file() else "see ios_demo/README.md"
            raise ProfileError(f"{project}: no Xcode project; {hint}")
        if bundle is None:
            raise ProfileError("--target ios profiles a bundle (the app loads artifacts through its manifest)")
        destination = args.destination or f"platform=iOS,name={args.device}"
        work = Path(tempfile.mkdtemp(prefix="anyir-ios-"))
        xcresult = work / "run.xcresult"
        cmd = xcodebuild_command(project, destination, xcresult, Path(args.source),
                                 team=os.environ.get("ANYIR_DEVELOPMENT_TEAM"))
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout,
                               env={**os.environ, **test_environment(args, targets)})
        except subprocess.TimeoutExpired:
            raise ProfileError(f"xcodebuild test did not finish in {args.timeout} s (--timeout)") from None
        log = r.stdout + r.stderr
        (work / "xcodebuild.log").write_text(log)
        failure = test_outcome(log)
        if r.returncode != 0 or failure:
            raise ProfileError(f"xcodebuild test failed: {failure} (log: {work / 'xcodebuild.log'})")
    with tempfile.TemporaryDirectory() as tmp:
        result = read_result(export_attachments(xcresult, Path(tmp)))
    check_same_files(result["results"], targets, "rebuild the app with this bundle")
    check_against_log(result, parse_metrics(log))
    if bundle is not None:
        result["bundle"] = bundle
    return result
