"""The whole-pipeline table of a bundle: per artifact, size, host latency ratio to eager fp32 (re-timed
now, side by side in one run), numeric PSNR vs its reference and task PSNR (as verified at build time).

    python benchmarks/bench_bundle.py dist/anyir-mobile-0.1.0 [--repeats 20] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    import torch

    from conversion.base import get_backend, read_record
    from conversion.source import ModelSource
    from mobile.bundle import verify_bundle
    from mobile.measure import host_latency

    check = verify_bundle(args.bundle)
    if not check["ok"]:
        raise SystemExit(f"{args.bundle}: {check['problems'][0]}")
    m = check["manifest"]
    root = Path(args.bundle)
    runners = []
    for a in m["artifacts"]:
        f = root / next(iter(a["paths"].values()))
        runner = get_backend(a["backend"]).load(read_record(f), f.parent)
        if getattr(runner, "emulated", False):
            continue  # Core ML off Apple hardware: only the reference interpreter runs it, which is no speed
        runners.append((a["id"], runner))
    eager = ModelSource(m["model"]["checkpoint"]["name"], preset=m["model"]["preset"]).eager_model().eval()
    tile = tuple(m["input"]["tile"])
    lat = host_latency(eager, runners, tile, args.repeats)
    tasks = list(m["artifacts"][0]["quality"]["tiles"]) if m["artifacts"] else []
    print(f"{m['name']} {m['version']}: {len(runners)} artifacts, tile {tile[0]}x{tile[1]}, {lat['threads']} threads,"
          f" median of {args.repeats} interleaved runs; numerics/task PSNR from the build's verification")
    head = f"{'artifact':<22}{'MB':>7}{'ms':>8}{'x eager':>9}{'vs ref dB':>11}{'photo gain':>12}  " + \
        " ".join(f"{t:>8}" for t in tasks)
    print(head)
    first = m["artifacts"][0]["quality"]["tiles"] if m["artifacts"] else {}
    print(f"{'eager fp32':<22}{'-':>7}{lat['eager_ms_median']:>8.1f}{1.0:>9.2f}{'-':>11}{'-':>12}  "
          + " ".join(f"{first[t]['fp32_psnr']:>8.2f}" for t in tasks))
    rows = []
    for a in m["artifacts"]:
        la = lat["artifacts"].get(a["id"])
        if la is None:
            print(f"{a['id']:<22}{a['bytes'] / 1e6:>7.2f}{'on device only':>17}{a['numerics']['psnr_min']:>11.1f}")
            continue
        gain = sum(p["gain"] for p in a["quality"]["photos"]) / max(1, len(a["quality"]["photos"]))
        print(f"{a['id']:<22}{a['bytes'] / 1e6:>7.2f}{la['host_ms_median']:>8.1f}{la['speedup_vs_eager']:>9.2f}"
              f"{a['numerics']['psnr_min']:>11.1f}{gain:>12.2f}  "
              + " ".join(f"{a['quality']['tiles'][t]['psnr']:>8.2f}" for t in tasks))
        rows.append({"id": a["id"], "bytes": a["bytes"], **la, "numeric_psnr_min": a["numerics"]["psnr_min"],
                     "photo_gain_mean": gain, "task_psnr": {t: a["quality"]["tiles"][t]["psnr"] for t in tasks}})
    print("photo gain: mean PSNR gain over the input on the whole held-out photos, tiled as `anyir restore` does")
    if args.json:
        Path(args.json).write_text(json.dumps({"eager_ms_median": lat["eager_ms_median"], "rows": rows,
                                               "threads": torch.get_num_threads()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
