"""Peak memory of `anyir restore` on a 12-megapixel photo through a bundle's artifact (target: < 2 GB).

The photo is a held-out built-in photo upscaled to 4000x3000 and degraded with noise25 (never seen in
training). `anyir restore` runs in a child process; its peak resident set size comes from the kernel
(getrusage of the children), next to a child that only loads the same runtime and artifact, so the
tiled path's own share is visible.

    python benchmarks/bench_restore_memory.py --bundle dist/anyir-mobile-0.1.0 [--backend B --precision P]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LIMIT_MB = 2048


def _child_peak_mb(cmd: list[str]) -> tuple[float, float, str]:
    """Run cmd in a fresh child; (peak RSS MB of that child, seconds, stderr tail)."""
    wrapper = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode); "
               "sys.stderr.write(r.stderr[-400:])")
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True)
    kb, rc = p.stdout.split()
    if rc != "0":
        raise SystemExit(f"child failed: {p.stderr}")
    return int(kb) / 1024, time.perf_counter() - t, p.stderr


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--backend")
    ap.add_argument("--precision")
    ap.add_argument("--size", nargs=2, type=int, default=[3000, 4000], metavar=("H", "W"))
    args = ap.parse_args(argv)

    import numpy as np
    from PIL import Image

    from anyir_core.data import load_builtin
    from anyir_core.degrade import degrade
    h, w = args.size
    with tempfile.TemporaryDirectory() as d:
        big = Image.fromarray((load_builtin("coffee") * 255 + 0.5).astype(np.uint8)).resize((w, h), Image.BICUBIC)
        noisy = degrade(np.asarray(big, dtype=np.float32) / 255.0, "noise25", seed=12)
        src = Path(d) / "photo12mp.png"
        Image.fromarray((noisy * 255 + 0.5).astype(np.uint8)).save(src)
        del big, noisy
        pick = [*(["--backend", args.backend] if args.backend else []),
                *(["--precision", args.precision] if args.precision else [])]
        load_only = [sys.executable, "-c",
                     "import sys; from mobile.cli_bundle import load_bundle_runner; "
                     "import numpy as np; e, r, m = load_bundle_runner(sys.argv[1], *(sys.argv[2:] + [None, None])[:2]); "
                     "t = m['input']['tile']; r.run_nchw(np.zeros((1, 3, t[0], t[1]), np.float32))",
                     args.bundle, args.backend or "", args.precision or ""]
        base_mb, _, _ = _child_peak_mb(load_only)
        peak_mb, secs, err = _child_peak_mb([sys.executable, "-m", "mobile.cli", "restore", str(src), "--bundle",
                                             args.bundle, *pick, "--out", str(Path(d) / "out.png"), "--quiet"])
        out = Image.open(Path(d) / "out.png")
        assert out.size == (w, h), out.size
    print(f"photo {w}x{h} ({w * h / 1e6:.1f} MP), bundle {args.bundle}")
    print(f"runtime + artifact loaded, one tile run: peak {base_mb:8.0f} MB")
    print(f"anyir restore, whole photo (tiled):      peak {peak_mb:8.0f} MB   {secs:6.1f} s")
    print(f"tiled path's own share:                        {peak_mb - base_mb:8.0f} MB")
    print(f"peak / limit ({LIMIT_MB} MB): {peak_mb / LIMIT_MB:.2f} -> {'OK' if peak_mb < LIMIT_MB else 'OVER'}")


if __name__ == "__main__":
    main()
