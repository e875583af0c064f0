"""`anyir profile`: one result schema from the host, Android and iOS; the host profile of a real bundle, the
device parsers on the tools' real output formats (tests/data/profiling/, each fixture's source in its
README), the adb and xcodebuild drivers against stand-ins that log the command lines they are given, and
`anyir profile compare --into` keeping the bundle verifiable."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import random_model
from mobile.profiling import EAGER_ID, ProfileError, latency_stats, read_result, schema_errors

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data" / "profiling"
FAKES = Path(__file__).parent / "fakes"
TILE = 32


def anyir(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "mobile.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A small bundle with one artifact per runtime (no int8: no QAT needed)."""
    from anyir_core import save_checkpoint
    from mobile.bundle import BuildConfig, build
    d = tmp_path_factory.mktemp("prof")
    ck = d / "tiny.safetensors"
    save_checkpoint(random_model(scale=0.05), ck, "anyir-tiny")
    cfg = BuildConfig(checkpoint=str(ck), backends=["executorch", "tflite", "coreml"],
                      precisions={"executorch": ["fp32"], "tflite": ["fp32"], "coreml": ["fp16"]}, size=[TILE, TILE],
                      overlap=8, tasks=["noise25"], out=str(d / "dist"), repeats=1)
    return d, ck, build(cfg, quiet=True)


@pytest.fixture(scope="module")
def host_profile(bundle):
    d, ck, dest = bundle
    out = d / "host.json"
    r = anyir("profile", dest, "--runs", 4, "--warmup", 1, "--checkpoint", ck, "--out", out)
    assert r.returncode == 0, r.stderr
    return r, json.loads(out.read_text()), dest


def test_host_profile_covers_every_artifact_in_the_schema(host_profile):
    r, prof, dest = host_profile
    assert schema_errors(prof) == []
    m = json.loads((dest / "manifest.json").read_text())
    rows = {x["artifact"]["id"]: x for x in prof["results"]}
    assert list(rows) == [EAGER_ID] + [a["id"] for a in m["artifacts"]]
    for a in m["artifacts"]:  # every row names the exact file it measured
        assert rows[a["id"]]["artifact"]["sha256"] == a["sha256"] and rows[a["id"]]["status"] == "ok"
    assert rows[EAGER_ID]["artifact"]["sha256"] == m["model"]["checkpoint"]["sha256"]
    for x in prof["results"]:
        lat = x["latency"]
        assert lat["min"] <= lat["median"] <= lat["p90"] <= lat["max"] and lat["count"] >= 1
    pte = rows["executorch-fp32"]
    assert pte["ops"] and pte["ops_source"].startswith("ETDump") and abs(sum(o["share"] for o in pte["ops"]) - 1) < 0.01
    assert pte["latency"]["count"] == 4 and pte["load_ms"] > 0 and pte["memory"]["peak_mb"] > 0
    cm = rows["coreml-fp16"]  # never presented as Core ML latency
    assert cm["is_device_timing"] is False and "not Core ML latency" in cm["note"]
    assert rows["tflite-fp32-nhwc"]["ops"] is None and "no op profiler" in rows["tflite-fp32-nhwc"]["ops_source"]
    assert prof["bundle"]["name"] == m["name"] and prof["target"]["kind"] == "host"
    assert "not Core ML latency" in r.stdout and "executorch-fp32" in r.stdout  # the terminal table
    assert "cpuinfo" not in r.stderr and "threadpool" not in r.stderr  # runtime chatter stays in its log


def test_latency_statistics():
    t = [5.0, 1.0, 3.0, 2.0, 4.0, 10.0]
    s = latency_stats(t, warmup=2)
    assert (s["count"], s["warmup"], s["min"], s["median"], s["max"]) == (6, 2, 1.0, 3.5, 10.0)
    assert s["p90"] == pytest.approx(np.percentile(t, 90)) and s["p90"] == pytest.approx(7.5)
    assert s["mean"] == pytest.approx(np.mean(t), abs=1e-4) and s["std"] == pytest.approx(np.std(t), abs=1e-4)


def test_profile_errors_are_one_line(bundle, tmp_path):
    _, _, dest = bundle
    cases = [(["profile", tmp_path / "none"], "no such bundle or artifact"),
             (["profile", dest, "--artifact", "nope"], "has no artifact 'nope'"),
             (["profile", dest, "--runs", 0], "--runs must be at least 1"),
             (["profile", "compare"], "takes result files"),
             (["profile", "compare", tmp_path / "x.json"], "no such profile result")]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "anyir-mobile/profile/9"}))
    cases.append((["profile", "compare", bad], "is not 'anyir-mobile/profile/1'"))
    for args, msg in cases:
        r = anyir(*args)
        assert r.returncode == 2 and msg in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_changed_artifact_is_not_profiled(bundle, tmp_path):
    _, _, dest = bundle
    copy = tmp_path / "b"
    shutil.copytree(dest, copy)
    pte = next((copy / "android").glob("*.pte"))
    pte.write_bytes(pte.read_bytes()[:-10] + b"0123456789")
    r = anyir("profile", copy, "--artifact", "executorch-fp32", "--no-reference")
    assert r.returncode == 2 and "checksum differs" in r.stderr


def test_compare_table_plot_and_into_bundle(host_profile, tmp_path):
    _, prof, dest = host_profile
    bundle = tmp_path / dest.name
    shutil.copytree(dest, bundle)
    other = json.loads(json.dumps(prof))
    other["target"].update(kind="android", reached_by="adb serial=X1", device_model="Google Pixel 8", os="Android 15",
                           cpu="zuma")
    other["results"] = [x for x in other["results"] if x["artifact"]["id"] == "executorch-fp32"]
    f1, f2 = tmp_path / "host.json", tmp_path / "pixel.json"
    f1.write_text(json.dumps(prof))
    f2.write_text(json.dumps(other))
    r = anyir("profile", "compare", f1, f2, "--plot", tmp_path / "cmp.png", "--into", bundle)
    assert r.returncode == 0, r.stderr
    header = r.stdout.splitlines()[0]
    assert "host" in header and "Google Pixel 8" in header and "top 10 ops" in r.stdout
    assert (tmp_path / "cmp.png").stat().st_size > 10_000
    v = anyir("bundle", "verify", bundle)
    assert v.returncode == 0, v.stderr
    m = json.loads((bundle / "manifest.json").read_text())
    assert [p["target"] for p in m["profiles"]] == ["host", "android"]
    assert all((bundle / p["file"]).is_file() for p in m["profiles"])
    assert "Profile: Google Pixel 8" in (bundle / "report.md").read_text()
    again = anyir("profile", "compare", f2, "--into", bundle)  # the same result twice: refused, bundle unchanged
    assert again.returncode == 2 and "already in" in again.stderr
    assert anyir("bundle", "verify", bundle).returncode == 0
    alien = json.loads(json.dumps(other))
    alien["results"][0]["artifact"]["sha256"] = "0" * 64
    f3 = tmp_path / "alien.json"
    f3.write_text(json.dumps(alien))
    r = anyir("profile", "compare", f3, "--into", bundle)
    assert r.returncode == 2 and "not an artifact of" in r.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging copy left


# --- Android: parsers on the tools' real formats, the driver against a stand-in adb ------------------------

def test_adb_devices_parsing_and_choice():
    from mobile.profile_android import choose_device, parse_devices
    devs = parse_devices((DATA / "adb_devices.txt").read_text())
    assert [(d["serial"], d["state"]) for d in devs] == [("R5CT1234ABC", "device"), ("emulator-5554", "device"),
                                                         ("0A1B2C3D", "unauthorized"), ("192.168.1.7:5555", "offline")]
    assert devs[0]["model"] == "SM_S911B"
    with pytest.raises(ProfileError, match="4 devices are attached: R5CT1234ABC .*--serial"):
        choose_device(devs, None)
    assert choose_device(devs, "emulator-5554") == "emulator-5554"
    with pytest.raises(ProfileError, match="unauthorized: unlock it and accept the USB debugging prompt"):
        choose_device(devs, "0A1B2C3D")
    with pytest.raises(ProfileError, match="is offline"):
        choose_device(devs, "192.168.1.7:5555")
    with pytest.raises(ProfileError, match="no device with serial 'X'"):
        choose_device(devs, "X")
    with pytest.raises(ProfileError, match="no Android device is attached"):
        choose_device(parse_devices("List of devices attached\n\n"), None)


def test_benchmark_model_output_parsing():
    from mobile.profile_android import parse_benchmark_model
    p = parse_benchmark_model((DATA / "benchmark_model_op_profiling.txt").read_text())
    want = json.loads((DATA / "benchmark_model_op_profiling.expected.json").read_text())
    assert p["init_ms"] == pytest.approx(want["init_ms"]) and p["first_ms"] == pytest.approx(want["first_ms"])
    for k, v in want["latency"].items():
        assert p["latency"][k] == pytest.approx(v), k
    assert p["memory"]["peak_mb"] == pytest.approx(want["peak_mb"])
    assert [(o["name"], o["count"]) for o in p["ops"]] == [tuple(x) for x in want["ops"]]
    with pytest.raises(ProfileError, match="printed no timings"):
        parse_benchmark_model("INFO: ... \nERROR: Failed to allocate tensors!\n")


@pytest.fixture
def fake_phone(tmp_path, bundle):
    """A stand-in adb on PATH with one authorized phone, and a real ETDump from the bundle's .pte."""
    _, _, dest = bundle
    state = tmp_path / "phone"
    state.mkdir()
    (state / "devices.txt").write_text("List of devices attached\nR5CT1234ABC    device usb:1-1 product:dm1qxxx "
                                       "model:SM_S911B device:dm1q transport_id:3\n\n")
    (state / "getprop.txt").write_text((DATA / "getprop.txt").read_text())
    (state / "benchmark_model.txt").write_text((DATA / "benchmark_model_op_profiling.txt").read_text())
    from conversion.base import read_record
    from executorch.runtime import Runtime
    pte = next((dest / "android").glob("*.pte"))
    prog = Runtime.get().load_program(str(pte), enable_etdump=True, debug_buffer_size=0)
    meth = prog.load_method("forward")
    import torch
    x = torch.rand(read_record(pte).input.shape)
    for _ in range(5):
        meth.execute([x])
    prog.write_etdump_result_to_file(str(state / "etdump.bin"), str(tmp_path / "debug.bin"))
    bins = tmp_path / "bins"
    bins.mkdir()
    (bins / "benchmark_model").write_bytes(b"\x7fELF")
    (bins / "executor_runner").write_bytes(b"\x7fELF")
    env = {"FAKE_ADB_STATE": str(state), "PATH": f"{FAKES}{os.pathsep}{os.environ['PATH']}"}
    return state, bins, env, dest


def _log(state):
    return [json.loads(ln) for ln in (state / "log.jsonl").read_text().splitlines()]


def test_android_profile_through_adb(fake_phone, tmp_path):
    state, bins, env, dest = fake_phone
    out = tmp_path / "pixel.json"
    r = anyir("profile", dest, "--target", "android", "--benchmark-model", bins / "benchmark_model",
              "--executor-runner", bins / "executor_runner", "--runs", 4, "--warmup", 1, "--threads", 2,
              "--out", out, env=env)
    assert r.returncode == 0, r.stderr
    prof = read_result(out)
    assert prof["target"]["kind"] == "android" and prof["target"]["device_model"] == "samsung SM-S911B"
    assert prof["target"]["os"] == "Android 14 (API 34)" and prof["target"]["abi"] == "arm64-v8a"
    rows = {x["runner"]: x for x in prof["results"]}
    tfl, pte = rows["benchmark_model"], rows["executor_runner"]
    assert tfl["artifact"]["id"] == "tflite-fp32-nhwc" and tfl["latency"]["mean"] > 0 and tfl["ops"]
    assert pte["artifact"]["id"] == "executorch-fp32" and pte["latency"]["count"] == 4 and pte["ops"]
    cmds = [" ".join(c) for c in _log(state)]
    root = "/data/local/tmp/anyir/anyir-tiny-0.1.0"
    assert f"-s R5CT1234ABC push {bins / 'benchmark_model'} /data/local/tmp/anyir/bin/benchmark_model" in cmds
    assert f"-s R5CT1234ABC shell chmod 755 /data/local/tmp/anyir/bin/executor_runner" in cmds
    bm = next(c for c in cmds if "bin/benchmark_model --graph" in c)
    assert bm == (f"-s R5CT1234ABC shell /data/local/tmp/anyir/bin/benchmark_model "
                  f"--graph={root}/android/anyir-tiny-tflite-fp32-{TILE}x{TILE}-nhwc.tflite --num_threads=2 --warmup_runs=1 "
                  "--num_runs=4 --min_secs=0 --use_xnnpack=true --report_peak_memory_footprint=true "
                  "--enable_op_profiling=true")
    er = next(c for c in cmds if "bin/executor_runner --model_path" in c)
    pte_remote = f"{root}/android/anyir-tiny-executorch-fp32-{TILE}x{TILE}.pte"
    assert er == (f"-s R5CT1234ABC shell /data/local/tmp/anyir/bin/executor_runner --model_path={pte_remote} "
                  f"--num_executions=5 --cpu_threads=2 --etdump_path={pte_remote}.etdump 2>&1")
    assert f"-s R5CT1234ABC pull {pte_remote}.etdump" in " ".join(cmds)


def test_android_demo_benchmark_mode_result_is_pulled_and_checked(fake_phone, tmp_path, host_profile):
    state, bins, env, dest = fake_phone
    _, prof, _ = host_profile
    app = json.loads(json.dumps(prof))  # what the app writes: the same schema, its own target and runner
    app["writer"] = "AnyIR Android demo 0.1.0 (benchmark mode)"
    app["target"].update(kind="android", reached_by="app", device_model="samsung SM-S911B", os="Android 14 (API 34)")
    app["results"] = [dict(x, runner="android demo", photo={"width": 4000, "height": 3000, "tiles": 252,
                                                           "total_ms": 51234.0, "ms_per_tile": 203.3, "peak_mb": 310.0})
                      for x in app["results"] if x["artifact"]["id"] in ("executorch-fp32", "tflite-fp32-nhwc")]
    (state / "app_result.json").write_text(json.dumps(app))
    out = tmp_path / "app.json"
    r = anyir("profile", dest, "--target", "android", "--app", "--runs", 3, "--out", out, env=env)
    assert r.returncode == 0, r.stderr
    res = read_result(out)["results"]
    assert {x["runner"] for x in res} == {"android demo"} and res[0]["photo"]["tiles"] == 252
    start = next(" ".join(c) for c in _log(state) if "am start" in " ".join(c))
    assert "-n ai.anyir.demo/.BenchmarkActivity" in start and "-e bundle_dir /data/local/tmp/anyir/anyir-tiny-0.1.0" in start
    assert "--ei runs 3" in start and "-e artifacts executorch-fp32,tflite-fp32-nhwc" in start
    pushed = state / "device" / "data/local/tmp/anyir/anyir-tiny-0.1.0"
    assert (pushed / "manifest.json").read_bytes() == (dest / "manifest.json").read_bytes()  # byte for byte
    assert (pushed / "testvectors" / "photo.png").is_file()  # the app's default whole photo
    (state / "app_error.txt").write_text("artifacts: unknown id 'x'\n")
    r = anyir("profile", dest, "--target", "android", "--app", env=env)
    assert r.returncode == 2 and "the Android demo refused the run: artifacts: unknown id 'x'" in r.stderr
    (state / "app_error.txt").unlink()
    app["results"][0]["artifact"]["sha256"] = "f" * 64  # an app built with another bundle
    (state / "app_result.json").write_text(json.dumps(app))
    r = anyir("profile", dest, "--target", "android", "--app", env=env)
    assert r.returncode == 2 and "profiled a different executorch-fp32" in r.stderr


def test_android_failures_are_one_line(fake_phone, tmp_path):
    state, bins, env, dest = fake_phone
    no_adb = {**env, "PATH": str(tmp_path / "empty")}
    two = "List of devices attached\nAAA device model:Pixel_8\nBBB device model:Pixel_7a\n"
    unauth = "List of devices attached\nAAA unauthorized usb:1-1 transport_id:2\n"
    cases = [
        (no_adb, ["--benchmark-model", bins / "benchmark_model"], None, "adb is not on PATH"),
        (env, ["--benchmark-model", tmp_path / "missing"], None, "no such file"),
        (env, [], None, "nothing to run on the phone"),
        (env, ["--app"], "List of devices attached\n\n", "no Android device is attached"),
        (env, ["--app"], two, "2 devices are attached: AAA (Pixel 8), BBB (Pixel 7a); choose one with --serial"),
        (env, ["--app"], unauth, "AAA is unauthorized"),
        (env, ["--app", "--serial", "CCC"], two, "no device with serial 'CCC'"),
        (env, ["--app"], "List of devices attached\nAAA device model:Pixel_8\n",
         "the Android demo (ai.anyir.demo) is not installed"),
    ]
    for e, extra, devices, msg in cases:
        if devices is not None:
            (state / "devices.txt").write_text(devices)
        r = anyir("profile", dest, "--target", "android", *extra, env=e)
        assert r.returncode == 2 and msg in r.stderr, (extra, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.skipif(shutil.which("adb") is None, reason="Debian's adb is not installed (.ci/run installs it)")
def test_real_adb_with_no_device_is_one_line(bundle, tmp_path):
    """The real adb (Debian's package; no phone on these machines): the harness says no device is attached."""
    _, _, dest = bundle
    try:
        r = anyir("profile", dest, "--target", "android", "--app", "--adb", shutil.which("adb"))
        assert r.returncode == 2, r.stderr
        assert r.stderr.strip() == ("anyir: error: no Android device is attached: connect one with USB debugging on "
                                    "(`adb devices` lists none)"), r.stderr
    finally:
        subprocess.run([shutil.which("adb"), "kill-server"], capture_output=True, timeout=30)


# --- iOS: the xcodebuild log, the exported attachment, the driver ----------------------------------------------

def test_xcodebuild_metrics_and_outcome_parsing():
    from mobile.profile_ios import parse_metrics, test_outcome
    log = (DATA / "xcodebuild_test.log").read_text()
    m = parse_metrics(log)
    want = json.loads((DATA / "xcodebuild_test.expected.json").read_text())
    assert [(x["test"], x["metric"], x["average"], len(x["values"])) for x in m] == [tuple(w) for w in want]
    assert test_outcome(log) is None
    assert "failed" in (test_outcome((DATA / "xcodebuild_test_failed.log").read_text()) or "")


def _xcresult(tmp_path, result: dict) -> tuple[Path, dict]:
    """A stand-in xcrun whose `xcresulttool export attachments` writes the exported files and manifest.json
    in the layout of tests/data/profiling/xcresulttool_manifest.json."""
    xc = tmp_path / "run.xcresult"
    xc.mkdir()
    (xc / "payload.json").write_text(json.dumps(result))
    bindir = tmp_path / "xbin"
    bindir.mkdir()
    manifest = (DATA / "xcresulttool_manifest.json").read_text()
    script = bindir / "xcrun"
    script.write_text(f"""#!{sys.executable}
import json, shutil, sys
from pathlib import Path
a = sys.argv[1:]
assert a[:3] == ["xcresulttool", "export", "attachments"], a
src, out = Path(a[a.index("--path") + 1]), Path(a[a.index("--output-path") + 1])
m = json.loads({manifest!r})
for t in m:
    for att in t["attachments"]:
        if att["suggestedHumanReadableName"].startswith("anyir-profile"):
            shutil.copy(src / "payload.json", out / att["exportedFileName"])
        else:
            (out / att["exportedFileName"]).write_bytes(b"screenshot")
(out / "manifest.json").write_text(json.dumps(m))
""")
    script.chmod(0o755)
    return xc, {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}


def test_ios_profile_from_a_result_bundle(host_profile, tmp_path):
    _, prof, dest = host_profile
    res = json.loads(json.dumps(prof))
    res["writer"] = "AnyIR iOS demo 0.1.0 (AnyIRBenchmarkTests)"
    res["target"].update(kind="ios", reached_by="xcodebuild destination=platform=iOS,name=iPhone", device_model="iPhone16,1",
                         os="iOS 18.1", cpu="Apple A17 Pro")
    res["results"] = [dict(x, runner="ios demo (XCTest)", runtime={**x["runtime"], "compute_units": "cpuAndNeuralEngine"},
                           is_device_timing=True) for x in res["results"] if x["artifact"]["id"] == "coreml-fp16"]
    xc, env = _xcresult(tmp_path, res)
    out = tmp_path / "iphone.json"
    r = anyir("profile", dest, "--target", "ios", "--xcresult", xc, "--out", out, env=env)
    assert r.returncode == 0, r.stderr
    got = read_result(out)
    assert got["target"]["kind"] == "ios" and got["results"][0]["runtime"]["compute_units"] == "cpuAndNeuralEngine"
    res["results"][0]["artifact"]["sha256"] = "e" * 64
    (tmp_path / "b").mkdir()
    xc2, env = _xcresult(tmp_path / "b", res)
    r = anyir("profile", dest, "--target", "ios", "--xcresult", xc2, env=env)
    assert r.returncode == 2 and "profiled a different coreml-fp16" in r.stderr


def test_ios_profile_runs_xcodebuild_and_checks_its_log(host_profile, tmp_path):
    """The driver against stand-ins for xcodebuild (prints a log in the real format, writes the result bundle)
    and xcrun: the command line, the settings passed to the test process, and the log cross-check."""
    _, prof, dest = host_profile
    res = json.loads(json.dumps(prof))
    res["target"].update(kind="ios", reached_by="xcodebuild", device_model="iPhone16,1", os="iOS 18.1", cpu="A17 Pro")
    row = next(x for x in res["results"] if x["artifact"]["id"] == "coreml-fp16")
    row.update(runner="ios demo (XCTest)", is_device_timing=True, note=None,
               runtime={**row["runtime"], "compute_units": "cpuAndNeuralEngine"},
               latency={**row["latency"], "min": 12.1, "median": 12.16, "p90": 12.17, "max": 12.2})
    res["results"] = [row]
    xc_dir = tmp_path / "xc"
    xc_dir.mkdir()
    _, env = _xcresult(xc_dir, res)
    project = tmp_path / "AnyIRDemo.xcodeproj"
    project.mkdir()
    fake = Path(env["PATH"].split(os.pathsep)[0]) / "xcodebuild"
    fake.write_text(f"""#!{sys.executable}
import json, os, shutil, sys
from pathlib import Path
a = sys.argv[1:]
Path({str(tmp_path / 'xcodebuild.json')!r}).write_text(json.dumps({{"argv": a, "runs": os.environ.get("TEST_RUNNER_ANYIR_RUNS"),
    "artifacts": os.environ.get("TEST_RUNNER_ANYIR_ARTIFACTS")}}))
out = Path(a[a.index("-resultBundlePath") + 1])
out.mkdir(parents=True)
shutil.copy({str(xc_dir / 'run.xcresult' / 'payload.json')!r}, out / "payload.json")
print(open({str(DATA / 'xcodebuild_test.log')!r}).read())
""")
    fake.chmod(0o755)
    out = tmp_path / "iphone.json"
    r = anyir("profile", dest, "--target", "ios", "--device", "iPhone 15 Pro", "--project", project, "--runs", 7,
              "--out", out, env={**env, "ANYIR_DEVELOPMENT_TEAM": "ABCDE12345"})
    assert r.returncode == 0, r.stderr
    call = json.loads((tmp_path / "xcodebuild.json").read_text())
    a = call["argv"]
    assert a[:7] == ["test", "-project", str(project), "-scheme", "AnyIRBenchmark", "-destination",
                     "platform=iOS,name=iPhone 15 Pro"]
    assert a[7] == "-resultBundlePath" and a[9:] == [f"ANYIR_BUNDLE={dest.resolve()}", "DEVELOPMENT_TEAM=ABCDE12345"]
    assert call["runs"] == "7" and call["artifacts"] == "executorch-fp32,coreml-fp16"  # the bundle's iOS artifacts
    assert read_result(out)["results"][0]["latency"]["median"] == 12.16
    row["latency"]["median"] = 120.0  # the attachment disagrees with the log's XCTClockMetric values: refused
    (xc_dir / "run.xcresult" / "payload.json").write_text(json.dumps(res))
    r = anyir("profile", dest, "--target", "ios", "--device", "iPhone 15 Pro", "--project", project, env=env)
    assert r.returncode == 2 and "outside the log's XCTClockMetric values" in r.stderr, r.stderr


def test_ios_failures_are_one_line(bundle, tmp_path):
    _, _, dest = bundle
    empty = {"PATH": str(tmp_path)}
    for extra, msg in [([], "xcodebuild/xcrun not found"), (["--xcresult", tmp_path / "no.xcresult"], "no such result")]:
        r = anyir("profile", dest, "--target", "ios", *extra, env=empty)
        assert r.returncode == 2 and msg in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    from mobile.profile_ios import find_attachment
    (tmp_path / "manifest.json").write_text("[]")
    with pytest.raises(ProfileError, match="attached no anyir-profile.json"):
        find_attachment(tmp_path)
