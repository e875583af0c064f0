"""`anyir profile compare R1.json R2.json ... [--plot P.png] [--into BUNDLE]`: profiles side by side.

The table has one row per artifact and one column per result file (host, each phone), the median latency in
each cell; the top operators of each runtime follow. `--into` adds the results to a bundle: the files go to
`profiles/`, the manifest lists them with a summary per artifact, the report gains a table, and every
checksum is rewritten, so `anyir bundle verify` still passes. The bundle is changed in a copy that replaces
it only when whole.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from .profiling import EAGER_ID, ProfileError, read_result

TOP_OPS = 10


def label(r: dict) -> str:
    t = r["target"]
    return t["device_model"] if t["kind"] != "host" else f"host {t['cpu']}"


def _median(res: dict) -> tuple[float | None, str]:
    """(ms, mark): the median, else the mean marked '~' (tools that print no per-run times)."""
    lat = res.get("latency") or {}
    if lat.get("median") is not None:
        return lat["median"], ""
    if lat.get("mean") is not None:
        return lat["mean"], "~"
    return None, ""


def table(results: list[dict], names: list[str]) -> str:
    cols = [f"{label(r)} [{Path(n).name}]" for r, n in zip(results, names)]
    rows: dict[str, list[str]] = {}
    for i, r in enumerate(results):
        for res in r["results"]:
            key = res["artifact"]["id"] + (f" ({res['runner']})" if res["runner"] not in ("", "eager PyTorch") else "")
            cells = rows.setdefault(key, [""] * len(results))
            ms, mark = _median(res)
            if res["status"] != "ok":
                cells[i] = "failed"
            elif ms is None:
                cells[i] = "-"
            else:
                cells[i] = f"{mark}{ms:.1f}" + ("" if res.get("is_device_timing", True) else " (interp.)")
    width = max([len(k) for k in rows] + [8]) + 2
    cw = max([len(c) for c in cols] + [12]) + 2
    lines = [f"{'median ms per tile':<{width}}" + "".join(f"{c:>{cw}}" for c in cols)]
    lines += [f"{k:<{width}}" + "".join(f"{v:>{cw}}" for v in vals) for k, vals in rows.items()]
    lines.append("~: mean (the tool reports no per-run times); (interp.): the Core ML reference interpreter, "
                 "not Core ML latency")
    return "\n".join(lines)


def top_ops(results: list[dict], names: list[str], top: int = TOP_OPS) -> str:
    lines = []
    seen = set()
    for r, n in zip(results, names):
        for res in r["results"]:
            key = (label(r), res["runtime"]["name"])
            if not res.get("ops") or key in seen:
                continue
            seen.add(key)
            lines.append(f"top {top} ops, {res['runtime']['name']} on {label(r)} ({res['artifact']['id']}):")
            for o in res["ops"][:top]:
                ms = f"{o['ms']:>10.2f} ms" if o["ms"] is not None else f"{'(cost)':>13}"
                lines.append(f"  {o['name'][:52]:<54}{o['count']:>6}{ms}{100 * (o.get('share') or 0):>7.1f}%")
    return "\n".join(lines)


def plot(results: list[dict], names: list[str], out: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    ids = []
    for r in results:
        for res in r["results"]:
            if res["artifact"]["id"] not in ids:
                ids.append(res["artifact"]["id"])
    with_ops = []
    for r in results:
        for res in r["results"]:
            if res.get("ops") and (label(r), res["runtime"]["name"]) not in [(a, b) for a, b, _ in with_ops]:
                with_ops.append((label(r), res["runtime"]["name"], res))
    with_ops = with_ops[:4]
    fig, axes = plt.subplots(1 + len(with_ops), 1, figsize=(10, 4 + 3.2 * len(with_ops)), squeeze=False)
    ax = axes[0][0]
    width = 0.8 / max(1, len(results))
    for i, (r, n) in enumerate(zip(results, names)):
        vals = []
        for aid in ids:
            res = next((x for x in r["results"] if x["artifact"]["id"] == aid and x["status"] == "ok"
                        and x.get("is_device_timing", True)), None)
            vals.append(_median(res)[0] if res else np.nan)
        ax.bar(np.arange(len(ids)) + i * width, [v if v is not None else np.nan for v in vals], width,
               label=f"{label(r)} [{Path(n).name}]")
    ax.set_xticks(np.arange(len(ids)) + width * (len(results) - 1) / 2, ids, rotation=20, ha="right")
    ax.set_ylabel("median ms per tile")
    ax.set_title("Latency per artifact and target (device timings only)")
    ax.legend(fontsize=8)
    for (where, runtime, res), row in zip(with_ops, axes[1:]):
        a = row[0]
        ops = res["ops"][:TOP_OPS][::-1]
        a.barh([o["name"][:40] for o in ops], [100 * (o.get("share") or 0) for o in ops])
        a.set_xlabel("% of the op time (Core ML: of the compute plan's estimated cost)")
        a.set_title(f"Top {TOP_OPS} ops: {runtime} on {where} ({res['artifact']['id']})", fontsize=9)
        a.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def compare(files: list[str], plot_path: str | None = None) -> tuple[str, Path | None]:
    results = [read_result(f) for f in files]
    text = table(results, files)
    ops = top_ops(results, files)
    return text + ("\n\n" + ops if ops else ""), plot(results, files, Path(plot_path)) if plot_path else None


# --- into a bundle ------------------------------------------------------------------------------------------

def _summary(res: dict) -> dict:
    lat = res.get("latency") or {}
    return {"artifact": res["artifact"]["id"], "runner": res["runner"], "runtime": res["runtime"]["name"],
            "status": res["status"], "median_ms": lat.get("median"), "mean_ms": lat.get("mean"), "p90_ms": lat.get("p90"),
            "peak_mb": (res.get("memory") or {}).get("peak_mb"), "device_timing": res.get("is_device_timing", True),
            "photo_ms": (res.get("photo") or {}).get("total_ms")}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "device"


def into_bundle(bundle: str | Path, files: list[str]) -> list[str]:
    """Add profile results to a bundle; returns the files added (relative to the bundle)."""
    from anyir_core.errors import AnyIRError
    from .bundle import _write_manifest, schema_errors, verify_bundle
    from .report import write_report
    root = Path(bundle)
    check = verify_bundle(root)
    if not check["ok"]:
        raise ProfileError(f"{root}: fix the bundle first ({check['problems'][0]}); `anyir bundle verify {root}`")
    m = check["manifest"]
    known = {a["sha256"]: a["id"] for a in m["artifacts"]}
    results = [(f, read_result(f)) for f in files]
    for f, r in results:
        for res in r["results"]:
            a = res["artifact"]
            if a["id"] == EAGER_ID:
                continue
            if known.get(a["sha256"]) != a["id"]:
                raise ProfileError(f"{f}: {a['id']} (sha256 {a['sha256'][:12]}...) is not an artifact of {root.name}; "
                                   "a profile is added only to the bundle whose files it measured")
    stage = root.parent / f".{root.name}.profiles-{os.getpid()}"
    old = root.parent / f".{root.name}.old-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    added = []
    try:
        shutil.copytree(root, stage, symlinks=True)
        entries = list(m.get("profiles", []))
        for f, r in results:
            t = r["target"]
            rel = f"profiles/{t['kind']}-{_slug(t['cpu'] if t['kind'] == 'host' else t['device_model'])}-{_slug(r['created'])}.json"
            if any(e["file"] == rel for e in entries):
                raise ProfileError(f"{f}: this profile ({rel}) is already in {root.name}")
            (stage / "profiles").mkdir(exist_ok=True)
            shutil.copyfile(f, stage / rel)
            entries.append({"file": rel, "target": t["kind"], "device_model": t["device_model"], "os": t["os"],
                            "cpu": t["cpu"], "created": r["created"], "writer": r["writer"],
                            "results": [_summary(x) for x in r["results"]]})
            added.append(rel)
        m = {**m, "profiles": entries}
        write_report(stage, m)
        _write_manifest(stage, m)
        errors = schema_errors(json.loads((stage / "manifest.json").read_text()))
        if errors:
            raise AnyIRError(f"internal: the manifest does not match its schema: {errors[0]}")
        root.rename(old)
        stage.rename(root)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if old.exists() and not root.exists():
            old.rename(root)  # interrupted between the two renames: put the original back
    return added
