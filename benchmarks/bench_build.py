"""Cold build, then warm rebuild of the same config, into a fresh temp cache: the stage table of each and the
warm/cold ratio, measured in one run (each build is its own `anyir build` process, as a user runs it).

    python benchmarks/bench_build.py [--json out.json] [-- BUILD FLAGS...]
    python benchmarks/bench_build.py -- --checkpoint tiny.safetensors --size 32 --backends tflite --precisions fp32

With no build flags it builds the default config (20+ minutes cold on 2 cores). Flags after `--` go to
`anyir build` unchanged; --out, --cache-dir, --force and --quiet are set here.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_build(flags: list[str], out: Path, cache: Path) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "mobile.cli", "build", *flags, "--out", str(out), "--cache-dir", str(cache),
           "--force", "--quiet"]
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode:
        raise SystemExit(f"anyir build failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    dest = next(p for p in out.iterdir() if (p / "manifest.json").is_file())
    return wall, json.loads((dest / "manifest.json").read_text())


def stage_table(cold: dict, warm: dict) -> str:
    rows = {s["stage"]: s for s in warm["build"]["stages"]}
    lines = [f"{'stage':<44}{'cold s':>9}{'warm s':>9}  warm from"]
    for s in cold["build"]["stages"]:
        w = rows.get(s["stage"], {})
        how = "cache" if w.get("cached") else "run again" if w else "-"
        lines.append(f"{s['stage']:<44}{s['seconds']:>9.1f}{w.get('seconds', float('nan')):>9.1f}  {how}")
    return "\n".join(lines)


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    flags = argv[argv.index("--") + 1:] if "--" in argv else []
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write both builds' records here (default with no build flags: "
                    "benchmarks/results/build.json, which the README's build-time table is generated from)")
    ap.add_argument("--keep", help="copy the cold build's bundle to this folder")
    args = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)

    with tempfile.TemporaryDirectory(prefix="bench-build-") as d:
        d = Path(d)
        cold_wall, cold = run_build(flags, d / "dist", d / "cache")
        if args.keep:  # the cold build's bundle, for benchmarks that read one (int8_spread.py, bench_profile.py)
            import shutil
            shutil.rmtree(args.keep, ignore_errors=True)
            shutil.copytree(next(p for p in (d / "dist").iterdir() if (p / "manifest.json").is_file()), args.keep)
        warm_wall, warm = run_build(flags, d / "dist", d / "cache")
        cache_mb = sum(f.stat().st_size for f in (d / "cache").rglob("*") if f.is_file()) / 1e6
    host = cold["builder"]["host"]
    print(f"anyir build {' '.join(flags) or '(default config)'}")
    print(f"host: {host['machine']}, {host['cpus']} CPUs, {host['threads']} torch threads; cache {cache_mb:.1f} MB")
    print(stage_table(cold, warm))
    hits = sum(1 for s in warm["build"]["stages"] if s.get("cached"))
    print(f"cold: {cold_wall:.1f} s wall ({cold['build']['seconds']:.1f} s in the build)")
    print(f"warm: {warm_wall:.1f} s wall ({warm['build']['seconds']:.1f} s in the build), "
          f"{hits} of {len(warm['build']['stages'])} stages from the cache")
    print(f"warm/cold: {warm_wall / cold_wall:.3f} (wall), {warm['build']['seconds'] / cold['build']['seconds']:.3f} (build)")
    same = [a["sha256"] for a in cold["artifacts"]] == [a["sha256"] for a in warm["artifacts"]]
    print(f"artifacts identical: {same}; default artifact cold {cold['default_artifact']}, warm {warm['default_artifact']}")
    out = args.json or (str(ROOT / "benchmarks" / "results" / "build.json") if not flags else None)
    if out:  # the default config's numbers are what the README's build-time table is generated from
        def record(wall, m):
            return {"wall_s": round(wall, 1), **m["build"],
                    "artifacts": [{"id": a["id"], "passed": a["numerics"]["passed"], "psnr_min": a["numerics"]["psnr_min"],
                                   "worst_task_drop": a["numerics"].get("worst_task_drop")} for a in m["artifacts"]],
                    "failed": m["failed"]}
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), None) if Path("/proc/cpuinfo").is_file() else None
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps({"flags": flags, "date": time.strftime("%Y-%m-%d"), "host": {**host, "model": cpu},
                                         "cache_mb": round(cache_mb, 1), "cold": record(cold_wall, cold),
                                         "warm": record(warm_wall, warm)}, indent=1) + "\n")
        print(f"written {out}")


if __name__ == "__main__":
    main()
