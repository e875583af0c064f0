"""Profiles in one format (`mobile/schema/profile-1.schema.json`), wherever they were measured.

`anyir profile BUNDLE|ARTIFACT --target host|android|ios` writes one result file; the Android demo's benchmark
mode and the iOS demo's benchmark test write the same schema, so tables, plots and `anyir profile compare`
are written once. This file holds the schema, the statistics, the artifact selection and the host profiler;
`profile_android.py` and `profile_ios.py` drive devices.

Host rows: each artifact through its own runtime (ExecuTorch's Python runtime with its XNNPACK delegate,
LiteRT's interpreter), timed in interleaved rounds on the same input so that a noisy machine slows every row
alike (the ratios are what to compare), plus eager PyTorch fp32 as the reference row. Core ML has no runtime
off Apple hardware: its rows are the project's numpy reference interpreter, marked `is_device_timing: false`
and never shown as Core ML latency.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from anyir_core.errors import AnyIRError

SCHEMA_ID = "anyir-mobile/profile/1"
SCHEMA_FILE = Path(__file__).with_name("schema") / "profile-1.schema.json"
TARGETS = ("host", "android", "ios")
EAGER_ID = "eager-pytorch-fp32"
# the numpy interpreter takes seconds per tile: a few runs show its cost without holding the profile up
INTERPRETER_RUNS = 2


class ProfileError(AnyIRError):
    """A profile that cannot be taken or read: one line naming what is missing."""


def now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def writer_name(what: str = "anyir profile") -> str:
    import anyir_core
    return f"anyir-mobile {anyir_core.__version__} ({what})"


def load_schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text())


def schema_errors(result: dict) -> list[str]:
    from .bundle import schema_errors as errors_against
    return errors_against(result, load_schema())


def read_result(path: str | Path) -> dict:
    """A profile result file, checked against the schema (a wrong or older file is one clear line)."""
    p = Path(path)
    if not p.is_file():
        raise ProfileError(f"{p}: no such profile result")
    try:
        r = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ProfileError(f"{p}: not a JSON profile result ({str(e)[:80]})") from None
    if not isinstance(r, dict) or r.get("schema") != SCHEMA_ID:
        found = r.get("schema") if isinstance(r, dict) else type(r).__name__
        raise ProfileError(f"{p}: schema {found!r} is not {SCHEMA_ID!r}")
    errors = schema_errors(r)
    if errors:
        raise ProfileError(f"{p}: does not match {SCHEMA_ID}: {errors[0]}")
    return r


def latency_stats(times_ms: list[float], warmup: int) -> dict:
    """min / median / mean / p90 / max / std of timed runs (p90 by linear interpolation, as numpy)."""
    t = np.asarray(times_ms, dtype=np.float64)
    if t.size == 0:
        raise ValueError("no timed runs")
    return {"count": int(t.size), "warmup": int(warmup), "min": round(float(t.min()), 4),
            "median": round(float(np.median(t)), 4), "mean": round(float(t.mean()), 4),
            "p90": round(float(np.percentile(t, 90)), 4), "max": round(float(t.max()), 4),
            "std": round(float(t.std()), 4)}


def ops_table(rows: list[dict], where: str | None = None) -> list[dict]:
    """[{name, count, ms}] -> schema ops with each op type's share of the summed op time, largest first."""
    total = sum(r["ms"] for r in rows) or 1.0
    out = [{"name": r["name"], "count": int(r["count"]), "ms": round(float(r["ms"]), 4),
            "share": round(float(r["ms"]) / total, 4), "where": r.get("where", where)} for r in rows]
    return sorted(out, key=lambda r: -r["ms"])


def new_profile(target: dict, settings: dict, bundle: dict | None, writer: str | None = None) -> dict:
    return {"schema": SCHEMA_ID, "created": now(), "writer": writer or writer_name(), "target": target,
            "bundle": bundle, "settings": settings, "results": []}


# --- what to profile ------------------------------------------------------------------------------

@dataclass
class Target:
    """One artifact to profile: its manifest entry (or record), the file, and its record."""
    id: str
    path: Path
    art: object  # conversion.base.Artifact
    platforms: tuple[str, ...] = ()

    def ref(self) -> dict:
        return {"id": self.id, "file": self.path.name, "sha256": self.art.sha256, "backend": self.art.backend,
                "precision": self.art.precision, "bytes": int(self.art.bytes) or None,
                "input_shape": list(self.art.input.shape)}


def select(source: str | Path, ids: list[str] | None = None, platform_name: str | None = None
           ) -> tuple[dict | None, list[Target], dict | None]:
    """(bundle info or None, artifacts to profile, manifest or None) for a bundle folder or one artifact file.

    Every file is checked against its record (and, in a bundle, the manifest's sha256) before it is run, so a
    result can never describe another file. `platform_name` keeps the artifacts an app on it would ship."""
    from conversion.base import ArtifactError, file_sha256, read_record
    src = Path(source)
    if not src.exists():
        raise ProfileError(f"{src}: no such bundle or artifact")
    mpath = src / "manifest.json"
    if src.is_dir() and mpath.is_file():
        from .bundle_check import inside, load_manifest
        m = load_manifest(src)  # schema 1, valid, unique ids, no path out of the bundle
        entries = m.get("artifacts", [])
        known = [a["id"] for a in entries]
        for i in ids or []:
            if i not in known:
                raise ProfileError(f"the bundle has no artifact {i!r}; it has: {', '.join(known) or 'none'}")
        out = []
        for a in entries:
            if ids and a["id"] not in ids:
                continue
            plats = tuple(a["paths"])
            if platform_name and platform_name not in plats:
                continue
            rel = a["paths"].get(platform_name) if platform_name else next(iter(a["paths"].values()))
            path = inside(src, rel)
            try:
                art = read_record(path)
            except ArtifactError as e:
                raise ProfileError(f"{e}; run `anyir bundle verify {src}`") from None
            if art.sha256 != a["sha256"]:
                raise ProfileError(f"{rel}: does not match the manifest (sha256); run `anyir bundle verify {src}`")
            out.append(Target(a["id"], path, art, plats))
        if not out:
            raise ProfileError(f"{src}: no artifact to profile"
                               + (f" for {platform_name} (it has: {', '.join(known)})" if platform_name else ""))
        bundle = {"name": m["name"], "version": m["version"], "manifest_sha256": file_sha256(mpath)}
        return bundle, out, m
    if src.is_dir() and src.suffix != ".mlpackage":
        raise ProfileError(f"{src}: not a bundle (no manifest.json) and not an artifact")
    try:
        art = read_record(src)
    except ArtifactError as e:
        raise ProfileError(str(e)) from None
    lay = "" if art.input.layout == "NCHW" else f"-{art.input.layout.lower()}"
    aid = f"{art.backend}-{art.precision}{lay}"
    if ids and ids != [aid]:
        raise ProfileError(f"{src.name} is artifact {aid!r}, not {', '.join(ids)}")
    from mobile.bundle import PLATFORMS
    return None, [Target(aid, src, art, PLATFORMS.get(art.backend, ()))], None


# --- the host ---------------------------------------------------------------------------------------

def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_target() -> dict:
    return {"kind": "host", "reached_by": "local", "device_model": f"{platform.system()} {platform.machine()} host",
            "os": f"{platform.system()} {platform.release()}", "cpu": cpu_name(), "soc": None,
            "cores": os.cpu_count(), "abi": platform.machine()}


def set_threads(threads: int) -> None:
    """One thread count for every runtime of the run: torch (eager), LiteRT (it follows torch's in this
    project's runner), ExecuTorch's own threadpool (XNNPACK's workers)."""
    import torch
    torch.set_num_threads(threads)
    try:
        from executorch.extension.pybindings import portable_lib
        portable_lib._unsafe_reset_threadpool(threads)
    except (ImportError, AttributeError):  # an executorch without the hook keeps its default pool
        pass


def runtime_of(art) -> dict:
    from importlib import metadata

    def version(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None
    if art.backend == "executorch":
        return {"name": "ExecuTorch (Python runtime)", "version": version("executorch"), "delegate": "XNNPACK"}
    if art.backend == "tflite":
        return {"name": "LiteRT interpreter (ai-edge-litert)", "version": version("ai-edge-litert"),
                "delegate": "XNNPACK (default CPU delegate)"}
    if art.backend == "coreml":
        import coremltools
        return {"name": "AnyIR ML Program reference interpreter (numpy)", "version": coremltools.__version__,
                "delegate": None, "compute_units": None}
    return {"name": art.backend, "version": None}


def _eager_ops(model, x, runs: int = 3) -> list[dict]:
    """Eager PyTorch per aten op (torch.profiler self CPU time per inference)."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(runs):
            model(x)
    rows = []
    for e in prof.key_averages():
        if e.key.startswith("aten::") and e.self_cpu_time_total > 0:
            rows.append({"name": e.key, "count": max(1, e.count // runs), "ms": e.self_cpu_time_total / 1e3 / runs})
    return ops_table(rows, where="CPU (PyTorch)")


def _executorch_ops(t: Target, runs: int) -> tuple[list[dict], str]:
    from conversion.base import get_backend
    prof = get_backend("executorch").profile(t.art, t.path.parent, repeats=max(2, min(runs, 10)))
    rows = [{"name": r["op"], "count": r["count"], "ms": r["ms_median"]} for r in prof["ops"]]
    return ops_table(rows, where="XNNPACK"), prof["source"]


COMPUTE_UNITS = ("ALL", "CPU_AND_GPU", "CPU_AND_NE", "CPU_ONLY")  # coremltools.ComputeUnit names
UNIT_NAMES = {"ALL": "all", "CPU_AND_GPU": "cpuAndGPU", "CPU_AND_NE": "cpuAndNeuralEngine", "CPU_ONLY": "cpuOnly"}


def coreml_native_rows(t: Target, runs: int, warmup: int) -> list[dict]:
    """macOS only: Core ML itself through coremltools' MLModel.predict, once per compute-units choice, with
    the compute plan (MLComputePlan: each op's preferred device and estimated relative cost; not a time).
    Never executed in this project (no Mac): written against coremltools 9's documented API."""
    import coremltools as ct
    from coremltools.models.compute_plan import MLComputePlan
    from conversion.coreml_backend import INPUT_NAME
    x = np.random.default_rng(0).random(t.art.input.shape, dtype=np.float32)
    if t.art.input.layout == "image":
        from PIL import Image
        feed = {INPUT_NAME: Image.fromarray((x[0].transpose(1, 2, 0) * 255).astype(np.uint8))}
    else:
        feed = {INPUT_NAME: x.astype(np.dtype(t.art.input.dtype))}
    rows = []
    for unit in COMPUTE_UNITS:
        res = {"artifact": t.ref(), "runtime": {"name": "Core ML (coremltools MLModel.predict)",
                                               "version": f"macOS {platform.mac_ver()[0]}", "delegate": None,
                                               "compute_units": UNIT_NAMES[unit], "threads": None},
               "runner": "coremltools (Python)", "status": "ok", "error": None, "is_device_timing": True,
               "load_ms": None, "first_inference_ms": None, "latency": None, "memory": None, "ops": None,
               "ops_source": None, "photo": None, "note": None}
        try:
            t0 = time.perf_counter()
            model = ct.models.MLModel(str(t.path), compute_units=getattr(ct.ComputeUnit, unit))
            res["load_ms"] = round((time.perf_counter() - t0) * 1e3, 3)
            t0 = time.perf_counter()
            model.predict(feed)
            res["first_inference_ms"] = round((time.perf_counter() - t0) * 1e3, 3)
            for _ in range(warmup):
                model.predict(feed)
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                model.predict(feed)
                times.append((time.perf_counter() - t0) * 1e3)
            res["latency"] = latency_stats(times, warmup)
            plan = MLComputePlan.load_from_path(model.get_compiled_model_path(),
                                                compute_units=getattr(ct.ComputeUnit, unit))
            by_type: dict[str, dict] = {}
            for op in plan.model_structure.program.functions["main"].block.operations:
                cost = plan.get_estimated_cost_for_mlprogram_operation(op)
                usage = plan.get_compute_device_usage_for_mlprogram_operation(op)
                row = by_type.setdefault(op.operator_name, {"count": 0, "cost": 0.0, "devices": {}})
                row["count"] += 1
                row["cost"] += cost.weight if cost is not None else 0.0
                dev = type(usage.preferred_compute_device).__name__ if usage is not None else "none"
                row["devices"][dev] = row["devices"].get(dev, 0) + 1
            total = sum(r["cost"] for r in by_type.values()) or 1.0
            res["ops"] = sorted(({"name": k, "count": r["count"], "ms": None, "share": round(r["cost"] / total, 4),
                                  "where": max(r["devices"], key=r["devices"].get)} for k, r in by_type.items()),
                                key=lambda o: -o["share"])
            res["ops_source"] = "MLComputePlan: preferred compute device and estimated relative cost per op (no times)"
        except Exception as e:  # Core ML's errors come as assorted types; one row per failed choice
            res.update(status="failed", error=f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
        rows.append(res)
    return rows


def peak_memory_child(path: Path, backend: str) -> dict | None:
    """Peak resident memory that loading the artifact and running one tile adds, measured in a fresh process
    (so artifacts profiled before it do not count): ru_maxrss after the run minus resident size before load."""
    code = ("import json,sys;from pathlib import Path;import numpy as np\n"
            "from mobile.profiling import _rss_mb,_reset_peak,_peak_mb\n"
            "from conversion.base import get_backend,read_record\n"
            "p=Path(sys.argv[1]);art=read_record(p);be=get_backend(art.backend)\n"
            "x=np.random.default_rng(0).random(art.input.shape,dtype=np.float32)\n"
            "exact=_reset_peak();base=_rss_mb();r=be.load(art,p.parent);r.run(x)\n"
            "print(json.dumps({'base':base,'peak':_peak_mb(),'exact':exact}))\n")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        r = subprocess.run([sys.executable, "-c", code, str(path.resolve())], capture_output=True, text=True,
                           timeout=600, env=env, cwd=root)
        line = [ln for ln in r.stdout.splitlines() if ln.startswith("{")][-1]
        d = json.loads(line)
    except (subprocess.TimeoutExpired, IndexError, json.JSONDecodeError):
        return None
    how = ("VmHWM after resetting it through /proc/self/clear_refs" if d["exact"]
           else "ru_maxrss (may include the imports' peak)")
    return {"peak_mb": round(max(0.0, d["peak"] - d["base"]), 1),
            "source": f"host: peak resident memory of a fresh process while it loaded the artifact and ran one tile "
                      f"({how}), minus its resident memory before loading"}


def _reset_peak() -> bool:
    """Linux: restart the process's peak-RSS mark (VmHWM) so it measures from now on."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _status_mb(key: str) -> float:
    """A line of /proc/self/status in MB (VmRSS: now, VmHWM: the peak); ru_maxrss where there is no /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_mb() -> float:
    return _status_mb("VmHWM")


def _rss_mb() -> float:
    return _status_mb("VmRSS")


def check_same_files(results: list[dict], targets: list[Target], fix: str) -> None:
    """A device's results must name the bundle's own files: an app built with another bundle is refused."""
    want = {t.id: t.art.sha256 for t in targets}
    for res in results:
        a = res["artifact"]
        if a["id"] in want and a["sha256"] != want[a["id"]]:
            raise ProfileError(f"the app profiled a different {a['id']} (sha256 {a['sha256'][:12]}..., the bundle's is "
                               f"{want[a['id']][:12]}...): {fix}")


def profile_host(targets: list[Target], runs: int = 10, warmup: int = 2, threads: int | None = None,
                 eager: object | None = None, eager_ref: dict | None = None, ops: bool = True, memory: bool = True,
                 photo: np.ndarray | None = None, overlap: int | None = None, progress: bool = True) -> list[dict]:
    """Results (profile-1 `results` items) for every target on this host, the eager reference first."""
    import torch
    from conversion.base import BackendUnavailable, get_backend
    from tqdm import tqdm

    threads = threads or torch.get_num_threads()
    set_threads(threads)
    steps = len(targets) * (2 + ops + memory) + (1 if eager is not None else 0)
    bar = tqdm(total=steps, desc="profile", unit="step", disable=not progress, leave=False)
    results: dict[str, dict] = {}
    calls: list[tuple[str, object]] = []  # (id, fn) timed in interleaved rounds
    slow: list[tuple[str, object]] = []   # interpreter rows, timed on their own
    spec = targets[0].art.input if targets else None
    tile = (spec.height, spec.width) if spec else (256, 256)
    x_nchw = np.random.default_rng(0).random((1, 3, *tile), dtype=np.float32)
    if eager is not None:
        xt = torch.from_numpy(x_nchw)
        t = time.perf_counter()
        with torch.no_grad():
            eager(xt)
        first = (time.perf_counter() - t) * 1e3
        results[EAGER_ID] = {"artifact": eager_ref, "runtime": {"name": "PyTorch eager (reference)",
                                                                "version": torch.__version__, "delegate": None,
                                                                "threads": threads},
                             "runner": "eager PyTorch", "status": "ok", "error": None, "is_device_timing": True,
                             "load_ms": None, "first_inference_ms": round(first, 3), "latency": None, "memory": None,
                             "ops": None, "ops_source": None, "photo": None, "note": "the reference row: fp32, no conversion"}

        def run_eager():
            with torch.no_grad():
                eager(xt)
        calls.append((EAGER_ID, run_eager))
        bar.update()
    runners = {}
    for t in targets:
        bar.set_postfix_str(t.id)
        res = {"artifact": t.ref(), "runtime": {**runtime_of(t.art), "threads": threads}, "runner": "", "status": "ok",
               "error": None, "is_device_timing": True, "load_ms": None, "first_inference_ms": None, "latency": None,
               "memory": None, "ops": None, "ops_source": None, "photo": None, "note": None}
        results[t.id] = res
        try:
            backend = get_backend(t.art.backend)
            t0 = time.perf_counter()
            runner = backend.load(t.art, t.path.parent)
            res["load_ms"] = round((time.perf_counter() - t0) * 1e3, 3)
            x = np.random.default_rng(0).random(t.art.input.shape, dtype=np.float32)
            t0 = time.perf_counter()
            runner.run(x)
            res["first_inference_ms"] = round((time.perf_counter() - t0) * 1e3, 3)
        except (BackendUnavailable, AnyIRError, RuntimeError, ValueError) as e:
            res.update(status="failed", error=str(e).splitlines()[0][:300])
            bar.update(2 + ops + memory)
            continue
        runners[t.id] = runner
        emulated = getattr(runner, "emulated", False)
        res["runner"] = {"executorch": "executorch.runtime (Python)", "tflite": "ai_edge_litert.interpreter (Python)"
                         }.get(t.art.backend, "reference interpreter" if emulated else t.art.backend)
        if emulated:
            res["is_device_timing"] = False
            res["runtime"]["threads"] = None
            res["note"] = ("Core ML executes only on Apple devices: these times are the project's numpy reference "
                           "interpreter running the program's own arithmetic, not Core ML latency; profile with "
                           "--target ios for that")
            slow.append((t.id, lambda r=runner, x=x: r.run(x)))
        else:
            calls.append((t.id, lambda r=runner, x=x: r.run(x)))
        bar.update()
    times: dict[str, list[float]] = {i: [] for i, _ in calls + slow}
    for _ in range(warmup):
        for _, fn in calls:
            fn()
    for _ in range(runs):  # interleaved: each round runs every row once, so drift hits all rows alike
        for rid, fn in calls:
            t0 = time.perf_counter()
            fn()
            times[rid].append((time.perf_counter() - t0) * 1e3)
    for rid, fn in slow:
        for _ in range(min(runs, INTERPRETER_RUNS)):
            t0 = time.perf_counter()
            fn()
            times[rid].append((time.perf_counter() - t0) * 1e3)
    for rid, ts in times.items():
        results[rid]["latency"] = latency_stats(ts, warmup if rid not in dict(slow) else 0)
    bar.update(len(targets))
    for t in targets:
        res = results[t.id]
        if res["status"] != "ok":
            continue
        if ops:
            bar.set_postfix_str(f"{t.id} ops")
            if t.art.backend == "executorch":
                try:
                    res["ops"], res["ops_source"] = _executorch_ops(t, runs)
                except AnyIRError as e:
                    res["ops_source"] = f"none: {e}"
            elif t.art.backend == "tflite":
                res["ops_source"] = ("none on the host: ai_edge_litert's Python Interpreter and CompiledModel bindings "
                                     "expose no op profiler (its profiling_info proto is the benchmark tool's output); "
                                     "--target android runs benchmark_model with op profiling")
            else:
                res["ops_source"] = "none: interpreter op times would be numpy's, not Core ML's"
            bar.update()
        if memory:
            bar.set_postfix_str(f"{t.id} memory")
            res["memory"] = peak_memory_child(t.path, t.art.backend)
            bar.update()
        if photo is not None and not getattr(runners[t.id], "emulated", False):
            res["photo"] = photo_timing(runners[t.id], photo, overlap)
    native = [t for t in targets if t.art.backend == "coreml" and results[t.id]["status"] == "ok"
              and getattr(runners.get(t.id), "native", None) is not None]
    extra = [row for t in native for row in coreml_native_rows(t, runs, warmup)]  # macOS: Core ML itself
    if eager is not None and ops:
        results[EAGER_ID]["ops"] = _eager_ops(eager, torch.from_numpy(x_nchw))
        results[EAGER_ID]["ops_source"] = "torch.profiler self CPU time per aten op"
    bar.close()
    return list(results.values()) + extra


def photo_timing(runner, photo: np.ndarray, overlap: int | None) -> dict:
    """One whole photo through the tiled path, as an app runs it."""
    from anyir_core.tiling import DEFAULT_OVERLAP, TilePlan, restore_tiled
    spec = runner.artifact.input
    ov = DEFAULT_OVERLAP if overlap is None else overlap
    plan = TilePlan(photo.shape[0], photo.shape[1], spec.height, spec.width, ov)
    t0 = time.perf_counter()
    restore_tiled(photo, runner.run_nchw, (spec.height, spec.width), ov)
    total = (time.perf_counter() - t0) * 1e3
    return {"width": int(photo.shape[1]), "height": int(photo.shape[0]), "tiles": len(plan),
            "total_ms": round(total, 1), "ms_per_tile": round(total / len(plan), 2), "peak_mb": None}


# --- terminal table -----------------------------------------------------------------------------------

def format_table(profile: dict, top: int = 5) -> str:
    tg = profile["target"]
    lines = [f"{tg['kind']}: {tg['device_model']} ({tg['os']}; {tg['cpu']}), reached by {tg['reached_by']}",
             f"{'artifact':<26}{'runtime':<34}{'load ms':>9}{'first ms':>10}{'median ms':>11}{'p90 ms':>9}"
             f"{'x ref':>7}{'peak MB':>9}"]
    ref = next((r["latency"]["median"] for r in profile["results"]
                if r["artifact"]["id"] == EAGER_ID and r.get("latency")), None)
    for r in profile["results"]:
        name = r["artifact"]["id"]
        if r["status"] != "ok":
            lines.append(f"{name:<26}failed: {r.get('error')}")
            continue
        lat = r.get("latency") or {}
        med = lat.get("median")
        cell = lambda v, w, f=".1f": f"{v:>{w}{f}}" if isinstance(v, (int, float)) else f"{'-':>{w}}"  # noqa: E731
        mark = "" if r.get("is_device_timing", True) else "  (interpreter: not Core ML latency)"
        lines.append(f"{name:<26}{r['runtime']['name'][:33]:<34}{cell(r.get('load_ms'), 9)}"
                     f"{cell(r.get('first_inference_ms'), 10)}{cell(med, 11)}{cell(lat.get('p90'), 9)}"
                     f"{cell(ref / med if ref and med and r.get('is_device_timing', True) else None, 7, '.2f')}"
                     f"{cell((r.get('memory') or {}).get('peak_mb'), 9)}{mark}")
    for r in profile["results"]:
        if r.get("ops"):
            tops = ", ".join(f"{o['name']} " + (f"{o['ms']:.1f} ms " if o["ms"] is not None else "")
                             + f"({100 * (o.get('share') or 0):.0f}%)" for o in r["ops"][:top])
            lines.append(f"  top ops {r['artifact']['id']}: {tops}")
        if r.get("photo"):
            p = r["photo"]
            lines.append(f"  photo {r['artifact']['id']}: {p['width']}x{p['height']}, {p['tiles']} tiles, "
                         f"{p['total_ms'] / 1e3:.2f} s ({p.get('ms_per_tile', 0):.1f} ms/tile)")
    return "\n".join(lines)


def write_result(profile: dict, out: str | Path) -> Path:
    """Schema-checked, written atomically."""
    from anyir_core.checkpoint import _atomic_write
    errors = schema_errors(profile)
    if errors:
        raise ProfileError(f"internal: the profile does not match its schema: {errors[0]}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(out, lambda t: Path(t).write_text(json.dumps(profile, indent=1) + "\n"))
    return out
