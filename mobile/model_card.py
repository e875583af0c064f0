"""Model cards: what a checkpoint is, how it was trained and how it scores, from its own files.

    python -m mobile.model_card CHECKPOINT.safetensors EVAL.json OUT.md [--log RUN/log.jsonl ...] [--command "..."]
        [--note "..."]
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from anyir_core.data import TRAIN
from anyir_core.evaluate import format_table
from anyir_core.inspect import count_macs, count_parameters


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def render(checkpoint: Path, report: dict, logs: list[Path], commands: list[str], notes: list[str] = ()) -> str:
    from anyir_core import load_checkpoint
    from anyir_core.train import summarize_log

    model = load_checkpoint(checkpoint)
    meta = json.loads(checkpoint.with_suffix(".json").read_text())
    recipe = meta.get("recipe", {})
    per = report["per_task"]
    lines = [
        f"# Model card: AnyIR `{model.preset}` default checkpoint", "",
        f"- file: `{checkpoint.name}` ({checkpoint.stat().st_size / 1e6:.1f} MB, sha256 `{_sha256(checkpoint)[:16]}...`)",
        f"- parameters: {count_parameters(model):,}; {count_macs(model, (256, 256)) / 1e9:.2f} GMACs at 256x256",
        "- input: float RGB in [0, 1], NCHW, any size (padded to a multiple of 8 inside `forward`)",
        f"- tasks trained: {', '.join(recipe.get('tasks', []))}; data: {', '.join(recipe.get('data', []))}",
        "- license of the weights: trained here from scratch on photos shipped by scikit-image, scikit-learn and "
        "matplotlib (their own licenses apply to the photos)", "",
        "## How it was made", "", "```bash", *commands, "```", "",
        "| phase | steps | patch x batch | lr | first loss | final loss (last 10%) | patches/s | wall |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for log in logs:
        s = summarize_log(log)
        cfg = json.loads((log.parent / "config.json").read_text())
        lines.append(f"| {log.parent.name} | {s['steps']} | {cfg['patch']} x {cfg['batch']} | {cfg['lr']:g} | "
                     f"{s['first_loss']:.4f} | {s['final_loss_avg_last_10pct']:.4f} | {s['patches_per_s']:.1f} | "
                     f"{s['wall_s'] / 60:.0f} min |")
    best = {t: max((m for m in v if m in ("nl_means", "wavelet", "tv")), key=lambda m: v[m]["psnr"], default=None)
            for t, v in per.items()}
    lines += ["", "## How it scores", "",
              "Held-out photos never seen in training (chelsea, coffee, flower), each degraded with a fixed seed "
              "per image and task; whole images. PSNR on 8-bit RGB, SSIM with the 11x11 Gaussian window. "
              "Classical rows: scikit-image non-local means and wavelet at documented settings with the true "
              "sigma, TV with an oracle weight.", "", "```", format_table(report), "```", "",
              "| task | input PSNR | AnyIR PSNR | gain over input | best classical | AnyIR minus best classical |",
              "| --- | ---: | ---: | ---: | --- | ---: |"]
    for t, v in per.items():
        b = best[t]
        lines.append(f"| {t} | {v['input']['psnr']:.2f} | {v['anyir']['psnr']:.2f} | "
                     f"{v['anyir']['psnr'] - v['input']['psnr']:+.2f} | "
                     + (f"{b} {v[b]['psnr']:.2f} | {v['anyir']['psnr'] - v[b]['psnr']:+.2f} |" if b else "- | - |"))
    lines += ["", "Per image (PSNR dB):", "", "| task | image | input | AnyIR | nl_means | wavelet | tv |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in report["per_image"]:
        cell = lambda m: f"{r[m]['psnr']:.2f}" if m in r else "-"  # noqa: E731
        lines.append(f"| {r['task']} | {r['image']} | " + " | ".join(cell(m) for m in
                     ("input", "anyir", "nl_means", "wavelet", "tv")) + " |")
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    lines += ["", "## Limits", "",
              f"A small model trained on {len(TRAIN)} photos (the training table above says on what hardware and for "
              "how long): far from the paper's numbers, which need the benchmark training sets and GPU-days. "
              "Not trained for motion blur or low light. Per-image "
              "statistics inside the model make tiled and whole-image results differ; by how much is measured "
              "with the tiled restore path.", ""]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m mobile.model_card")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("eval_json", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--log", type=Path, action="append", default=[])
    p.add_argument("--command", action="append", default=[])
    p.add_argument("--note", action="append", default=[])
    a = p.parse_args(argv)
    a.out.write_text(render(a.checkpoint, json.loads(a.eval_json.read_text()), a.log, a.command, a.note))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
