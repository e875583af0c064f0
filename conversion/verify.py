"""Numeric verification, written once for every backend: run the real artifact on held-out photos
(degraded as in training) and compare it with its PyTorch reference and with the clean photo.

- numeric: PSNR of the artifact's output against the reference output (images in [0, 1]); the
  reference is the eager model for fp32/fp16, the converted Q/DQ PyTorch module for int8.
- task: PSNR of the output against the clean photo (8-bit RGB, as the benchmark tables), next to the
  eager fp32 model's on the same input, so the cost of the precision is one subtraction.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from anyir_core import AnyIRError
from anyir_core.data import builtin_samples, task_seed
from anyir_core.degrade import degrade
from anyir_core.metrics import psnr, psnr_float

from .base import Artifact, ArtifactError, get_backend, read_record
from .source import ModelSource

# numeric floors per precision (PSNR of artifact vs reference, dB); backends may name their own
THRESHOLDS = {"fp32": 60.0, "fp16": 45.0, "int8": 34.0}
# An int8 artifact passes on two grounds, neither a number that one host's kernels sit above and another's below:
# - what the user gets: no task's mean PSNR drop against eager fp32 on the held-out tiles above the budget;
# - agreement with the fake-quantized reference at or above THRESHOLDS["int8"], a floor set below the smallest
#   agreement measured between correct int8 runtimes of the same graph (ExecuTorch and LiteRT, XNNPACK on AVX2
#   and on SSE4.2 kernels, LiteRT's own kernels) and above what one wrong scale does:
#   benchmarks/int8_spread.py, whose last results are in benchmarks/results/int8_spread.json.
INT8_TASK_DROP_BUDGET = 0.5
DEFAULT_TASKS = ("noise15", "noise25", "noise50", "rain", "haze")


def verification_set(height: int, width: int, tasks=DEFAULT_TASKS, split: str = "heldout"):
    """(name, task, degraded, clean) with centred HxW crops of the held-out photos; fixed seeds."""
    out = []
    for s in builtin_samples(split):
        h, w = s.clean.shape[:2]
        if h < height or w < width:
            raise AnyIRError(f"held-out photo {s.name} ({w}x{h}) is smaller than the {width}x{height} tile")
        y, x = (h - height) // 2, (w - width) // 2
        clean = s.clean[y:y + height, x:x + width]
        for task in tasks:
            out.append((s.name, task, degrade(clean, task, seed=task_seed(s.name, task)), clean))
    return out


def interpreter_subset(items: list, tasks) -> list:
    """One tile per task, the held-out photos taken in turn: where a numpy interpreter stands in for the runtime
    (Core ML off Apple hardware) each tile costs seconds, and five tiles run every op of the program on
    every degradation as well as fifteen do; the verdict names how many tiles it rests on."""
    photos = list(dict.fromkeys(name for name, *_ in items))
    return [it for i, task in enumerate(tasks) for it in items
            if it[1] == task and it[0] == photos[i % len(photos)]]


def _nchw(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32)


def _hwc(x: np.ndarray) -> np.ndarray:
    return np.clip(x[0].transpose(1, 2, 0), 0.0, 1.0)


def source_for(art: Artifact, checkpoint: str | None = None, quant_state: str | None = None,
               folder: Path | None = None) -> ModelSource:
    recorded = art.source.get("quant_state")
    if not quant_state and recorded and folder is not None and not Path(recorded).is_absolute():
        # a bundle records the state relative to the artifact's folder, so it survives being moved
        quant_state = str(folder / recorded) if (folder / recorded).is_dir() else None
    src = ModelSource(checkpoint or art.source.get("checkpoint") or "default", preset=art.preset or None,
                      quant_state=quant_state or recorded)
    if not src.checkpoint_path.is_file():
        raise ArtifactError(f"the checkpoint this artifact was made from ({src.checkpoint}) is not here; pass --checkpoint")
    if art.checkpoint_sha256 and src.checkpoint_sha256 != art.checkpoint_sha256:
        raise ArtifactError(f"{src.checkpoint} is not the checkpoint this artifact was made from (sha256 differs)")
    if art.precision == "int8":
        if not src.quant_state or not Path(src.quant_state).is_dir():
            raise ArtifactError("the quantization state this int8 artifact was made from is not here; pass --quant-state")
        if src.quant_info()["sha256"] != art.quant_state_sha256:
            raise ArtifactError(f"{src.quant_state} is not the quantization state this artifact was made from")
    return src


@torch.no_grad()
def verify(artifact_file: str | Path, checkpoint: str | None = None, quant_state: str | None = None,
           tasks=DEFAULT_TASKS, threshold: float | None = None, progress: bool = False,
           source: ModelSource | None = None) -> dict:
    """`source`: the ModelSource the artifact was just exported from (a build passes its own): its traced
    reference modules and their outputs on the verification tiles are reused across artifacts."""
    art = read_record(artifact_file)
    folder = Path(artifact_file).parent
    backend = get_backend(art.backend)
    src = source or source_for(art, checkpoint, quant_state, folder)
    if source is not None and art.checkpoint_sha256 and art.checkpoint_sha256 != src.checkpoint_sha256:
        raise ArtifactError(f"{art.file} was not made from {src.checkpoint} (sha256 differs)")
    outputs = src.memo.setdefault("verify_outputs", {})  # (reference kind, tile, image, task) -> output
    runner = backend.load(art, folder)
    reference = src.reference(art.precision, art.input) if art.precision == "int8" else src.eager_model()
    eager = src.eager_model() if art.precision == "int8" else reference
    items = verification_set(art.input.height, art.input.width, tasks)
    emulated = getattr(runner, "emulated", False)
    if emulated:  # every op of the program on one tile per task (the photos in turn): what proves the program
        items = interpreter_subset(items, tasks)
    if progress:
        from tqdm import tqdm
        items = tqdm(items, desc=f"verify {art.file}", unit="img")
    native = getattr(runner, "native", None) is not None  # Core ML on macOS: the package's own runtime too
    rows = []
    for name, task, deg, clean in items:
        x = _nchw(deg)
        out = runner.run_nchw(x)
        kind = "int8" if art.precision == "int8" else "eager"
        ref = _memo(outputs, (kind, x.shape, name, task, src.quant_state if kind == "int8" else None),
                    lambda: reference(torch.from_numpy(x)).numpy())
        fp = ref if eager is reference else _memo(outputs, ("eager", x.shape, name, task, None),
                                                  lambda: eager(torch.from_numpy(x)).numpy())
        rows.append({"image": name, "task": task,
                     "numeric_psnr": psnr_float(out, ref), "max_abs": float(np.abs(out - ref).max()),
                     "input_psnr": psnr(deg, clean), "psnr": psnr(_hwc(out), clean), "fp32_psnr": psnr(_hwc(fp), clean)})
        if native:
            nat = runner.run_native(x)
            rows[-1].update(native_numeric_psnr=psnr_float(nat, ref), native_vs_interpreter_psnr=psnr_float(nat, out))
    per_task = {}
    for task in tasks:
        rs = [r for r in rows if r["task"] == task]
        mean = lambda k: float(np.mean([r[k] for r in rs]))  # noqa: E731
        per_task[task] = {"input_psnr": mean("input_psnr"), "psnr": mean("psnr"), "fp32_psnr": mean("fp32_psnr"),
                          "drop_vs_fp32": mean("fp32_psnr") - mean("psnr"), "numeric_psnr_min": min(r["numeric_psnr"] for r in rs)}
    floor = threshold if threshold is not None else getattr(backend, "thresholds", {}).get(art.precision, THRESHOLDS.get(art.precision))
    numeric_min = min(r["numeric_psnr"] for r in rows)
    rule = {"passed": numeric_min >= floor}
    if art.precision == "int8":
        rule = int8_verdict(numeric_min, {t: d["drop_vs_fp32"] for t, d in per_task.items()}, floor)
    extra = {}
    if getattr(runner, "executed_by", None):  # runners that are not the runtime itself say what executed
        extra["executed_by"] = list(runner.executed_by)
        if native:
            extra["native_numeric_psnr_min"] = min(r["native_numeric_psnr"] for r in rows)
            extra["native_vs_interpreter_psnr_min"] = min(r["native_vs_interpreter_psnr"] for r in rows)
    return {**extra,
        "artifact": art.file, "backend": art.backend, "precision": art.precision,
        "reference": "converted Q/DQ PyTorch module (fake-quantized reference)" if art.precision == "int8"
        else "eager PyTorch fp32 (released FFT fusion)",
        "tile": [art.input.height, art.input.width], "images": len(rows),
        "numeric_psnr_min": numeric_min,
        "numeric_psnr_mean": float(np.mean([r["numeric_psnr"] for r in rows])),
        "max_abs": max(r["max_abs"] for r in rows),
        "threshold": floor, "passed": rule["passed"],
        **({"task_drop_budget": rule["budget"], "worst_task_drop": rule["worst_task_drop"],
            "failed_on": rule["failed_on"]} if art.precision == "int8" else {}),
        "per_task": per_task, "per_image": rows,
    }


def int8_verdict(agreement_min: float, drops: dict, floor: float | None = None) -> dict:
    """The int8 rule: agreement with the reference at the floor and every task's drop within the budget."""
    floor = THRESHOLDS["int8"] if floor is None else floor
    worst = max(drops.values())
    failed = ([f"agreement {agreement_min:.1f} dB < {floor:.0f} dB"] if agreement_min < floor else []) + \
        ([f"{max(drops, key=drops.get)} drop {worst:.2f} dB > {INT8_TASK_DROP_BUDGET} dB"] if worst > INT8_TASK_DROP_BUDGET else [])
    return {"passed": not failed, "floor": floor, "budget": INT8_TASK_DROP_BUDGET, "worst_task_drop": worst,
            "failed_on": failed}


def _memo(store: dict, key, compute):
    if key not in store:
        store[key] = compute()
    return store[key]


def format_verdict(v: dict) -> str:
    lines = [f"{v['artifact']} ({v['backend']} {v['precision']}, tile {v['tile'][0]}x{v['tile'][1]}): "
             f"numeric PSNR vs {v['reference']}: min {v['numeric_psnr_min']:.1f} dB, mean {v['numeric_psnr_mean']:.1f} dB,"
             f" max abs {v['max_abs']:.2e} -> {'PASS' if v['passed'] else 'FAIL'} (>= {v['threshold']:.0f} dB"
             + (f", every task's drop vs fp32 <= {v['task_drop_budget']} dB" if "task_drop_budget" in v else "") + ")"
             + (f": {'; '.join(v['failed_on'])}" if v.get("failed_on") else "")
             + (f"; executed by {' and '.join(v['executed_by'])}" if v.get("executed_by") else "")
             + (f"\nCore ML itself: min {v['native_numeric_psnr_min']:.1f} dB vs the reference, "
                f"{v['native_vs_interpreter_psnr_min']:.1f} dB vs the interpreter" if "native_numeric_psnr_min" in v else ""),
             f"{'task':<10}{'input':>8}{'eager fp32':>12}{v['precision']:>9}{'drop':>8}{'numeric min':>13}"]
    for task, t in v["per_task"].items():
        lines.append(f"{task:<10}{t['input_psnr']:>8.2f}{t['fp32_psnr']:>12.2f}{t['psnr']:>9.2f}{t['drop_vs_fp32']:>8.2f}"
                     f"{t['numeric_psnr_min']:>13.1f}")
    return "\n".join(lines)
