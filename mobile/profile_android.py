"""`anyir profile BUNDLE --target android`: a phone reached over adb, measured by the runtimes' own tools.

- `.tflite`: LiteRT's `benchmark_model` (--benchmark-model PATH, a binary for the phone's ABI), op profiling on;
  its stdout is parsed (timings, memory footprint, the "Summary by node type" table).
- `.pte`: ExecuTorch's `executor_runner` built with the event tracer (--executor-runner PATH); it writes an
  ETDump that is pulled and read by the same code as the host's (per-op table and per-run times).
- `--app`: the Android demo's benchmark mode (android_demo/README.md), which writes a profile-1 result of its
  own, with the whole-photo figure; it is pulled, checked against the schema and merged.

Files go to /data/local/tmp/anyir/<bundle>/ (adb's shell user may write and execute there). Nothing here
assumes a device: every adb answer is parsed, and every way it can go wrong (no adb, no device, an
unauthorized one, several and no --serial, a missing binary, a run that prints no result) is one clear line.
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .profiling import (ProfileError, check_same_files, latency_stats, new_profile, ops_table, read_result,
                        select)

DEVICE_DIR = "/data/local/tmp/anyir"
APP_ID = "ai.anyir.demo"
APP_ACTIVITY = f"{APP_ID}/.BenchmarkActivity"
APP_FILES = f"/sdcard/Android/data/{APP_ID}/files"
APP_RESULT = "anyir-profile.json"
US = 1e-3  # benchmark_model reports microseconds


# --- adb -----------------------------------------------------------------------------------------------

def find_adb(path: str | None) -> str:
    exe = path or shutil.which("adb")
    if not exe or not Path(exe).exists():
        where = f"{path} does not exist" if path else "adb is not on PATH"
        raise ProfileError(f"{where}: install Android platform-tools (Debian: apt-get install adb) or pass --adb PATH")
    return exe


def parse_devices(text: str) -> list[dict]:
    """`adb devices -l` -> [{serial, state, model, ...}] (the header and daemon notices skipped)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("List of devices", "*")) or line.startswith("adb server"):
            continue
        m = re.match(r"^(\S+)\s+(device|unauthorized|offline|no permissions|recovery|sideload|bootloader|authorizing"
                     r"|connecting|unknown)\b(.*)$", line)
        if not m:
            continue
        info = dict(kv.split(":", 1) for kv in m.group(3).split() if ":" in kv)
        out.append({"serial": m.group(1), "state": m.group(2), **info})
    return out


def choose_device(devices: list[dict], serial: str | None) -> str:
    def name(d):
        return f"{d['serial']} ({d.get('model', d['state']).replace('_', ' ')})"
    if serial:
        d = next((d for d in devices if d["serial"] == serial), None)
        if d is None:
            have = ", ".join(name(d) for d in devices) or "none"
            raise ProfileError(f"no device with serial {serial!r} is attached (attached: {have})")
    else:
        if not devices:
            raise ProfileError("no Android device is attached: connect one with USB debugging on "
                               "(`adb devices` lists none)")
        if len(devices) > 1:
            raise ProfileError(f"{len(devices)} devices are attached: {', '.join(name(d) for d in devices)}; "
                               "choose one with --serial")
        d = devices[0]
    if d["state"] == "no permissions":
        raise ProfileError(f"adb has no permission to open device {d['serial']} (USB udev rules): see "
                           "developer.android.com/tools/device")
    if d["state"] == "unauthorized":
        raise ProfileError(f"device {d['serial']} is unauthorized: unlock it and accept the USB debugging prompt, "
                           "then run again")
    if d["state"] != "device":
        raise ProfileError(f"device {d['serial']} is {d['state']}, not ready: reconnect it (`adb devices`)")
    return d["serial"]


class Adb:
    def __init__(self, exe: str, serial: str | None = None, timeout: int = 900):
        self.exe, self.serial, self.timeout = exe, serial, timeout
        self.log: list[list[str]] = []  # every command run, for the record and the tests

    def run(self, *args: str, timeout: int | None = None, check: bool = True) -> str:
        cmd = [self.exe, *(["-s", self.serial] if self.serial else []), *args]
        self.log.append(cmd)
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout or self.timeout)
        except subprocess.TimeoutExpired:
            raise ProfileError(f"`{' '.join(args[:3])}` on the device did not finish in {timeout or self.timeout} s "
                               "(--timeout)") from None
        if check and r.returncode != 0:
            msg = (r.stderr.strip() or r.stdout.strip() or f"exit {r.returncode}").splitlines()[-1]
            raise ProfileError(f"adb {' '.join(args[:2])} failed: {msg[:200]}")
        return r.stdout

    def shell(self, command: str, timeout: int | None = None, check: bool = True) -> str:
        return self.run("shell", command, timeout=timeout, check=check)

    def push(self, local: Path, remote: str) -> None:
        self.run("push", str(local), remote)

    def pull(self, remote: str, local: Path) -> None:
        self.run("pull", remote, str(local))


def connect(args) -> Adb:
    exe = find_adb(args.adb)
    probe = Adb(exe, None, timeout=60)
    serial = choose_device(parse_devices(probe.run("devices", "-l")), args.serial)
    return Adb(exe, serial, timeout=args.timeout)


def device_target(adb: Adb) -> dict:
    props = {}
    for line in adb.shell("getprop").splitlines():  # "[ro.product.model]: [Pixel 8]"
        m = re.match(r"^\[([^\]]+)\]: \[(.*)\]$", line.strip())
        if m:
            props[m.group(1)] = m.group(2)
    soc = " ".join(x for x in (props.get("ro.soc.manufacturer"), props.get("ro.soc.model")) if x) or None
    cores = adb.shell("cat /sys/devices/system/cpu/present", check=False).strip()  # "0-7"
    m = re.match(r"^0-(\d+)$", cores)
    return {"kind": "android", "reached_by": f"adb serial={adb.serial}",
            "device_model": " ".join(x for x in (props.get("ro.product.manufacturer"), props.get("ro.product.model")) if x)
            or "unknown",
            "os": f"Android {props.get('ro.build.version.release', '?')} (API {props.get('ro.build.version.sdk', '?')})",
            "cpu": props.get("ro.board.platform") or props.get("ro.hardware") or "unknown", "soc": soc,
            "cores": int(m.group(1)) + 1 if m else None, "abi": props.get("ro.product.cpu.abi")}


# --- LiteRT benchmark_model -------------------------------------------------------------------------------

def _num(text: str, key: str) -> float | None:
    m = re.search(rf"\b{re.escape(key)}[=:]\s*(-?[0-9.]+(?:e[-+]?\d+)?)", text)
    return float(m.group(1)) if m else None


def parse_benchmark_model(text: str) -> dict:
    """benchmark_model's stdout -> {init_ms, first_ms, latency (count/min/max/mean/std; median/p90 where
    printed), peak_mb, ops}. Raises ProfileError naming the tool's own error when it printed no timings."""
    timing = re.search(r"Inference timings in us: (.*)", text)
    if not timing:
        errs = [ln.strip() for ln in text.splitlines() if re.search(r"\b(ERROR|Error|error|Failed|failed)\b", ln)]
        raise ProfileError("benchmark_model printed no timings" + (f": {errs[-1][:200]}" if errs else ""))
    t = timing.group(1)
    init = re.search(r"Init: ([0-9.e+]+)", t)
    first = re.search(r"First inference: ([0-9.e+]+)", t)
    regular = None  # the last line that starts with count= is the regular runs' (the first is the warm-up's;
    for line in text.splitlines():  # the op-profiling summary's "Timings (microseconds): count=" is not a run line)
        if re.match(r"^(INFO: )?count=\d+", line.strip()):
            regular = line
    if regular is None:
        raise ProfileError("benchmark_model printed no run statistics (count=... line)")
    count = int(_num(regular, "count"))
    lat = {"count": count, "warmup": 0, "min": _num(regular, "min") * US, "max": _num(regular, "max") * US,
           "mean": _num(regular, "avg") * US, "std": (_num(regular, "std") or 0) * US,
           "median": None, "p90": None}
    for key, name in (("median", "median"), ("p50", "median"), ("p90", "p90")):
        v = _num(regular, key)
        if v is not None:
            lat[name] = v * US
    peak = None
    m = re.search(r"Overall peak memory footprint \(MB\) via periodic monitoring: ([0-9.]+)", text)
    if m:
        peak = {"peak_mb": float(m.group(1)), "source": "benchmark_model: peak memory footprint via periodic monitoring"}
    else:
        m = re.search(r"Memory footprint delta from the start of the tool \(MB\): init=([0-9.]+) overall=([0-9.]+)", text)
        if m:
            peak = {"peak_mb": float(m.group(2)), "source": "benchmark_model: memory footprint delta (overall)"}
    return {"init_ms": float(init.group(1)) * US if init else None,
            "first_ms": float(first.group(1)) * US if first else None,
            "latency": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in lat.items()},
            "memory": peak, "ops": parse_node_type_summary(text)}


def parse_node_type_summary(text: str) -> list[dict] | None:
    """The "Summary by node type" table of the regular runs' op profiling (the first such table after
    "Operator-wise Profiling Info for Regular Benchmark Runs", else the last one printed)."""
    start = text.find("Profiling Info for Regular Benchmark Runs")
    body = text[start:] if start >= 0 else text
    i = body.find("Summary by node type")
    if i < 0:
        return None
    lines = body[i:].splitlines()[1:]
    header = next((ln for ln in lines if "[Node type]" in ln or "[node type]" in ln), None)
    if header is None:
        return None
    cols = [c.strip().lower() for c in re.findall(r"\[([^\]]+)\]", header)]
    rows, started = [], False
    for ln in lines[lines.index(header) + 1:]:
        cells = [c.strip() for c in re.split(r"\t+|\s{2,}", ln.strip()) if c.strip()]
        if len(cells) < len(cols):
            if started:
                break
            continue
        started = True
        row = dict(zip(cols, cells[-len(cols):]))
        try:
            rows.append({"name": row["node type"], "count": int(float(row["count"])),
                         "ms": float(row["avg ms"]), "where": "XNNPACK" if "XNNPACK" in row["node type"].upper() else None})
        except (KeyError, ValueError):
            break
    return ops_table(rows) if rows else None


def benchmark_model_command(binary: str, graph: str, runs: int, warmup: int, threads: int, ops: bool) -> str:
    flags = [f"--graph={graph}", f"--num_threads={threads}", f"--warmup_runs={warmup}", f"--num_runs={runs}",
             "--min_secs=0", "--use_xnnpack=true", "--report_peak_memory_footprint=true",
             f"--enable_op_profiling={'true' if ops else 'false'}"]
    return " ".join([shlex.quote(binary), *map(shlex.quote, flags)])


# --- ExecuTorch executor_runner -----------------------------------------------------------------------------

def executor_runner_command(binary: str, model: str, runs: int, threads: int, etdump: str) -> str:
    flags = [f"--model_path={model}", f"--num_executions={runs}", f"--cpu_threads={threads}",
             f"--etdump_path={etdump}"]
    return " ".join([shlex.quote(binary), *map(shlex.quote, flags)])


def parse_executor_runner(text: str) -> dict:
    """The runner's own log (ET_LOG lines on stderr): `Model loaded in X ms.` (ExecuTorch 1.3+) and
    `Model executed successfully N time(s) in X ms.` -> {load_ms, runs, ms_per_run} (None where not printed)."""
    load = re.search(r"Model loaded in ([0-9.]+) ms", text)
    m = re.search(r"executed successfully (\d+) time\(s\) in ([0-9.]+) ms", text)
    runs = int(m.group(1)) if m else None
    return {"load_ms": float(load.group(1)) if load else None, "runs": runs,
            "ms_per_run": float(m.group(2)) / runs if m and runs else None}


# --- the whole run -----------------------------------------------------------------------------------------

def _result(t, runtime: dict, runner: str) -> dict:
    return {"artifact": t.ref(), "runtime": runtime, "runner": runner, "status": "ok", "error": None,
            "is_device_timing": True, "load_ms": None, "first_inference_ms": None, "latency": None, "memory": None,
            "ops": None, "ops_source": None, "photo": None, "note": None}


def _push_binary(adb: Adb, local: str | None, flag: str) -> str | None:
    if not local:
        return None
    p = Path(local)
    if not p.is_file():
        raise ProfileError(f"{flag} {local}: no such file (build it for the phone's ABI; android_demo/README.md)")
    remote = f"{DEVICE_DIR}/bin/{p.name}"
    adb.shell(f"mkdir -p {DEVICE_DIR}/bin")
    adb.push(p, remote)
    adb.shell(f"chmod 755 {shlex.quote(remote)}")
    return remote


def profile_android(args) -> dict:
    bundle, targets, manifest = select(args.source, args.artifact, platform_name="android")
    if not (args.benchmark_model or args.executor_runner or args.app):
        raise ProfileError("nothing to run on the phone: pass --benchmark-model PATH (.tflite), --executor-runner "
                           "PATH (.pte, built with ETDump) and/or --app (the Android demo's benchmark mode)")
    for flag, path in (("--benchmark-model", args.benchmark_model), ("--executor-runner", args.executor_runner)):
        if path and not Path(path).is_file():
            raise ProfileError(f"{flag} {path}: no such file (build it for the phone's ABI; android_demo/README.md)")
    adb = connect(args)
    threads = args.threads or 4
    profile = new_profile(device_target(adb), {"runs": args.runs, "warmup": args.warmup, "threads": threads}, bundle)
    remote_root = f"{DEVICE_DIR}/{bundle['name']}-{bundle['version']}" if bundle else f"{DEVICE_DIR}/single"
    bm = _push_binary(adb, args.benchmark_model, "--benchmark-model")
    er = _push_binary(adb, args.executor_runner, "--executor-runner")
    adb.shell(f"mkdir -p {remote_root}/android")
    remote = {}
    for t in targets:
        remote[t.id] = f"{remote_root}/android/{t.path.name}"
        adb.push(t.path, remote[t.id])
    from importlib import metadata
    for t in targets:
        if t.art.backend == "tflite" and bm:
            res = _result(t, {"name": "LiteRT benchmark_model", "version": t.art.tools.get("ai-edge-litert"),
                              "delegate": "XNNPACK", "threads": threads}, "benchmark_model")
            res["note"] = "runtime version: the LiteRT the file was made with; benchmark_model prints none of its own"
            try:
                out = adb.shell(benchmark_model_command(bm, remote[t.id], args.runs, args.warmup, threads,
                                                        not args.no_ops), check=False)
                parsed = parse_benchmark_model(out)
                res.update(load_ms=parsed["init_ms"], first_inference_ms=parsed["first_ms"],
                           latency={**parsed["latency"], "warmup": args.warmup}, memory=parsed["memory"],
                           ops=parsed["ops"], ops_source="benchmark_model --enable_op_profiling (Summary by node type)"
                           if parsed["ops"] else None)
            except ProfileError as e:
                res.update(status="failed", error=str(e))
            profile["results"].append(res)
        elif t.art.backend == "executorch" and er:
            res = _result(t, {"name": "ExecuTorch executor_runner", "version": t.art.tools.get("executorch"),
                              "delegate": "XNNPACK", "threads": threads}, "executor_runner")
            res["note"] = "runtime version: the ExecuTorch the file was made with; build the runner from the same tag"
            dump = f"{remote[t.id]}.etdump"
            try:
                adb.shell(f"rm -f {shlex.quote(dump)}", check=False)
                # the runner logs on stderr: folded into the shell's stdout so its lines can be read
                out = adb.shell(executor_runner_command(er, remote[t.id], args.warmup + args.runs, threads, dump)
                                + " 2>&1", check=False)
                log = parse_executor_runner(out)
                with tempfile.TemporaryDirectory() as tmp:
                    local = Path(tmp) / "run.etdump"
                    try:
                        adb.pull(dump, local)
                    except ProfileError:
                        tail = [ln for ln in out.splitlines() if ln.strip()][-1:] or ["no output"]
                        raise ProfileError(f"executor_runner wrote no ETDump ({tail[0][:200]}); build it with "
                                           "-DEXECUTORCH_BUILD_DEVTOOLS=ON -DEXECUTORCH_ENABLE_EVENT_TRACER=ON") from None
                    from conversion.executorch_backend import read_etdump
                    d = read_etdump(local)
                runs = d["method_ms"][args.warmup:] or d["method_ms"]
                if not runs:
                    raise ProfileError("the ETDump holds no Method::execute events")
                res.update(first_inference_ms=round(d["method_ms"][0], 3), latency=latency_stats(runs, args.warmup),
                           load_ms=log["load_ms"] if log["load_ms"] is not None else d["setup_ms"].get("Method::init"),
                           ops=ops_table([{"name": r["op"], "count": r["count"], "ms": r["ms_median"]}
                                          for r in d["ops"]], where="XNNPACK") or None,
                           ops_source=f"ETDump from executor_runner, read by executorch.devtools.Inspector "
                                      f"(executorch {metadata.version('executorch')})")
            except ProfileError as e:
                res.update(status="failed", error=str(e))
            profile["results"].append(res)
    if args.app:
        profile["results"] += run_app(adb, args, remote_root, targets, manifest)
    if not profile["results"]:
        kinds = sorted({t.art.backend for t in targets})
        raise ProfileError(f"no runner given for this bundle's android artifacts ({', '.join(kinds)}): "
                           "--benchmark-model for tflite, --executor-runner for executorch, --app for both")
    return profile


def app_command(remote_root: str, targets, args) -> str:
    extras = ["-e", "bundle_dir", remote_root, "-e", "artifacts", ",".join(t.id for t in targets),
              "--ei", "runs", str(args.runs), "--ei", "warmup", str(args.warmup), "--ei", "threads",
              str(args.threads or 4), "-e", "out", APP_RESULT]
    if args.photo:
        extras += ["-e", "photo", f"{remote_root}/{Path(args.photo).name}"]
    return " ".join(["am", "start", "-W", "-S", "-n", APP_ACTIVITY, *map(shlex.quote, extras)])


def run_app(adb: Adb, args, remote_root: str, targets, manifest) -> list[dict]:
    """The Android demo's benchmark mode: push the manifest (and photo), start it, wait for its result file."""
    installed = adb.shell(f"pm list packages {APP_ID}", check=False)
    if f"package:{APP_ID}" not in installed.split():
        raise ProfileError(f"the Android demo ({APP_ID}) is not installed on {adb.serial}: build and install it "
                           "(android_demo/README.md), or leave out --app")
    with tempfile.TemporaryDirectory() as tmp:
        if manifest is not None:  # the bundle's own file, byte for byte: the app reports its sha256
            adb.push(Path(args.source) / "manifest.json", f"{remote_root}/manifest.json")
            photo = Path(args.source) / "testvectors" / "photo.png"  # the app's default whole-photo input
            if photo.is_file() and not args.photo:
                adb.shell(f"mkdir -p {remote_root}/testvectors")
                adb.push(photo, f"{remote_root}/testvectors/photo.png")
        if args.photo:
            if not Path(args.photo).is_file():
                raise ProfileError(f"{args.photo}: no such photo")
            adb.push(Path(args.photo), f"{remote_root}/{Path(args.photo).name}")
        result_remote = f"{APP_FILES}/{APP_RESULT}"
        error_remote = f"{result_remote}.error"  # what the app writes when a run cannot start (bad extra, no manifest)
        adb.shell(f"rm -f {shlex.quote(result_remote)} {shlex.quote(error_remote)}", check=False)
        out = adb.shell(app_command(remote_root, targets, args), check=False)
        if "Error" in out and "Status: ok" not in out:
            raise ProfileError(f"the benchmark activity did not start: {out.strip().splitlines()[-1][:200]}")
        deadline = time.monotonic() + args.timeout
        local = Path(tmp) / APP_RESULT
        while True:  # the app writes its result atomically (temp file, then rename) when every run is done
            ls = adb.shell(f"ls {shlex.quote(result_remote)} {shlex.quote(error_remote)}", check=False)
            found = {ln.strip() for ln in ls.splitlines() if "No such file" not in ln}
            if error_remote in found:
                err = Path(tmp) / "error.txt"
                adb.pull(error_remote, err)
                raise ProfileError(f"the Android demo refused the run: {err.read_text().strip()[:300]}")
            if result_remote in found:
                break
            if time.monotonic() > deadline:
                raise ProfileError(f"the Android demo wrote no {APP_RESULT} in {args.timeout} s (see `adb logcat -s "
                                   "AnyIRBenchmark`)")
            time.sleep(2)
        adb.pull(result_remote, local)
        r = read_result(local)
    check_same_files(r["results"], targets, "reinstall the app with this bundle")
    return r["results"]
