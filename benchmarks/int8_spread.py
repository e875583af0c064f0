"""How far correct int8 runtimes of the same graph differ: the measurement the int8 agreement floor rests on.

For a bundle's int8 artifacts it runs the verification tiles the build uses (held-out photos, every task)
through every int8 runtime it can reach on this host and compares all of them pairwise and with the
fake-quantized PyTorch reference (PSNR, dB; the minimum over tiles):

- ExecuTorch, XNNPACK, on this CPU's own kernels (e.g. AVX2);
- LiteRT with its default XNNPACK delegate, and LiteRT with its built-in kernels only (no XNNPACK);
- ExecuTorch and LiteRT/XNNPACK again under QEMU user-mode emulating a CPU without AVX (`--qemu-cpu`,
  default Westmere: SSE4.2), so XNNPACK picks its SSE kernels: a second XNNPACK kernel path forced on one host.

Contrasts (what a wrong or missing quantization looks like on the same tiles): eager fp32 against the reference,
and the reference with one activation quantizer's scale doubled. Then, with the rule in conversion/verify.py,
each int8 artifact's verdict on each kernel path.

    python benchmarks/int8_spread.py BUNDLE [--no-qemu] [--json benchmarks/results/int8_spread.json]

QEMU: `apt-get install qemu-user` (Debian 12: QEMU 7.2, whose TCG emulates up to AVX2; no AVX-512).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def worker(artifact: str, inputs: str, out: str, builtin: bool = False) -> None:
    """Run one artifact on the saved NCHW tiles (in this process: possibly under QEMU) and save its outputs."""
    import torch

    from conversion.base import get_backend, read_record
    art = read_record(artifact)
    runner = get_backend(art.backend).load(art, Path(artifact).parent)
    if builtin:  # LiteRT's own kernels: no XNNPACK delegate
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
        runner.interp = Interpreter(model_path=str(artifact), num_threads=torch.get_num_threads(),
                                    experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        runner.interp.allocate_tensors()
        runner.inp = runner.interp.get_input_details()[0]["index"]
        runner.out = runner.interp.get_output_details()[0]["index"]
    xs = np.load(inputs)
    t = time.perf_counter()
    ys = np.stack([runner.run_nchw(x[None])[0] for x in xs])
    np.savez(out, outputs=ys, seconds=time.perf_counter() - t,
             torch_cpu_capability=torch.backends.cpu.get_cpu_capability())


def run_worker(artifact: Path, inputs: Path, out: Path, qemu: str | None = None, builtin: bool = False) -> dict:
    cmd = ([shutil.which("qemu-x86_64"), "-cpu", qemu] if qemu else []) + \
          [sys.executable, __file__, "--worker", str(artifact), str(inputs), str(out)] + (["--builtin"] if builtin else [])
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if r.returncode:
        raise SystemExit(f"worker failed ({' '.join(cmd[:4])} ...): {r.stderr.strip()[-1500:]}")
    z = np.load(out)
    return {"outputs": z["outputs"], "seconds": float(z["seconds"]), "cpu": str(z["torch_cpu_capability"])}


def mutated_reference(reference, factor: float = 2.0):
    """A copy of the Q/DQ module with one activation quantizer's scale (mid-graph) multiplied by `factor`."""
    import copy

    import torch
    gm = copy.deepcopy(reference)
    qs = [n for n in gm.graph.nodes if n.op == "call_function" and "quantize_per_tensor" in str(n.target)
          and "dequantize" not in str(n.target) and isinstance(n.args[1], float)]
    node = qs[len(qs) // 2]
    node.args = (node.args[0], node.args[1] * factor, *node.args[2:])
    for user in node.users:  # its dequantize reads the same (now wrong) scale, as a mis-converted pair would
        if "dequantize" in str(user.target):
            user.args = (user.args[0], user.args[1] * factor, *user.args[2:])
    gm.recompile()
    return gm, str(node.name)


def main(argv=None) -> None:
    import torch

    from anyir_core.metrics import psnr_float
    from conversion.source import ModelSource
    from conversion.verify import _nchw, int8_verdict, verification_set
    from mobile.bundle import verify_bundle

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--qemu-cpu", default="Westmere")
    ap.add_argument("--no-qemu", action="store_true")
    ap.add_argument("--qemu-backends", default="executorch",
                    help="which runtimes run under QEMU (tflite: the backend imports litert-torch, whose jaxlib refuses "
                         "a CPU without AVX at import)")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "int8_spread.json"))
    args = ap.parse_args(argv)
    bundle = Path(args.bundle)
    checked = verify_bundle(bundle)
    if not checked["ok"]:
        raise SystemExit(f"{bundle}: {checked['problems'][0]}")
    manifest = checked["manifest"]
    arts = {a["id"]: a for a in manifest["artifacts"] if a["precision"] == "int8" and a["backend"] in ("executorch", "tflite")}
    if not arts:
        raise SystemExit(f"{bundle}: no int8 ExecuTorch or LiteRT artifact")
    qemu = None if args.no_qemu else shutil.which("qemu-x86_64")
    if not args.no_qemu and not qemu:
        raise SystemExit("qemu-x86_64 not found: apt-get install qemu-user, or pass --no-qemu")

    first = next(iter(arts.values()))
    h, w = first["input"]["height"], first["input"]["width"]
    items = verification_set(h, w, list(first["quality"]["tiles"]))  # the tasks the build verified
    xs = np.concatenate([_nchw(deg) for _, _, deg, _ in items])
    qstate = bundle / "provenance" / "quant"
    src = ModelSource(manifest["model"]["checkpoint"]["name"], preset=manifest["model"]["preset"], quant_state=str(qstate))
    with torch.no_grad():
        ref_mod = src.quantized_model(__import__("conversion.base", fromlist=["InputSpec"]).InputSpec(h, w))
        outputs = {"reference (Q/DQ PyTorch)": np.concatenate([ref_mod(torch.from_numpy(x[None])).numpy() for x in xs])}
        eager = src.eager_model()
        contrast = {"eager fp32 (no quantization)": np.concatenate([eager(torch.from_numpy(x[None])).numpy() for x in xs])}
        bad, where = mutated_reference(ref_mod)
        contrast[f"reference, one scale x2 ({where})"] = np.concatenate([bad(torch.from_numpy(x[None])).numpy() for x in xs])

    paths, meta = {}, {}
    with tempfile.TemporaryDirectory(prefix="int8-spread-") as d:
        inputs = Path(d) / "inputs.npy"
        np.save(inputs, xs)
        for aid, a in arts.items():
            f = bundle / a["paths"]["android"]
            runs = [("native", None, False)] + ([("builtin", None, True)] if a["backend"] == "tflite" else []) \
                + ([("qemu", args.qemu_cpu, False)] if qemu and a["backend"] in args.qemu_backends.split(",") else [])
            for how, cpu, builtin in runs:
                label = {"native": f"{aid} XNNPACK, this CPU", "builtin": f"{aid} built-in kernels (no XNNPACK)",
                         "qemu": f"{aid} XNNPACK under QEMU -cpu {cpu}"}[how]
                print(f"running {label} ...", flush=True)
                r = run_worker(f, inputs, Path(d) / f"{aid}-{how}.npz", cpu, builtin)
                outputs[label], meta[label] = r["outputs"], {"artifact": aid, "path": how, "seconds": round(r["seconds"], 1),
                                                             "torch_cpu_capability": r["cpu"]}
                paths[label] = (aid, how)

    def agree(a, b):
        return round(min(psnr_float(a[i:i + 1], b[i:i + 1]) for i in range(len(a))), 2)

    names = list(outputs)
    pairs = [{"a": a, "b": b, "psnr_min": agree(outputs[a], outputs[b])} for a, b in itertools.combinations(names, 2)]
    runtime_pairs = [p for p in pairs if not p["a"].startswith("reference") and not p["b"].startswith("reference")]
    vs_ref = [p for p in pairs if p["a"].startswith("reference")]
    contrasts = [{"what": k, "psnr_min_vs_reference": agree(v, outputs[names[0]])} for k, v in contrast.items()]
    spread = min(p["psnr_min"] for p in runtime_pairs + vs_ref)

    # the verdict of each artifact on each path, by the rule the build applies (task drops are the build's)
    verdicts = []
    for label, (aid, how) in paths.items():
        a = arts[aid]
        drops = {t: q["drop_vs_fp32"] for t, q in a["quality"]["tiles"].items()}
        v = int8_verdict(agree(outputs[label], outputs[names[0]]), drops)
        verdicts.append({"runtime": label, "agreement_db": agree(outputs[label], outputs[names[0]]),
                         "worst_task_drop_db": round(max(drops.values()), 3), "passed": v["passed"],
                         "floor_db": v["floor"], "budget_db": v["budget"]})
    for a in manifest["artifacts"]:  # Core ML W8A8: executed here by the numpy interpreter, in the build's verify
        if a["backend"] == "coreml" and a["precision"] == "int8":
            drops = {t: q["drop_vs_fp32"] for t, q in a["quality"]["tiles"].items()}
            v = int8_verdict(a["numerics"]["psnr_min"], drops)
            verdicts.append({"runtime": f"{a['id']} (Core ML program in the numpy interpreter, the build's "
                                        f"{a['numerics']['tiles']} tiles)", "agreement_db": a["numerics"]["psnr_min"],
                             "worst_task_drop_db": round(max(drops.values()), 3), "passed": v["passed"],
                             "floor_db": v["floor"], "budget_db": v["budget"]})
    host = {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count()}
    try:
        host["model"] = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                             if line.startswith("model name"))
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
        host["avx512f"], host["avx2"] = " avx512f" in flags, " avx2" in flags
    except (OSError, StopIteration):
        pass
    doc = {"what": __doc__.splitlines()[0], "bundle": str(bundle), "tile": [h, w], "tiles": len(xs), "host": host,
           "runs": meta, "pairs": pairs, "spread_min_db": spread, "contrasts": contrasts, "verdicts": verdicts}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nPSNR (dB, min over {len(xs)} tiles) between int8 runtimes of the same graph and its reference:")
    for p in pairs:
        print(f"  {p['psnr_min']:6.2f}  {p['a']}  <->  {p['b']}")
    print(f"smallest agreement among correct runtimes and the reference: {spread:.2f} dB")
    for c in contrasts:
        print(f"  contrast {c['psnr_min_vs_reference']:6.2f}  {c['what']}")
    print("verdicts by the build's rule:")
    for v in verdicts:
        print(f"  {'PASS' if v['passed'] else 'FAIL'}  {v['runtime']}: {v['agreement_db']:.2f} dB (floor {v['floor_db']}), "
              f"worst task drop {v['worst_task_drop_db']:.3f} dB (budget {v['budget_db']})")
    print(f"written {args.json}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], sys.argv[4], builtin="--builtin" in sys.argv)
    else:
        main()
