"""Host latency of every runtime on the same input, in one run, as ratios to eager PyTorch fp32.

    python benchmarks/bench_backends.py --artifacts DIR [--checkpoint default] [--size 256] [--repeats 10]

Rows: eager PyTorch fp32 (the released FFT fusion), the export form in eager PyTorch, ONNX Runtime fp32
on the export form (the peer a user would otherwise pick; `pip install -e '.[bench]'`), and every
artifact in DIR that this host can run (`anyir export` writes them with a record beside each). For each:
size, median latency after warm-up, speed-up over eager fp32, achieved GMAC/s, next to this machine's
own measured fp32 matmul GFLOP/s. Machines here are shared and noisy: compare ratios, not absolutes.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
logging.getLogger("torchao").setLevel(logging.ERROR)

from anyir_core import load_checkpoint  # noqa: E402
from anyir_core.export import export_form  # noqa: E402
from anyir_core.inspect import count_macs  # noqa: E402


def median_time(fn, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def matmul_gflops(threads: int, n: int = 1024) -> float:
    a, b = torch.rand(n, n), torch.rand(n, n)
    t = median_time(lambda: torch.mm(a, b), 3, 10)
    return 2 * n ** 3 / t / 1e9


def onnxruntime_row(fp_model, x: torch.Tensor, threads: int, warmup: int, repeats: int) -> dict:
    try:
        import onnxruntime as ort
    except ImportError:
        return {"name": "onnxruntime fp32", "skipped": "onnxruntime not installed: pip install -e '.[bench]'"}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "anyir.onnx"
        torch.onnx.export(fp_model, (x,), str(path), input_names=["image"], output_names=["restored"], dynamo=True,
                          external_data=False)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        feed = {"image": x.numpy()}
        out = sess.run(None, feed)[0]
        t = median_time(lambda: sess.run(None, feed), warmup, repeats)
        size = path.stat().st_size
    return {"name": "onnxruntime fp32", "seconds": t, "bytes": size, "output": out,
            "version": ort.__version__}


def artifact_rows(folder: Path, x: np.ndarray, warmup: int, repeats: int) -> list[dict]:
    from conversion.base import BackendUnavailable, get_backend, read_record

    rows = []
    for rec in sorted(folder.glob("*.json")):
        try:
            art = read_record(rec)
        except Exception:
            continue  # not an artifact record
        name = f"{art.backend} {art.precision}" + (f" {art.input.layout}" if art.input.layout != "NCHW" else "")
        if (art.input.height, art.input.width) != tuple(x.shape[-2:]):
            rows.append({"name": name, "skipped": f"exported for {art.input.height}x{art.input.width}"})
            continue
        try:
            runner = get_backend(art.backend).load(art, folder)
        except BackendUnavailable as e:
            rows.append({"name": name, "skipped": str(e)})
            continue
        xin = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if art.input.layout == "NHWC" else x
        out = runner.run_nchw(x)
        t = median_time(lambda: runner.run(xin), warmup, repeats)
        rows.append({"name": name, "file": art.file, "seconds": t, "bytes": art.bytes, "output": out})
    return rows


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="default")
    p.add_argument("--artifacts", type=Path, help="folder of artifacts written by `anyir export`")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--no-onnx", action="store_true")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    model = load_checkpoint(args.checkpoint).eval()
    fp = export_form(model).eval()
    macs = count_macs(fp, (args.size, args.size))
    x = torch.from_numpy(np.random.default_rng(0).random((1, 3, args.size, args.size), dtype=np.float32))
    rows = []
    with torch.no_grad():
        ref = model.forward_unpadded(x).numpy()
        rows.append({"name": "eager pytorch fp32", "seconds": median_time(lambda: model.forward_unpadded(x), args.warmup,
                                                                          args.repeats), "output": ref})
        rows.append({"name": "export form pytorch fp32", "seconds": median_time(lambda: fp(x), args.warmup, args.repeats),
                     "output": fp(x).numpy()})
    if not args.no_onnx:
        rows.append(onnxruntime_row(fp, x, args.threads, args.warmup, args.repeats))
    if args.artifacts:
        rows += artifact_rows(args.artifacts, x.numpy(), args.warmup, args.repeats)
    gflops = matmul_gflops(args.threads)

    base = rows[0]["seconds"]
    print(f"AnyIR {getattr(model, 'preset', '')} at {args.size}x{args.size}, batch 1, {args.threads} thread(s); "
          f"{macs / 1e9:.2f} GMACs per run; this machine's fp32 matmul: {gflops:.1f} GFLOP/s ({gflops / 2:.1f} GMAC/s)")
    print(f"{'runtime':<34}{'size MB':>9}{'median ms':>11}{'vs eager':>10}{'GMAC/s':>9}{'PSNR vs eager':>15}")
    for r in rows:
        if "skipped" in r:
            print(f"{r['name']:<34}  skipped: {r['skipped']}")
            continue
        diff = float(np.mean((np.clip(r["output"], 0, 1) - np.clip(ref, 0, 1)) ** 2))
        r["psnr_vs_eager"] = float("inf") if diff == 0 else 10 * np.log10(1 / diff)
        r["speedup"] = base / r["seconds"]
        r["gmacs_per_s"] = macs / r["seconds"] / 1e9
        size = f"{r['bytes'] / 1e6:.2f}" if r.get("bytes") else "-"
        print(f"{r['name']:<34}{size:>9}{1000 * r['seconds']:>11.1f}{r['speedup']:>9.2f}x{r['gmacs_per_s']:>9.1f}"
              f"{r['psnr_vs_eager']:>15.1f}")
    result = {"size": args.size, "threads": args.threads, "macs": macs, "matmul_gflops": gflops,
              "rows": [{k: v for k, v in r.items() if k != "output"} for r in rows]}
    sizes = {r["name"]: r["bytes"] for r in rows if r.get("bytes")}
    if "executorch fp32" in sizes and "executorch int8" in sizes:
        print(f"int8 .pte / fp32 .pte size: {sizes['executorch int8'] / sizes['executorch fp32']:.1%}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=float) + "\n")
    return result


if __name__ == "__main__":
    main()
