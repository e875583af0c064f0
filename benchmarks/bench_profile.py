"""Does `anyir profile --target host` rank a bundle's artifacts as `bench_backends.py` does? Both, one run.

    python benchmarks/bench_profile.py dist/anyir-mobile-0.1.0 [--runs 20] [--out benchmarks/results/profile_host.json]

Runs the host profile of every artifact of the bundle (the profile-1 JSON goes to --out), then
`bench_backends.py` on the bundle's android/ folder, and prints each artifact's speed-up over eager PyTorch as
both measured it, with their ratio, and each artifact's speed relative to the first one (the ratios between
artifacts, which eager's own noise does not move). The two time differently (the profile interleaves rounds of every
artifact; bench_backends times one artifact after another), so the ratio column is what to read: a value near
1.00 means the two agree, and how far from 1.00 two back-to-back runs of bench_backends land is this
machine's noise (printed too, from a second bench_backends run).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def bench_names(art_id: str) -> str:
    """profile id -> bench_backends' row name ('executorch-int8' -> 'executorch int8', '-nhwc' -> ' NHWC')."""
    parts = art_id.split("-")
    name = f"{parts[0]} {parts[1]}"
    return name + (f" {parts[2].upper()}" if len(parts) > 2 else "")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle", type=Path)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "profile_host.json")
    args = p.parse_args(argv)
    cmd = [sys.executable, "-m", "mobile.cli", "profile", str(args.bundle), "--runs", str(args.runs), "--out",
           str(args.out), "--quiet"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"anyir profile failed: {r.stderr.strip()[-300:]}")
    print(r.stdout)
    prof = json.loads(args.out.read_text())
    import bench_backends
    runs = [bench_backends.main(["--artifacts", str(args.bundle / "android"), "--repeats", str(args.runs), "--no-onnx"])
            for _ in range(2)]
    rows = {x["artifact"]["id"]: x for x in prof["results"]}
    eager = rows["eager-pytorch-fp32"]["latency"]["median"]
    print(f"\n{'artifact':<22}{'profile x eager':>17}{'bench x eager':>15}{'bench again':>13}{'profile/bench':>15}"
          f"{'bench/bench':>13}")
    print("(eager's own noise moves every 'x eager' column together; the ratios between artifacts below are the check)")
    table = []
    for aid, res in rows.items():
        if aid == "eager-pytorch-fp32" or not res.get("is_device_timing", True) or res["status"] != "ok":
            continue
        name = bench_names(aid)
        b = [next((x for x in run["rows"] if x["name"] == name), None) for run in runs]
        if not all(b) or any("skipped" in x for x in b):
            continue
        prof_x = eager / res["latency"]["median"]
        bx = [x["speedup"] for x in b]
        table.append({"artifact": aid, "profile_speedup": prof_x, "bench_speedup": bx[0], "bench_speedup_again": bx[1],
                      "profile_over_bench": prof_x / bx[0], "bench_over_bench": bx[1] / bx[0]})
        print(f"{aid:<22}{prof_x:>16.2f}x{bx[0]:>14.2f}x{bx[1]:>12.2f}x{prof_x / bx[0]:>15.2f}{bx[1] / bx[0]:>13.2f}")
    if table:  # between artifacts: each one's speed relative to the first artifact, as each run measured it
        base = table[0]
        print(f"\n{'vs ' + base['artifact']:<22}{'profile':>10}{'bench':>10}{'bench again':>13}{'profile-bench':>15}"
              f"{'bench-bench':>13}")
        for row in table:
            rel = [row[k] / base[k] for k in ("profile_speedup", "bench_speedup", "bench_speedup_again")]
            row["relative"] = {"profile": rel[0], "bench": rel[1], "bench_again": rel[2]}
            print(f"{row['artifact']:<22}{rel[0]:>10.2f}{rel[1]:>10.2f}{rel[2]:>13.2f}{rel[0] - rel[1]:>15.2f}"
                  f"{rel[2] - rel[1]:>13.2f}")
    result = {"bundle": str(args.bundle), "cpu": prof["target"]["cpu"], "threads": prof["settings"]["threads"],
              "runs": args.runs, "rows": table}
    (args.out.with_name(args.out.stem + "_vs_bench.json")).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
