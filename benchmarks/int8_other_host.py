"""The int8 LiteRT artifact's verdict on another host: the build's verification, packed to travel.

`pack` (here, with the project installed) computes what conversion/verify.py needs for the int8 verdict of a
bundle's int8 .tflite: the verification tiles (held-out photos, every task of the build), the fake-quantized
PyTorch reference's outputs on them, the clean tiles as 8-bit levels and the eager fp32 model's PSNR per tile,
and writes them next to the .tflite into one folder, with this host's own result of the run below.

`run` (on the other host) needs only numpy and ai_edge_litert: it runs the .tflite on every tile with LiteRT's
default XNNPACK delegate and with its built-in kernels, and applies the rule of conversion/verify.py with the
numbers the pack recorded (agreement floor against the reference, task-drop budget against eager fp32). It
also compares its raw outputs with the packing host's: the host-to-host spread of the same file.

    python benchmarks/int8_other_host.py pack BUNDLE OUTDIR
    python benchmarks/int8_other_host.py run OUTDIR --json RESULT
    python benchmarks/int8_other_host.py merge RESULT [--into benchmarks/results/int8_spread.json]

The run path below `# ---- run path` imports nothing of the project: this file travels alone.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FORMAT = "anyir-mobile/int8-other-host/1"
ARRAYS = "tiles.npz"
META = "pack.json"
PATHS = ("xnnpack", "builtin")  # LiteRT's default XNNPACK delegate; its built-in kernels only
CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512vnni",
             "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


# ---- run path: stdlib, numpy and ai_edge_litert only

def psnr_float(a, b, peak: float = 1.0) -> float:
    """anyir_core.metrics.psnr_float: PSNR with no rounding (pack asserts the two agree)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(peak**2 / mse)


def psnr_levels(img_hwc, clean_levels) -> float:
    """anyir_core.metrics.psnr(img, clean) with the clean tile already as 8-bit levels (exact: clean is k/255)."""
    x = np.round(np.clip(np.asarray(img_hwc).astype(np.float64), 0, 1) * 255.0)
    mse = np.mean((x - clean_levels.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def shuffled(a: np.ndarray) -> np.ndarray:
    """The bytes of a float array grouped by position (all first bytes, then all second...): deflate then
    packs sign and exponent well; lossless (pack checks the round trip)."""
    return np.ascontiguousarray(np.ascontiguousarray(a).view(np.uint8).reshape(-1, a.itemsize).T)


def unshuffled(b: np.ndarray, shape, dtype: str) -> np.ndarray:
    return np.ascontiguousarray(b.T).view(dtype).reshape(shape)


def load_arrays(folder: Path, meta: dict) -> dict:
    with np.load(folder / ARRAYS) as z:
        arrays = {k: z[k] for k in z.files}
    for k, how in meta["shuffled"].items():
        arrays[k] = unshuffled(arrays[k], how["shape"], how["dtype"])
    return arrays


def tile_hashes(raw: np.ndarray) -> list[str]:
    return [hashlib.sha256(np.ascontiguousarray(t).tobytes()).hexdigest()[:16] for t in raw]


def host_info() -> dict:
    info = {"platform": platform.platform(), "machine": platform.machine(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "numpy": np.__version__}
    if hasattr(os, "sched_getaffinity"):
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    try:
        from importlib.metadata import version
        info["ai_edge_litert"] = version("ai-edge-litert")
    except Exception:  # noqa: BLE001 (a --target install may lack its metadata)
        pass
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        info["model"] = next(ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name"))
        flags = set(next(ln for ln in lines if ln.startswith("flags")).split(":", 1)[1].split())
        info["flags"] = {f: f in flags for f in CPU_FLAGS}
    except (OSError, StopIteration):
        pass
    return info


def _interpreter(model: Path, threads: int, path: str):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    kw = {} if path == "xnnpack" else {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    interp = Interpreter(model_path=str(model), num_threads=threads, **kw)
    interp.allocate_tensors()
    return interp


def _io(interp) -> dict:
    # conversion.tflite_backend.io_quantization, restated: this run path imports no project module (the other
    # host has neither this torch nor the converters that module imports)
    out = {}
    for name, det in (("input", interp.get_input_details()[0]), ("output", interp.get_output_details()[0])):
        scale, zp = det.get("quantization", (0.0, 0))
        out[name] = {"dtype": np.dtype(det["dtype"]).name, "scale": float(scale), "zero_point": int(zp)}
    return out


def run_tiles(model: Path, xs: np.ndarray, layout: str, threads: int, path: str) -> tuple[np.ndarray, dict, float]:
    """Raw output tensors (as the interpreter gives them) for NCHW float tiles; quantized in and out as
    conversion/tflite_backend.py's runner does (the 8-bit pixel minus 128 for scale 1/255, zero point -128)."""
    interp = _interpreter(model, threads, path)
    io = _io(interp)
    i_det, o_det = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]
    i = io["input"]
    raw = []
    t = time.perf_counter()
    for x in xs:
        x = x[None]
        if layout == "NHWC":
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        if i["dtype"] == "float32":
            interp.set_tensor(i_det, np.ascontiguousarray(x, dtype=np.float32))
        else:
            info = np.iinfo(i["dtype"])
            q = np.clip(np.round(x / i["scale"]) + i["zero_point"], info.min, info.max)
            interp.set_tensor(i_det, np.ascontiguousarray(q.astype(i["dtype"])))
        interp.invoke()
        raw.append(interp.get_tensor(o_det).copy())
    return np.concatenate(raw), io, time.perf_counter() - t


def dequantize(raw: np.ndarray, io: dict, layout: str) -> np.ndarray:
    """NCHW float outputs, one contiguous (1, 3, H, W) array per tile as the runner's run_nchw returns."""
    o = io["output"]
    outs = []
    for y in raw:
        y = y[None]
        y = y.copy() if o["dtype"] == "float32" else ((y.astype(np.float32) - o["zero_point"]) * o["scale"]).astype(np.float32)
        outs.append(np.ascontiguousarray(y.transpose(0, 3, 1, 2)) if layout == "NHWC" else y)
    return np.concatenate(outs)


def verdict(meta: dict, outs: np.ndarray, reference: np.ndarray, clean: np.ndarray) -> dict:
    """conversion/verify.py's int8 numbers and rule on these outputs; the rule's numbers come from the pack."""
    rows = []
    for k, t in enumerate(meta["tiles"]):
        out = outs[k:k + 1]
        rows.append({"image": t["image"], "task": t["task"], "numeric_psnr": psnr_float(out, reference[k:k + 1]),
                     "psnr": psnr_levels(np.clip(out[0].transpose(1, 2, 0), 0.0, 1.0), clean[t["clean"]]),
                     "fp32_psnr": t["fp32_psnr"]})
    per_task = {}
    for task in meta["tasks"]:
        rs = [r for r in rows if r["task"] == task]
        mean = lambda key: float(np.mean([r[key] for r in rs]))  # noqa: E731
        per_task[task] = {"psnr": mean("psnr"), "fp32_psnr": mean("fp32_psnr"),
                          "drop_vs_fp32": mean("fp32_psnr") - mean("psnr"),
                          "numeric_psnr_min": min(r["numeric_psnr"] for r in rs)}
    rule = meta["rule"]
    agreement = min(r["numeric_psnr"] for r in rows)
    drops = {t: d["drop_vs_fp32"] for t, d in per_task.items()}
    worst = max(drops.values())
    failed = ([f"agreement {agreement:.1f} dB < {rule['floor_db']:.0f} dB"] if agreement < rule["floor_db"] else []) + \
        ([f"{max(drops, key=drops.get)} drop {worst:.2f} dB > {rule['task_drop_budget_db']} dB"]
         if worst > rule["task_drop_budget_db"] else [])
    return {"agreement_min_db": agreement, "agreement_mean_db": float(np.mean([r["numeric_psnr"] for r in rows])),
            "worst_task_drop_db": worst, "passed": not failed, "failed_on": failed,
            "floor_db": rule["floor_db"], "budget_db": rule["task_drop_budget_db"],
            "per_task": per_task, "per_tile": [{k: r[k] for k in ("image", "task", "numeric_psnr", "psnr")} for r in rows]}


def spread(a: np.ndarray, b: np.ndarray) -> dict:
    """Two hosts' (or kernel paths') raw outputs of the same tiles: PSNR of the floats, and how many levels differ."""
    per = [psnr_float(a[k:k + 1], b[k:k + 1]) for k in range(len(a))]
    diff = np.abs(a.astype(np.int64) - b.astype(np.int64)) if a.dtype.kind == "i" else None
    out = {"psnr_min_db": min(per), "psnr_mean_db": float(np.mean([p for p in per if math.isfinite(p)] or [math.inf])),
           "identical": bool(np.array_equal(a, b))}
    if diff is not None:
        out.update(values_differing=int((diff > 0).sum()), values=int(diff.size), max_level_difference=int(diff.max()))
    return out


def evaluate(folder: Path, threads: int | None = None, paths=PATHS) -> dict:
    folder = Path(folder)
    if not (folder / META).is_file():
        raise SystemExit(f"{folder}: no {META}; make it with `python benchmarks/int8_other_host.py pack BUNDLE {folder}`")
    meta = json.loads((folder / META).read_text())
    if meta.get("format") != FORMAT:
        raise SystemExit(f"{folder / META}: not a {FORMAT} pack")
    model = folder / meta["artifact"]["file"]
    if hashlib.sha256(model.read_bytes()).hexdigest() != meta["artifact"]["sha256"]:
        raise SystemExit(f"{model}: sha256 differs from the pack's")
    arrays = load_arrays(folder, meta)
    xs, reference, clean = arrays["inputs"], arrays["reference"], arrays["clean"]
    if xs.dtype == np.uint8:  # packed as levels only where that reproduced the float tiles bit for bit
        xs = xs.astype(np.float32) / np.float32(255.0)
    threads = threads or meta["threads"]
    layout = meta["artifact"]["layout"]
    result = {"format": FORMAT + "/result", "artifact": meta["artifact"], "tiles": len(xs), "threads": threads,
              "host": host_info(), "packing_host": meta["host"], "paths": {}, "vs_packing_host": {}}
    raws = {}
    for path in paths:
        print(f"running {meta['artifact']['file']} on {len(xs)} tiles, {path} ({threads} threads) ...", flush=True)
        raw, io, seconds = run_tiles(model, xs, layout, threads, path)
        if io != meta["artifact"]["io"]:
            raise SystemExit(f"{model}: input/output quantization {io} differs from the pack's {meta['artifact']['io']}")
        raws[path] = raw
        result["paths"][path] = {**verdict(meta, dequantize(raw, io, layout), reference, clean), "seconds": round(seconds, 2)}
        theirs, hashes = arrays.get(f"raw_{path}"), meta.get("raw_sha256", {}).get(path)
        if theirs is not None:
            result["vs_packing_host"][path] = spread(dequantize(raw, io, layout), dequantize(theirs, io, layout)) | (
                {k: v for k, v in spread(raw, theirs).items() if k.startswith(("values", "max_level"))})
        if hashes:  # where the outputs did not fit the pack: which tiles came out bit for bit the same
            same = sum(a == b for a, b in zip(tile_hashes(raw), hashes))
            result["vs_packing_host"].setdefault(path, {})["tiles_bitwise_identical"] = f"{same}/{len(hashes)}"
    if len(raws) == 2:
        io = meta["artifact"]["io"]
        result["xnnpack_vs_builtin"] = spread(dequantize(raws["xnnpack"], io, layout), dequantize(raws["builtin"], io, layout)) | (
            {k: v for k, v in spread(raws["xnnpack"], raws["builtin"]).items() if k.startswith(("values", "max_level"))})
    return result, raws


def summary(result: dict) -> str:
    lines = [f"host: {result['host'].get('model', result['host']['machine'])}, {result['host']['cpus']} CPUs, "
             f"flags {' '.join(f for f, on in result['host'].get('flags', {}).items() if on)}"]
    for path, v in result["paths"].items():
        lines.append(f"  {'PASS' if v['passed'] else 'FAIL'}  {path:8s} agreement min {v['agreement_min_db']:.2f} dB "
                     f"(mean {v['agreement_mean_db']:.2f}, floor {v['floor_db']}), worst task drop "
                     f"{v['worst_task_drop_db']:.3f} dB (budget {v['budget_db']}), {v['seconds']} s")
    for path, s in result["vs_packing_host"].items():
        lines.append(f"  {path} vs the packing host ({result['packing_host'].get('model')}): "
                     + ("" if "identical" not in s else "identical outputs" if s["identical"]
                        else f"PSNR min {s['psnr_min_db']:.2f} dB (mean {s['psnr_mean_db']:.2f})")
                     + f"{', ' if 'identical' in s else ''}tiles bit for bit the same {s['tiles_bitwise_identical']}")
    if "xnnpack_vs_builtin" in result:
        s = result["xnnpack_vs_builtin"]
        lines.append(f"  xnnpack vs builtin on this host: PSNR min {s['psnr_min_db']:.2f} dB")
    return "\n".join(lines)


def cmd_run(args) -> None:
    result, _ = evaluate(Path(args.outdir), args.threads)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)
    print(summary(result))
    print(f"written {out}")


# ---- pack and merge: the project's own code (torch, conversion, mobile)

def write_arrays(folder: Path, meta: dict, arrays: dict) -> None:
    stored = {}
    for k, a in arrays.items():
        if a.dtype.kind == "f":
            stored[k] = shuffled(a)
            meta["shuffled"][k] = {"shape": list(a.shape), "dtype": a.dtype.name}
        else:
            stored[k] = a
    np.savez_compressed(folder / ARRAYS, **stored)
    back = load_arrays(folder, meta)
    assert all(np.array_equal(back[k], a) and back[k].dtype == a.dtype for k, a in arrays.items())
    (folder / META).write_text(json.dumps(meta, indent=2) + "\n")


def cmd_pack(args) -> None:
    sys.path.insert(0, str(ROOT))
    import torch

    from anyir_core.metrics import _as_uint8_levels
    from anyir_core.metrics import psnr as project_psnr
    from anyir_core.metrics import psnr_float as project_psnr_float
    from conversion.source import ModelSource
    from conversion.tflite_backend import io_quantization
    from conversion.tflite_backend import _interpreter as project_interpreter
    from conversion.verify import INT8_TASK_DROP_BUDGET, THRESHOLDS, _hwc, _nchw, verification_set, verify
    from mobile.bundle import verify_bundle

    bundle, outdir = Path(args.bundle), Path(args.outdir)
    checked = verify_bundle(bundle)
    if not checked["ok"]:
        raise SystemExit(f"{bundle}: {checked['problems'][0]}")
    manifest = checked["manifest"]
    arts = [a for a in manifest["artifacts"] if a["backend"] == "tflite" and a["precision"] == "int8"]
    if not arts:
        raise SystemExit(f"{bundle}: no int8 LiteRT artifact")
    a = arts[0]
    f = bundle / a["paths"]["android"]
    tasks = list(a["quality"]["tiles"])
    h, w, layout = a["input"]["height"], a["input"]["width"], a["input"]["layout"]
    src = ModelSource(manifest["model"]["checkpoint"]["name"], preset=manifest["model"]["preset"],
                      quant_state=str(bundle / "provenance" / "quant"))
    threads = torch.get_num_threads()  # what the project's runner gives the interpreter

    print(f"verifying {f.name} with conversion/verify.py ({threads} threads) ...", flush=True)
    v = verify(f, source=src, tasks=tasks)  # the project's verdict here; its memo keeps the reference outputs
    memo = src.memo["verify_outputs"]
    items = verification_set(h, w, tasks)
    xs = np.concatenate([_nchw(deg) for _, _, deg, _ in items])
    reference = np.concatenate([memo[("int8", (1, 3, h, w), n, t, src.quant_state)] for n, t, _, _ in items])
    photos = list(dict.fromkeys(n for n, *_ in items))
    clean_by_photo = {n: c for n, _, _, c in items}
    clean = np.stack([_as_uint8_levels(clean_by_photo[n]) for n in photos])
    assert np.array_equal(clean.astype(np.uint8).astype(np.float64), clean), "clean tiles are not 8-bit levels"
    clean = clean.astype(np.uint8)
    tiles = []
    for k, ((name, task, deg, c), row) in enumerate(zip(items, v["per_image"])):
        assert (row["image"], row["task"]) == (name, task)
        fp = memo[("eager", (1, 3, h, w), name, task, None)]
        assert project_psnr(_hwc(fp), c) == row["fp32_psnr"]
        assert project_psnr(_hwc(fp), c) == psnr_levels(_hwc(fp), clean[photos.index(name)])
        assert project_psnr_float(fp, reference[k:k + 1]) == psnr_float(fp, reference[k:k + 1])
        tiles.append({"image": name, "task": task, "clean": photos.index(name), "fp32_psnr": row["fp32_psnr"]})

    levels = np.round(xs * 255.0)
    exact = np.array_equal((levels.astype(np.uint8).astype(np.float32) / np.float32(255.0)), xs) and not args.float_inputs
    io = io_quantization(project_interpreter(f, 1))
    meta = {"format": FORMAT, "what": __doc__.splitlines()[0], "bundle": str(bundle), "bundle_id": manifest.get("id"),
            "artifact": {"id": a["id"], "file": f.name, "sha256": hashlib.sha256(f.read_bytes()).hexdigest(),
                         "bytes": f.stat().st_size, "layout": layout, "tile": [h, w], "io": io},
            "threads": threads, "tasks": tasks, "photos": photos, "tiles": tiles,
            "rule": {"floor_db": THRESHOLDS["int8"], "task_drop_budget_db": INT8_TASK_DROP_BUDGET,
                     "text": "pass when agreement (min over tiles of PSNR vs the fake-quantized reference) >= floor and "
                             "every task's mean PSNR drop vs eager fp32 <= budget (conversion/verify.py int8_verdict)"},
            "arrays": {"inputs": "NCHW tiles, " + ("uint8 levels (x/255 reproduces the float tiles exactly)" if exact
                                                    else "float32 in [0, 1]"),
                       "reference": "NCHW float32, the Q/DQ PyTorch module's outputs",
                       "clean": "HWC uint8 clean tiles, one per photo (tiles[k].clean)",
                       "raw_xnnpack": "the packing host's raw XNNPACK output tensors (the artifact's layout and dtype); "
                                      "every path's as per-tile sha256 in raw_sha256",
                       "float arrays": "byte-shuffled (see shuffled), then deflated: lossless"},
            "build_manifest": {"drop_vs_fp32": {t: q["drop_vs_fp32"] for t, q in a["quality"]["tiles"].items()},
                               "numerics": a.get("numerics")},
            "verify_here": {k: v[k] for k in ("numeric_psnr_min", "numeric_psnr_mean", "worst_task_drop", "passed",
                                              "failed_on", "threshold", "task_drop_budget")}
            | {"per_task_drop": {t: d["drop_vs_fp32"] for t, d in v["per_task"].items()}},
            "host": host_info()}

    outdir.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{outdir.name}-", dir=outdir.parent))
    try:
        shutil.copyfile(f, staged / f.name)
        shutil.copyfile(__file__, staged / Path(__file__).name)  # the run path, should the repo not travel
        arrays = {"inputs": levels.astype(np.uint8) if exact else xs, "reference": reference, "clean": clean}
        meta["shuffled"] = {}
        write_arrays(staged, meta, arrays)
        # this host through the run path itself: both hosts' numbers come from the same lines
        result, raws = evaluate(staged, threads)
        here = result["paths"]["xnnpack"]
        for row, mine in zip(v["per_image"], here["per_tile"]):  # the run path is verify's arithmetic
            assert row["numeric_psnr"] == mine["numeric_psnr"] and row["psnr"] == mine["psnr"], (row, mine)
        assert here["worst_task_drop_db"] == v["worst_task_drop"] and here["passed"] == v["passed"]
        assert here["agreement_min_db"] == v["numeric_psnr_min"]
        # the default delegate's outputs travel whole (30 MB allows one path), every path's as tile hashes
        meta["raw_sha256"] = {p: tile_hashes(r) for p, r in raws.items()}
        write_arrays(staged, meta, {**arrays, "raw_xnnpack": raws["xnnpack"]})
        meta["result_here"] = {k: result[k] for k in ("threads", "paths", "xnnpack_vs_builtin")}
        (staged / META).write_text(json.dumps(meta, indent=2) + "\n")
        if outdir.exists():
            shutil.rmtree(outdir)
        staged.chmod(0o755)  # mkdtemp's folder is private; the pack is meant to be carried
        staged.rename(outdir)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    size = sum(p.stat().st_size for p in outdir.iterdir())
    print(summary(result))
    print(f"verify.py here: agreement min {v['numeric_psnr_min']:.2f} dB, worst drop {v['worst_task_drop']:.3f} dB, "
          f"{'PASS' if v['passed'] else 'FAIL'}; the run path gives the same numbers")
    print(f"written {outdir} ({size / 2**20:.1f} MiB)")


def cmd_merge(args) -> None:
    """Add a run's RESULT to int8_spread.json under "other_hosts" (one entry per host and artifact, replaced)."""
    result = json.loads(Path(args.result).read_text())
    if result.get("format") != FORMAT + "/result":
        raise SystemExit(f"{args.result}: not a result of `int8_other_host.py run`")
    into = Path(args.into)
    doc = json.loads(into.read_text())
    entry = {"host": result["host"], "artifact": result["artifact"]["id"], "sha256": result["artifact"]["sha256"],
             "tiles": result["tiles"], "threads": result["threads"], "packing_host": result["packing_host"].get("model"),
             "paths": {p: {k: r[k] for k in ("agreement_min_db", "agreement_mean_db", "worst_task_drop_db", "passed",
                                             "failed_on", "floor_db", "budget_db", "seconds")}
                       for p, r in result["paths"].items()},
             "vs_packing_host": result["vs_packing_host"], "xnnpack_vs_builtin": result.get("xnnpack_vs_builtin")}
    key = (entry["host"].get("model"), entry["host"]["platform"], entry["artifact"])
    doc["other_hosts"] = [e for e in doc.get("other_hosts", [])
                          if (e["host"].get("model"), e["host"]["platform"], e["artifact"]) != key] + [entry]
    tmp = into.with_name(f".{into.name}.partial")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(into)
    print(f"{into}: other_hosts has {len(doc['other_hosts'])} entries; rerun python benchmarks/readme_tables.py")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="here: the tiles, the reference and this host's result, next to the .tflite")
    p.add_argument("bundle")
    p.add_argument("outdir")
    p.add_argument("--float-inputs", action="store_true", help="keep the input tiles float32 even where 8-bit levels are exact")
    r = sub.add_parser("run", help="on the other host: numpy and ai_edge_litert only")
    r.add_argument("outdir")
    r.add_argument("--json", required=True)
    r.add_argument("--threads", type=int, default=None, help="interpreter threads (default: the packing host's)")
    m = sub.add_parser("merge", help="add a run's RESULT to int8_spread.json under other_hosts")
    m.add_argument("result")
    m.add_argument("--into", default=str(ROOT / "benchmarks" / "results" / "int8_spread.json"))
    args = ap.parse_args(argv)
    {"pack": cmd_pack, "run": cmd_run, "merge": cmd_merge}[args.cmd](args)


if __name__ == "__main__":
    main()
