"""The bundle's report (report.md + report.html, plots and before/after images under report/) and its
model card (README.md). Both are written from the manifest alone, so they never disagree with it."""
from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f}"


def _tables(m: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for every table the report shows."""
    arts = m["artifacts"]
    tasks = list(arts[0]["quality"]["tiles"]) if arts else []
    lat = m.get("host_latency", {})
    out = []
    rows = [["eager PyTorch fp32 (reference)", "-", f"{lat.get('eager_ms_median', float('nan')):.1f}", "1.00", "-", "-"]]
    for a in arts:
        n = a["numerics"]
        timed = a["latency"]["host_ms_median"] is not None
        rows.append([a["id"] + (" (default)" if a["id"] == m["default_artifact"] else ""), _mb(a["bytes"]),
                     f"{a['latency']['host_ms_median']:.1f}" if timed else "on device only",
                     f"{a['latency']['speedup_vs_eager']:.2f}" if timed else "-",
                     f"{n['psnr_min']:.1f} (>= {n['threshold']:.0f})"
                     + (f"; worst task drop {n['worst_task_drop']:.2f} (<= {n['task_drop_budget']})" if "task_drop_budget" in n else ""),
                     "pass" if n["passed"] else "**below**: " + "; ".join(n.get("failed_on", []))])
    out.append(("Artifacts: size, host latency per tile, numeric check",
                ["artifact", "MB", "ms / tile", "x eager", "PSNR vs reference, dB (int8: and drop vs fp32)", "verdict"], rows))
    if arts:
        fp = arts[0]["quality"]["tiles"]
        rows = [["input (degraded)"] + [f"{fp[t]['input_psnr']:.2f}" for t in tasks],
                ["eager PyTorch fp32"] + [f"{fp[t]['fp32_psnr']:.2f}" for t in tasks]]
        for a in arts:
            q = a["quality"]["tiles"]
            rows.append([a["id"]] + [f"{q[t]['psnr']:.2f} ({-q[t]['drop_vs_fp32']:+.2f})" for t in tasks])
        out.append((f"Task PSNR (dB) on {arts[0]['numerics']['tiles']} held-out {m['input']['tile'][0]}x"
                    f"{m['input']['tile'][1]} tiles, change vs eager fp32 in brackets", ["model"] + tasks, rows))
        with_photos = [a for a in arts if a["quality"]["photos"]]  # (Core ML off Apple hardware: tiles only)
        photos = sorted({(p["photo"], tuple(p["size"])) for p in with_photos[0]["quality"]["photos"]}) if with_photos else []
        rows = []
        for photo, size in photos:
            for t in tasks:
                base = next(p for p in with_photos[0]["quality"]["photos"] if p["photo"] == photo and p["task"] == t)
                rows.append([f"{photo} {size[1]}x{size[0]}", t, f"{base['input_psnr']:.2f}"]
                            + [f"{next(p for p in a['quality']['photos'] if p['photo'] == photo and p['task'] == t)['gain']:+.2f}"
                               for a in with_photos])
        if rows:
            out.append(("Whole held-out photos through the tiled path (what `anyir restore` does): PSNR gain over the "
                        "input, dB", ["photo", "task", "input dB"] + [a["id"] for a in with_photos], rows))
    if m["failed"]:
        out.append(("Not in this bundle", ["backend", "precision", "stage", "why"],
                    [[f["backend"], f["precision"], f["stage"], f["error"]] for f in m["failed"]]))
    for prof in m.get("profiles", []):
        cell = lambda v, f="{:.1f}": "-" if v is None else f.format(v)  # noqa: E731
        out.append((f"Profile: {prof['device_model']} ({prof['target']}, {prof['os']}), {prof['created']} "
                    f"[{prof['file']}]", ["artifact", "runner", "median ms", "p90 ms", "peak MB", "whole photo s"],
                    [[r["artifact"] + ("" if r.get("device_timing", True) else " (interpreter, not device timing)"),
                      r["runner"], "failed" if r["status"] != "ok" else
                      cell(r.get("median_ms")) if r.get("median_ms") is not None else "~" + cell(r.get("mean_ms")),
                      cell(r.get("p90_ms")), cell(r.get("peak_mb")),
                      cell(r["photo_ms"] / 1e3 if r.get("photo_ms") else None, "{:.2f}")] for r in prof["results"]]))
    out.append(("Build stages (wall time on the build host)", ["stage", "seconds"],
                [[s["stage"], f"{s['seconds']:.1f}"] for s in m["build"]["stages"]] + [["total", f"{m['build']['seconds']:.1f}"]]))
    return out


def _md_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(header, rows) -> str:
    esc = lambda s: html.escape(s).replace("**below**", "<b>below</b>")  # noqa: E731
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def plot_figures(folder: Path, m: dict) -> list[tuple[str, str]]:
    """latency, size and quality plots; returns (file, caption)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    folder.mkdir(parents=True, exist_ok=True)
    arts = m["artifacts"]
    ids = [a["id"] for a in arts]
    figs = []

    fig, ax = plt.subplots(1, 2, figsize=(10, 0.5 * len(ids) + 2))
    timed = [a for a in arts if a["latency"]["host_ms_median"] is not None]  # Core ML is timed on device only
    names = ["eager fp32"] + [a["id"] for a in timed]
    ms = [m["host_latency"]["eager_ms_median"]] + [a["latency"]["host_ms_median"] for a in timed]
    ax[0].barh(names, ms, color=["#999"] + ["#3a7"] * len(timed))
    ax[0].set_xlabel(f"ms per {m['input']['tile'][0]}x{m['input']['tile'][1]} tile (host, median)")
    for i, v in enumerate(ms):
        ax[0].text(v, i, f" {v:.1f}", va="center", fontsize=8)
    ax[0].invert_yaxis()
    ax[1].barh(ids, [a["bytes"] / 1e6 for a in arts], color="#37a")
    ax[1].set_xlabel("artifact size, MB")
    ax[1].invert_yaxis()
    fig.tight_layout()
    fig.savefig(folder / "latency_size.png", dpi=110)
    plt.close(fig)
    figs.append(("report/latency_size.png", "Host latency and artifact size"))

    tasks = list(arts[0]["quality"]["tiles"])
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(tasks)), 3.5))
    series = [("input", [arts[0]["quality"]["tiles"][t]["input_psnr"] for t in tasks]),
              ("eager fp32", [arts[0]["quality"]["tiles"][t]["fp32_psnr"] for t in tasks])]
    series += [(a["id"], [a["quality"]["tiles"][t]["psnr"] for t in tasks]) for a in arts]
    width = 0.8 / len(series)
    for i, (label, vals) in enumerate(series):
        ax.bar(np.arange(len(tasks)) + i * width, vals, width, label=label)
    ax.set_xticks(np.arange(len(tasks)) + 0.4 - width / 2, tasks)
    ax.set_ylabel("PSNR, dB")
    lo = min(min(v) for _, v in series)
    ax.set_ylim(max(0, lo - 2), None)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(folder / "quality.png", dpi=110)
    plt.close(fig)
    figs.append(("report/quality.png", "Task PSNR per precision and task (held-out tiles)"))
    return figs


def before_after(path: Path, run_nchw, tile, overlap: int, tasks, photo: str = "chelsea") -> None:
    """One row per task: degraded input | restored (tiled, through the artifact) | clean."""
    from PIL import Image, ImageDraw

    from anyir_core.data import load_builtin, task_seed
    from anyir_core.degrade import degrade
    from anyir_core.tiling import restore_tiled
    clean = load_builtin(photo)
    rows = []
    for t in tasks:
        deg = degrade(clean, t, seed=task_seed(photo, t))
        out = restore_tiled(deg, run_nchw, tile, overlap)
        rows.append(np.concatenate([deg, out, clean], axis=1))
    grid = (np.clip(np.concatenate(rows, axis=0), 0, 1) * 255 + 0.5).astype(np.uint8)
    im = Image.fromarray(grid)
    scale = min(1.0, 1500 / im.width)
    im = im.resize((int(im.width * scale), int(im.height * scale)), Image.LANCZOS)
    d = ImageDraw.Draw(im)
    h = im.height // len(tasks)
    for i, t in enumerate(tasks):
        d.text((8, i * h + 6), f"{t}: input | restored | clean", fill=(255, 255, 0), font_size=18,
               stroke_width=2, stroke_fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, quality=92)  # JPEG: a view for people (the numbers come from lossless outputs)


def write_report(root: Path, m: dict) -> None:
    figs = plot_figures(root / "report", m) if m["artifacts"] else []
    if (root / "report" / "before_after.jpg").is_file():
        figs.append(("report/before_after.jpg", f"Before / after through {m['default_artifact']} (held-out photo, "
                                                "tiled path)"))
    title = f"{m['name']} {m['version']}: build report"
    intro = (f"Model `{m['model']['preset']}` ({m['model']['parameters']:,} parameters, "
             f"{m['model']['macs_per_tile'] / 1e9:.2f} GMACs per {m['input']['tile'][0]}x{m['input']['tile'][1]} tile), "
             f"checkpoint sha256 `{m['model']['checkpoint']['sha256'][:16]}...`. Built {m['created']} on "
             f"{m['builder']['host']['machine']} ({m['builder']['host']['threads']} threads) by `{m['builder']['command']}`. "
             "Numeric check: the artifact against its PyTorch reference (eager fp32 for fp32, the fake-quantized "
             "module for int8) on held-out photos degraded as in training.")
    md = [f"# {title}", "", intro, ""]
    hs = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(intro)}</p>"]
    for name, header, rows in _tables(m):
        md += [f"## {name}", "", _md_table(header, rows), ""]
        hs += [f"<h2>{html.escape(name)}</h2>", _html_table(header, rows)]
    for file, caption in figs:
        md += [f"![{caption}]({file})", ""]
        data = base64.b64encode((root / file).read_bytes()).decode()
        mime = "image/jpeg" if file.endswith(".jpg") else "image/png"
        hs += [f"<figure><img src='data:{mime};base64,{data}' alt='{html.escape(caption)}'>"
               f"<figcaption>{html.escape(caption)}</figcaption></figure>"]
    (root / "report.md").write_text("\n".join(md) + "\n")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}img{max-width:100%}")
    (root / "report.html").write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
                                      f"</title><style>{style}</style></head><body>{''.join(hs)}</body></html>\n")


def write_model_card(root: Path, m: dict, src) -> None:
    mdl, inp = m["model"], m["input"]
    tr = mdl.get("training", {})
    recipe = tr.get("recipe", {})
    lines = [
        f"# {m['name']} {m['version']}",
        "",
        "All-in-one image restoration (AnyIR: \"Any Image Restoration via Efficient Spatial-Frequency Degradation "
        f"Adaptation\") for phones: one model for {', '.join(mdl['tasks'])}.",
        "",
        "## Model",
        f"- preset `{mdl['preset']}`, {mdl['parameters']:,} parameters, {mdl['macs_per_tile'] / 1e9:.2f} GMACs per "
        f"{inp['tile'][0]}x{inp['tile'][1]} tile",
        f"- checkpoint `{mdl['checkpoint']['name']}` (sha256 `{mdl['checkpoint']['sha256']}`)",
        f"- trained by `anyir train`: {recipe.get('steps', '?')} steps of {recipe.get('batch', '?')} x "
        f"{recipe.get('patch', '?')}^2 patches, tasks {', '.join(recipe.get('tasks', []))}, data {', '.join(recipe.get('data', []))}",
    ]
    if m.get("quantization"):
        q = m["quantization"]
        lines.append(f"- int8: scheme {q['scheme']}, {q['mode'].upper()} {q['steps']} steps; state in `provenance/quant/`")
    lines += [
        "",
        "## Input and output",
        f"- float32 RGB in [{inp['value_range'][0]:g}, {inp['value_range'][1]:g}], one {inp['tile'][0]}x{inp['tile'][1]} "
        "tile per call; each artifact's layout (NCHW/NHWC) is in `manifest.json`",
        f"- photos of any size: tiles overlapping by {inp['overlap']} px, {inp['padding']}; blend: {inp['blend']}",
        f"- plan: {inp['plan']}",
        "- output: the restored tile, same shape and range; clip to [0, 1]",
        "",
        "## Artifacts",
        "",
        _md_table(["id", "platforms", "file", "MB", "host x eager", "numerics"],
                  [[a["id"], ", ".join(a["paths"]), next(iter(a["paths"].values())), _mb(a["bytes"]),
                    f"{a['latency']['speedup_vs_eager']:.2f}" if a["latency"]["speedup_vs_eager"] is not None else "on device",
                    f"{a['numerics']['psnr_min']:.1f} dB ({'pass' if a['numerics']['passed'] else 'below'} "
                    f"{a['numerics']['threshold']:.0f})"] for a in m["artifacts"]]),
        "",
        f"Default for `anyir restore`: `{m['default_artifact']}`. Full numbers, plots and before/after images: "
        "[report.md](report.md) / report.html.",
        "",
        "## Use",
        "```bash",
        f"anyir restore photo.jpg --bundle {root.name if not root.name.startswith('.') else m['name'] + '-' + m['version']}"
        " --out restored.png   # or --backend B --precision P",
        f"anyir bundle verify {m['name']}-{m['version']}                   # schema and checksums",
        "```",
        "",
        "## Limitations",
        "- Trained on a handful of photos that ship with scikit-image / scikit-learn / matplotlib (no dataset download): "
        "a demonstration model, not the paper's. Retrain with `anyir train` on your data and rebuild.",
        "- Per-image statistics make tiled output differ slightly from a whole-image pass (see the repository README).",
    ]
    lines += [f"- Not in this bundle: {f['backend']} {f['precision']} ({f['error']})" for f in m["failed"]]
    lines += ["", "License: MIT (code); the model was trained by this project."]
    (root / "README.md").write_text("\n".join(lines) + "\n")
